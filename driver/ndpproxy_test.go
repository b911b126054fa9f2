package driver

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/ndp"
)

// The on-link bed of the ndp_proxy tests: the host's dstup0 holds
// 2001:db8:f3::2/64 on a link whose router holds ::1/64 and a neighbour's
// address inside the network's subnet.
const (
	ndpUplink    = "dstup0"
	ndpSubnet    = "2001:db8:f3:0:d0::/80"
	ndpNeighbour = "2001:db8:f3:0:d0:0:0:3"
)

// ndpBed gives the harness's host an uplink on a router's link.
func ndpBed(t *testing.T, h *harness) (router netnstest.NS) {
	t.Helper()
	router = netnstest.New(t)
	h.host.IP(t, "link", "add", ndpUplink, "type", "veth", "peer", "name", "dstrtr0", "netns", router.Name)
	h.host.SetSysctl(t, "net/ipv6/conf/"+ndpUplink+"/accept_dad", "0")
	router.SetSysctl(t, "net/ipv6/conf/dstrtr0/accept_dad", "0")
	h.host.IP(t, "addr", "add", "2001:db8:f3::2/64", "dev", ndpUplink, "nodad")
	for _, a := range []string{"2001:db8:f3::1/64", ndpNeighbour + "/64"} {
		router.IP(t, "addr", "add", a, "dev", "dstrtr0", "nodad")
	}
	h.host.IP(t, "link", "set", ndpUplink, "up")
	router.IP(t, "link", "set", "dstrtr0", "up")
	deadline := time.Now().Add(5 * time.Second)
	for netnstest.Ping(h.host.Path, netip.MustParseAddr("2001:db8:f3::1"), 100*time.Millisecond) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the router does not answer on the link")
		}
	}
	return router
}

func (h *harness) ndpSysctls() []string {
	return []string{h.host.Sysctl(h.t, "net/ipv6/conf/"+ndpUplink+"/proxy_ndp"), h.host.Sysctl(h.t, "net/ipv6/neigh/"+ndpUplink+"/proxy_delay")}
}

func (h *harness) proxied(dev string) []netip.Addr {
	var out []netip.Addr
	h.in(func() (err error) { out, err = ndp.Entries(dev); return err })
	return out
}

func ndpOpts(link string) map[string]interface{} {
	return map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"ndp_proxy": link}}
}

// TestNDPProxyLifecycle: the host answers on the uplink for exactly the
// addresses of the endpoints that joined; the neighbour's address is
// passed over, routed back to the link and answered for on the bridge; a
// restart puts back an entry that went; the network's removal leaves the
// sysctls as they were and no entry or route.
func TestNDPProxyLifecycle(t *testing.T) {
	h := newHarness(t)
	ndpBed(t, h)
	before := h.ndpSysctls()
	const nid = "aaaaaaaaaaaa3333"
	req := h.network(nid, ndpOpts(ndpUplink), "198.51.100.0/24", ndpSubnet)
	h.in(func() error { return h.d.CreateNetwork(req) })
	if got := h.ndpSysctls(); !slices.Equal(got, []string{"1", "0"}) {
		t.Fatalf("proxy_ndp, proxy_delay on %s = %v, want [1 0]", ndpUplink, got)
	}

	// Gateway ::1, then ::2 and, the neighbour holding ::3, ::4.
	want := []string{"2001:db8:f3:0:d0::2/80", "2001:db8:f3:0:d0::4/80"}
	eids := []string{"bbbbbbbbbbb10000", "bbbbbbbbbbb20000"}
	for i, eid := range eids {
		h.endpoint(nid, eid, "02:42:c0:00:02:0"+string(rune('1'+i)), "198.51.100.0/24", ndpSubnet)
		sb := netnstest.New(t)
		h.in(func() error {
			_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
			return err
		})
	}
	var addrs []netip.Addr
	for _, w := range want {
		addrs = append(addrs, netip.MustParsePrefix(w).Addr())
	}
	if got := h.proxied(ndpUplink); !slices.Equal(got, addrs) {
		t.Fatalf("proxy entries on %s = %v, want the endpoints' %v (not the neighbour's %s)", ndpUplink, got, addrs, ndpNeighbour)
	}
	// The neighbour's address: routed back, answered for on the bridge.
	neigh := netip.MustParseAddr(ndpNeighbour)
	deadline := time.Now().Add(3 * time.Second)
	for !slices.Contains(h.proxied("ds-aaaaaaaaaaaa"), neigh) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := h.proxied("ds-aaaaaaaaaaaa"); !slices.Equal(got, []netip.Addr{neigh}) {
		t.Errorf("proxy entries on the bridge = %v, want the neighbour's %s", got, neigh)
	}
	if out := string(h.host.IP(t, "-6", "route", "show", ndpNeighbour)); !strings.Contains(out, "dev "+ndpUplink) {
		t.Errorf("route to the neighbour %s = %q, want one through %s", ndpNeighbour, out, ndpUplink)
	}

	// Leave: the host stops answering for that endpoint at once.
	h.in(func() error { return h.d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: eids[0]}) })
	if got := h.proxied(ndpUplink); !slices.Equal(got, addrs[1:]) {
		t.Fatalf("proxy entries after a leave = %v, want %v", got, addrs[1:])
	}

	// An entry lost while the plugin is down comes back at start.
	h.host.IP(t, "-6", "neigh", "del", "proxy", addrs[1].String(), "dev", ndpUplink)
	h.restart()
	if got := h.proxied(ndpUplink); !slices.Contains(got, addrs[1]) {
		t.Fatalf("proxy entries after a restart = %v, want %s back", got, addrs[1])
	}

	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
	if got := h.ndpSysctls(); !slices.Equal(got, before) {
		t.Errorf("sysctls after the network went = %v, want %v as before", got, before)
	}
	if got := h.proxied(ndpUplink); len(got) != 0 {
		t.Errorf("proxy entries after the network went: %v", got)
	}
	if out := string(h.host.IP(t, "-6", "route", "show", ndpNeighbour)); strings.Contains(out, "dev "+ndpUplink) {
		t.Errorf("route to the neighbour after the network went: %q", out)
	}
}

