//go:build integration

package local

import (
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// needsIPv4Option skips engines older than API 1.47 (Engine 27), which have
// no --ipv4=false: Engine 20.10 always gives a network an IPv4 pool.
func needsIPv4Option(t *testing.T) {
	t.Helper()
	if !harness.APIAtLeast(t, 47) {
		t.Skip("the engine's API has no --ipv4=false (needs 1.47+): Engine 20.10 always adds an IPv4 pool; the IPv6-subnets-only case is TestBridgeIPv6Subnets")
	}
}

// Issue 6, build 3: IPv6-only networks on the current engine, bridge and
// macvlan: only IPv6 addresses, one per subnet, and traffic.
func TestIPv6OnlyBridge(t *testing.T) {
	needsIPv4Option(t)
	harness.DSNet(t, "ds-v6only", "--ipv4=false", "--ipv6", "--subnet", "2001:db8:91::/64", "--subnet", "2001:db8:92::/64")
	harness.RunContainer(t, "ds-v6only-a", "ds-v6only")
	harness.RunContainer(t, "ds-v6only-b", "ds-v6only")
	harness.WantIfaceAddrs(t, "ds-v6only-b", "eth0", "2001:db8:91::3/64", "2001:db8:92::3/64")
	if out := harness.Docker(t, "exec", "ds-v6only-a", "ip", "-4", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet ") {
		t.Errorf("an IPv4 address on an IPv6-only network:\n%s", out)
	}
	harness.Ping(t, "ds-v6only-a", "2001:db8:91::1", "2001:db8:92::1", "2001:db8:91::3", "2001:db8:92::3")
}

func TestIPv6OnlyMacvlan(t *testing.T) {
	needsIPv4Option(t)
	harness.NewLAN(t)
	harness.MacvlanNet(t, "ds-mv6only", "--ipv4=false", "--ipv6", "--subnet", "2001:db8:1::/64", "--gateway", harness.Router6a, "--subnet", "2001:db8:2::/64")
	harness.RunContainer(t, "ds-mv6only-a", "ds-mv6only")
	harness.WantIfaceAddrs(t, "ds-mv6only-a", "eth0", "2001:db8:1::1/64", "2001:db8:2::1/64")
	if out := harness.Docker(t, "exec", "ds-mv6only-a", "ip", "-4", "addr", "show", "dev", "eth0"); strings.Contains(out, "inet ") {
		t.Errorf("an IPv4 address on an IPv6-only network:\n%s", out)
	}
	harness.Ping(t, "ds-mv6only-a", harness.Router6a, harness.Router6b)
}
