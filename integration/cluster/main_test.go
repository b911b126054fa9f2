//go:build integration

// Package cluster holds the cluster networks' end-to-end tests, on the
// cluster test bed (three engines on one LAN, with etcd; see
// integration/harness/bed.go): make integration-cluster, on current Moby.
package cluster

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.Fabric) }
