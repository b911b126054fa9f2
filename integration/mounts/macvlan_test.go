//go:build integration

package mounts

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 12: on a macvlan network with two IPv6 subnets too, the first
// command sees every address, on any host.
func TestMacvlanFirstCommandSeesEveryAddress(t *testing.T) {
	harness.NewLAN(t)
	harness.MacvlanNet(t, "ds-mv-first", harness.LANSubnets...)
	firstCommandSees(t, "ds-mv-first", func(run int) []string {
		return harness.AddrSet(run+1, "2001:db8:1::/64", "2001:db8:2::/64")
	})
}
