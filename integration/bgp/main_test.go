//go:build integration

// Package bgp holds the BGP end-to-end tests, on the routed test bed (three
// engines, each on its own link to a BIRD router, with etcd; see
// integration/harness/bed.go and router.go): make integration-bgp, on
// current Moby.
package bgp

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.Routed) }
