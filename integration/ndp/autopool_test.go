//go:build integration

package ndp

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// v6Subnet is the one IPv6 subnet of network name.
func v6Subnet(t *testing.T, name string) netip.Prefix {
	t.Helper()
	var v6 []netip.Prefix
	for _, s := range strings.Fields(harness.Docker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", name)) {
		if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is6() {
			v6 = append(v6, p)
		}
	}
	if len(v6) != 1 {
		t.Fatalf("network %s has IPv6 subnets %v, want one", name, v6)
	}
	return v6[0]
}

// autoNet creates a network whose IPv6 subnet dualstack's IPAM picks in
// the bed's on-link /64 (--ipam-opt ndp_proxy=dsnd0), and returns it.
func autoNet(t *testing.T, name string, ipamOpts ...string) netip.Prefix {
	t.Helper()
	args := []string{"--ipv6", "--ipam-opt", "ndp_proxy=" + harness.OnLinkIF}
	for _, o := range ipamOpts {
		args = append(args, "--ipam-opt", o)
	}
	harness.DSNet(t, name, args...)
	harness.RemoveNetworkAtEnd(t, name)
	return v6Subnet(t, name)
}

// Acceptance: the auto pool. A network that names no IPv6 subnet but asks
// for the on-link prefix gets a sub-prefix of it that holds no address in
// use on the link and no other network's, and its containers are
// reachable from the router.
func TestAutoPool(t *testing.T) {
	b := harness.NewOnLink(t)
	// The link is busier: the host has an address in the /64's second
	// /80, the neighbour one in its third, which the host has talked to
	// (it is in dsnd0's neighbour cache).
	harness.IPRun(t, "-n", harness.Eng.Netns, "addr", "add", "2001:db8:6e:0:1::2/64", "dev", harness.OnLinkIF, "nodad")
	b.AddNeighbourAddr(t, "2001:db8:6e:0:2::9/64")
	if err := netnstest.Ping(harness.EngineNetns(), netip.MustParseAddr("2001:db8:6e:0:2::9"), 2*time.Second); err != nil {
		t.Fatalf("the host cannot ping the neighbour's 2001:db8:6e:0:2::9: %v", err)
	}
	inUse := []string{harness.OnLinkRouter, harness.OnLinkHost, "2001:db8:6e:0:1::2", "2001:db8:6e:0:2::9", harness.OnLinkNeighbour}
	onLink := netip.MustParsePrefix(harness.OnLinkPrefix)
	check := func(name string, p netip.Prefix, bits int) {
		t.Helper()
		t.Logf("network %s got %s", name, p)
		// Not the first sub-prefix either, where routers usually sit.
		if first := netip.PrefixFrom(onLink.Addr(), bits); p.Bits() != bits || !onLink.Contains(p.Addr()) || p == first {
			t.Errorf("network %s got %s: want a /%d of %s other than its first, %s", name, p, bits, onLink, first)
		}
		for _, a := range inUse {
			if p.Contains(netip.MustParseAddr(a)) {
				t.Errorf("network %s got %s, which holds %s, in use on the link", name, p, a)
			}
		}
	}
	p := autoNet(t, "ds-nd-auto")
	check("ds-nd-auto", p, 80)
	q := autoNet(t, "ds-nd-auto96", "ndp_proxy_size=96")
	check("ds-nd-auto96", q, 96)
	if p.Overlaps(q) {
		t.Errorf("ds-nd-auto got %s and ds-nd-auto96 %s: they overlap", p, q)
	}

	servers := append(harness.StartServers(t, "ds-nd-auto", []string{"ds-nd-auto-a"}), harness.StartServers(t, "ds-nd-auto96", []string{"ds-nd-auto96-a"})...)
	for i, want := range []netip.Prefix{p, q} {
		if !want.Contains(servers[i].Addr) {
			t.Errorf("%s got %s, outside its network's %s", servers[i].Name, servers[i].Addr, want)
		}
	}
	reachable(t, b, servers)
}
