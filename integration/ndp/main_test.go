//go:build integration

// Package ndp holds the end-to-end tests of the NDP proxy (issue 23,
// -o ndp_proxy=IF and --ipam-opt ndp_proxy=IF): containers with public
// IPv6 addresses on the host's on-link /64, on the on-link test bed
// (harness.NewOnLink: an upstream router and a neighbour on the engine
// host's link). Run by make integration and integration-moby.
package ndp

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.OneHost) }
