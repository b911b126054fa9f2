//go:build integration

// Package firewall holds the firewall's end-to-end tests (issues 4, 13 and
// 21): run by make integration and integration-moby with Docker's rules in
// iptables, and again by make integration-nftables on current Moby with
// Docker's rules in nftables (DUALSTACK_DOCKER_FIREWALL=nftables).
package firewall

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.OneHost) }