// TestNDPProxyRefusals: what the link cannot serve is refused, naming the
// problem, and changes nothing.
func TestNDPProxyRefusals(t *testing.T) {
	h := newHarness(t)
	ndpBed(t, h)
	ok := h.network("aaaaaaaaaaaa4444", ndpOpts(ndpUplink), "2001:db8:f3:0:e0::/80")
	h.in(func() error { return h.d.CreateNetwork(ok) })
	plain := h.network("aaaaaaaaaaa55555", nil, "198.51.100.0/24")
	h.in(func() error { return h.d.CreateNetwork(plain) })
	before := h.ndpSysctls()
	cases := []struct {
		name, link, subnet, want string
		opts                     map[string]interface{}
	}{
		{"no such interface", "dstnope0", ndpSubnet, "no interface dstnope0", nil},
		{"a dualstack bridge", "ds-aaaaaaaaaaaa", ndpSubnet, "bridge of a container network", nil},
		{"outside the on-link prefix", ndpUplink, "2001:db8:f4::/80", "lies in no on-link prefix of dstup0 (it has 2001:db8:f3::/64)", nil},
		{"the whole /64", ndpUplink, "2001:db8:f3::/64", "whole on-link prefix", nil},
		{"overlapping another's", ndpUplink, "2001:db8:f3:0:e0::/96", "overlaps subnet 2001:db8:f3:0:e0::/80 of network aaaaaaaaaaaa", nil},
		{"internal", ndpUplink, ndpSubnet, "--internal network", map[string]interface{}{optInternal: true}},
		{"nat", ndpUplink, ndpSubnet, "ipv6_mode=nat", map[string]interface{}{"ipv6_mode": "nat"}},
	}
	for _, c := range cases {
		opts := ndpOpts(c.link)
		for k, v := range c.opts {
			if k == optInternal {
				opts[k] = v
			} else {
				opts[optGeneric].(map[string]interface{})[k] = v
			}
		}
		err := netns.Do(h.host.Path, func() error {
			return h.d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "ffffffffffff7777", Options: opts,
				IPv6Data: []*api.IPAMData{{AddressSpace: "local", Pool: c.subnet}}})
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	// --ipam-opt ndp_proxy=IF without --ipv6: only an IPv4 pool, marked
	// as IF's.
	v4, err := h.book.RequestPool(addrbook.PoolRequest{Space: "local", Subnet: "203.0.113.0/24", OnLink: &addrbook.OnLinkRequest{Interface: ndpUplink}})
	if err != nil {
		t.Fatal(err)
	}
	err = netns.Do(h.host.Path, func() error {
		return h.d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "ffffffffffff8888", Options: map[string]interface{}{},
			IPv4Data: []*api.IPAMData{{AddressSpace: "local", Pool: v4.Prefix.String()}}})
	})
	if err == nil || !strings.Contains(err.Error(), "ndp_proxy=dstup0: needs IPv6") {
		t.Errorf("--ipam-opt ndp_proxy without --ipv6: err = %v, want one saying it needs IPv6", err)
	}
	if len(h.d.networks) != 2 {
		t.Errorf("refused creates left %d networks recorded", len(h.d.networks)-2)
	}
	if got := h.ndpSysctls(); !slices.Equal(got, before) {
		t.Errorf("sysctls after the refusals = %v, want %v", got, before)
	}
}

