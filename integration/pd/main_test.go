//go:build integration

// Package pd holds the end-to-end tests of prefix delegation (issue 24,
// -o delegated_prefix=IF): containers with global addresses carved from
// the prefix an upstream router delegates to the host by DHCPv6-PD,
// renumbered when it changes, on the delegation test bed
// (harness.NewDelegation: Debian's Kea in a router namespace on the
// engine host's uplink). Run by make integration and integration-moby.
package pd

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.OneHost) }
