//go:build integration

// Package cluster holds the cluster networks' end-to-end benchmark, on the
// cluster test bed of make integration-cluster.
package cluster

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.Fabric) }