// TestNDPProxyRenumbering: the provider renumbers the link (a new /64 on
// the uplink, the old one deprecated): a running container gets an
// address in the new /64 in its subnet's place, with the host part of its
// own, answered for on the link; its own address is deprecated, not
// removed; the bridge gets the gateway's there too.
func TestNDPProxyRenumbering(t *testing.T) {
	h := newHarness(t)
	ndpBed(t, h)
	const nid, eid, mac = "aaaaaaaaaaaa5555", "bbbbbbbbbbbb5555", "02:42:c0:00:55:02"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, ndpOpts(ndpUplink), "198.51.100.0/24", ndpSubnet))
	})
	h.endpoint(nid, eid, mac, "198.51.100.0/24", ndpSubnet)
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	// Gateway ::1, the neighbour ::3 passed over: the endpoint has ::2.
	h.moveIn(sb, "dscbbbbbbbbbbbb", "eth0", "198.51.100.2/24", "2001:db8:f3:0:d0::2/80")
	h.in(func() error {
		return h.d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
	})

	h.host.IP(t, "-6", "addr", "add", "2001:db8:f4::2/64", "dev", ndpUplink, "nodad", "valid_lft", "120", "preferred_lft", "60")
	h.host.IP(t, "-6", "addr", "change", "2001:db8:f3::2/64", "dev", ndpUplink, "valid_lft", "100", "preferred_lft", "0")
	const renumbered = "2001:db8:f4:0:d0::2/80"
	deadline := time.Now().Add(3 * time.Second)
	for findAddr(sb.Addrs(t, "eth0"), renumbered) == nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	addrs := sb.Addrs(t, "eth0")
	if a := findAddr(addrs, renumbered); a == nil || a.Deprecated || !a.NoDAD || a.Valid > 120 || a.Valid < 110 {
		t.Fatalf("container after the renumbering: %+v, want %s nodad, preferred, valid for the link prefix's 120 s", addrs, renumbered)
	}
	deadline = time.Now().Add(3 * time.Second)
	for a := findAddr(sb.Addrs(t, "eth0"), "2001:db8:f3:0:d0::2/80"); (a == nil || !a.Deprecated) && time.Now().Before(deadline); a = findAddr(sb.Addrs(t, "eth0"), "2001:db8:f3:0:d0::2/80") {
		time.Sleep(20 * time.Millisecond)
	}
	if a := findAddr(sb.Addrs(t, "eth0"), "2001:db8:f3:0:d0::2/80"); a == nil || !a.Deprecated || a.Valid != 0xffffffff {
		t.Fatalf("container's own address after the renumbering: %+v, want it deprecated and valid forever", a)
	}
	deadline = time.Now().Add(3 * time.Second)
	for !slices.Contains(h.proxied(ndpUplink), netip.MustParseAddr("2001:db8:f4:0:d0::2")) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := h.proxied(ndpUplink); !slices.Contains(got, netip.MustParseAddr("2001:db8:f4:0:d0::2")) {
		t.Fatalf("proxy entries on %s = %v, want the renumbered address answered for", ndpUplink, got)
	}
	if a := findAddr(h.host.Addrs(t, "ds-aaaaaaaaaaaa"), "2001:db8:f4:0:d0::1/80"); a == nil {
		t.Fatalf("bridge after the renumbering: %v, want the gateway's 2001:db8:f4:0:d0::1/80", h.host.Addrs(t, "ds-aaaaaaaaaaaa"))
	}

	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
	if got := h.proxied(ndpUplink); len(got) != 0 {
		t.Errorf("proxy entries after the network went: %v", got)
	}
}
