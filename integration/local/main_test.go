//go:build integration

// Package local holds the single-host end-to-end tests: bridge and
// macvlan networks, the IPAM, bad input, robustness, compose, the demo
// (make integration on Engine 20.10, make integration-moby on current
// Moby). The tests whose outcome depends on how the host propagates
// mounts are in integration/mounts, the firewall's in
// integration/firewall.
package local

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.OneHost) }
