//go:build integration

// Package bgp holds the BGP end-to-end benchmark, on the routed test bed
// of make integration-bgp.
package bgp

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.Routed) }
