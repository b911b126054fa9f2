package driver

import (
	"net/netip"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// TestParentPlan is the link plan of 802.1q parents: create one that is
// missing, reuse one that exists, share ownership with the network that
// created it, and remove it only with the last network on it; a parent
// the host had is never dualstack's.
func TestParentPlan(t *testing.T) {
	on := func(parent string, created bool) *network {
		return &network{Options: netOptions{Mode: ModeMacvlan, Parent: parent}, CreatedParent: created}
	}
	cases := []struct {
		name          string
		parent        string
		exists        bool
		sharing       []*network
		create, owned bool
		err           string
	}{
		{"missing VLAN parent: create and own it", "eth0.10", false, nil, true, true, ""},
		{"VLAN parent another network created: reuse, co-own", "eth0.10", true, []*network{on("eth0.10", true)}, false, true, ""},
		{"VLAN parent the host had: reuse, never own", "eth0.10", true, []*network{on("eth0.10", false)}, false, false, ""},
		{"existing plain parent", "eth0", true, nil, false, false, ""},
		{"missing plain parent", "eth9", false, nil, false, false, "parent eth9 does not exist on the host"},
		{"missing, not a VLAN name", "eth0.x", false, nil, false, false, "does not exist"},
	}
	for _, c := range cases {
		create, owned, err := planParent(c.parent, c.exists, c.sharing)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.name, err, c.err)
			}
			continue
		}
		if err != nil || create != c.create || owned != c.owned {
			t.Errorf("%s: create=%t owned=%t err=%v; want create=%t owned=%t", c.name, create, owned, err, c.create, c.owned)
		}
	}
	// Remove when the last owner goes, not before; never the host's.
	a, b := on("eth0.10", true), on("eth0.10", true)
	if removeParent(a, []*network{b}) {
		t.Error("removing the parent while another network uses it")
	}
	if !removeParent(b, nil) {
		t.Error("the last network on a created parent does not remove it")
	}
	if removeParent(on("eth0.10", false), nil) {
		t.Error("removing a parent the host had")
	}
}

// TestMacvlanLifecycle runs a macvlan network on a veth parent: no address
// kept for a gateway that does not exist, a given gateway honoured, the
// child moved into a container with every address, the host shim, and
// nothing left after the network goes.
func TestMacvlanLifecycle(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "add", "dstpar", "type", "veth", "peer", "name", "dstlan")
	h.host.IP(t, "link", "set", "dstpar", "up")
	const nid = "dddddddddddd4444"
	v4, v6a, v6b := "192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"
	opts := map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"mode": "macvlan", "parent": "dstpar", "host_link": "true"}}
	req := h.network(nid, opts, v4, v6a, v6b)
	// The user named the IPv4 gateway (the router); the IPv6 ones were picked by the IPAM.
	pool4 := h.poolID(v4)
	h.in(func() error {
		return h.giveAddrBack(pool4, "192.0.2.1")
	})
	if _, err := h.book.RequestAddress(pool4, "192.0.2.254", addrbook.Owner{Kind: addrbook.Gateway}); err != nil {
		t.Fatal(err)
	}
	req.IPv4Data[0].Gateway = "192.0.2.254/24"
	h.in(func() error { return h.d.CreateNetwork(req) })

	// The IPv6 gateways the IPAM picked are free again (the host link may
	// take one, see below); the router's is held.
	for _, c := range []struct {
		pool, addr string
		free       bool
	}{{v6b, "2001:db8:2::1", true}, {v4, "192.0.2.254", false}} {
		_, err := h.book.RequestAddress(h.poolID(c.pool), c.addr, addrbook.Owner{})
		if (err == nil) != c.free {
			t.Errorf("%s free=%t, want %t (%v)", c.addr, err == nil, c.free, err)
		}
		if err == nil {
			_ = h.giveAddrBack(h.poolID(c.pool), c.addr)
		}
	}
	// The host link: one address per family, routes to every subnet.
	shim := "dsh" + nid[:12]
	var shimAddrs []string
	for _, a := range h.host.Addrs(t, shim) {
		if a.Scope == "global" {
			shimAddrs = append(shimAddrs, a.Prefix().String())
		}
	}
	if len(shimAddrs) != 2 || !strings.HasPrefix(shimAddrs[0], "192.0.2.") || !strings.HasPrefix(shimAddrs[1], "2001:db8:1::") {
		t.Errorf("host link addresses %v", shimAddrs)
	}
	if r := string(h.host.IP(t, "-6", "route", "show", "dev", shim)); !strings.Contains(r, "2001:db8:2::/64") {
		t.Errorf("host link routes:\n%s", r)
	}

	const eid, mac = "ffffffffffff5555", "02:42:c0:00:02:07"
	h.endpoint(nid, eid, mac, v4, v6a)
	if l, ok := h.host.Link(t, "dscffffffffffff"); !ok || l.LinkInfo.Kind != "macvlan" || l.Link != "dstpar" || l.LinkInfo.Data.Mode != "bridge" {
		t.Fatalf("child: %+v", l)
	}
	sb := netnstest.New(t)
	var join *api.JoinResponse
	h.in(func() (err error) {
		join, err = h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	if join.Gateway != "192.0.2.254" || join.GatewayIPv6 != "" {
		t.Errorf("gateways %q %q: want the router's IPv4 one only", join.Gateway, join.GatewayIPv6)
	}
	h.moveIn(sb, "dscffffffffffff", "eth0")
	// Docker's own addresses plus the extra one, all nodad.
	var global []string
	for i := 0; i < 200 && len(global) < 1; i++ {
		global = nil
		for _, a := range sb.Addrs(t, "eth0") {
			if a.Scope == "global" && strings.HasPrefix(a.Local, "2001:db8:2::") && a.NoDAD {
				global = append(global, a.Local)
			}
		}
	}
	if len(global) != 1 {
		t.Fatalf("extra address missing in the container: %v", sb.Addrs(t, "eth0"))
	}
	if ra := sb.Sysctl(t, "net/ipv6/conf/eth0/accept_ra"); ra != "0" {
		t.Errorf("container accept_ra %s", ra)
	}

	// A restart puts back a host link someone deleted and removes a
	// macvlan child of dualstack's no endpoint claims (left by a crash);
	// an unmarked one with a name of that form is somebody else's and
	// stays.
	h.host.IP(t, "link", "del", shim)
	h.host.IP(t, "link", "add", "dscaaaaaaaaaaaa", "link", "dstpar", "type", "macvlan")
	h.host.IP(t, "link", "set", "dscaaaaaaaaaaaa", "alias", "dualstack:endpoint:aaaaaaaaaaaa0000")
	h.host.IP(t, "link", "add", "dscbbbbbbbbbbbb", "link", "dstpar", "type", "macvlan")
	h.restart()
	if _, ok := h.host.Link(t, shim); !ok {
		t.Error("host link not restored at start")
	}
	if _, ok := h.host.Link(t, "dscaaaaaaaaaaaa"); ok {
		t.Error("orphan macvlan child left at start")
	}
	if _, ok := h.host.Link(t, "dscbbbbbbbbbbbb"); !ok {
		t.Error("an unmarked macvlan named like dualstack's was deleted at start")
	}
	h.host.IP(t, "link", "del", "dscbbbbbbbbbbbb")

	h.in(func() error { return h.d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: eid}) })
	h.in(func() error { return h.d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}) })
	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
	if _, ok := h.host.Link(t, shim); ok {
		t.Error("host link left after the network went")
	}
	if _, ok := h.host.Link(t, "dstpar"); !ok {
		t.Error("the host's parent was removed")
	}
	// The shim's addresses went back to the IPAM.
	if _, err := h.book.RequestAddress(h.poolID(v4), netip.MustParsePrefix(shimAddrs[0]).Addr().String(), addrbook.Owner{}); err != nil {
		t.Errorf("host link address not released: %v", err)
	}
}

// TestMacvlanRefusals: a parent that does not exist, and passthru on a
// parent another network uses, are refused and leave nothing.
func TestMacvlanRefusals(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "add", "dstpar", "type", "veth", "peer", "name", "dstlan")
	mk := func(id, parent, mode, subnet string) error {
		opts := map[string]interface{}{optGeneric: map[string]interface{}{"mode": "macvlan", "parent": parent, "macvlan_mode": mode}}
		var err error
		req := h.network(id, opts, subnet)
		h.in(func() error { err = h.d.CreateNetwork(req); return nil })
		return err
	}
	if err := mk("aaaa00000000aaaa", "dstnothere", "bridge", "192.0.2.0/26"); err == nil || !strings.Contains(err.Error(), "parent dstnothere does not exist on the host") {
		t.Errorf("missing parent: %v", err)
	}
	if err := mk("aaaa00000000bbbb", "dstpar", "bridge", "192.0.2.64/26"); err != nil {
		t.Fatal(err)
	}
	if err := mk("aaaa00000000cccc", "dstpar", "passthru", "192.0.2.128/26"); err == nil || !strings.Contains(err.Error(), "passthru takes the whole parent") {
		t.Errorf("passthru on a shared parent: %v", err)
	}
	if len(h.d.networks) != 1 {
		t.Errorf("refused networks recorded: %d networks", len(h.d.networks))
	}
	if links := h.host.Links(t); len(links) != 3 {
		t.Errorf("links after refusals: %+v", links)
	}
}

// TestCheckBridgeParent: a bridge is a LAN's interface only with a port
// that is not a veth (root-free: the ports as netlink lists them).
func TestCheckBridgeParent(t *testing.T) {
	veth := func(name string) netlink.Link { return &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}} }
	for _, c := range []struct {
		name  string
		ports []netlink.Link
		words []string // nil: accepted
	}{
		{"no port", nil, []string{"parent br-x is a bridge with no port,", "Docker network", "whatever its name", "give the interface of a LAN"}},
		{"containers' veths", []netlink.Link{veth("vethb2"), veth("veth1a")}, []string{"no port but veths (veth1a, vethb2)", "Docker network"}},
		{"a physical port", []netlink.Link{&netlink.Device{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}}}, nil},
		{"a bond and veths", []netlink.Link{veth("veth1"), &netlink.Bond{LinkAttrs: netlink.LinkAttrs{Name: "bond0"}}}, nil},
		{"a VLAN", []netlink.Link{&netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "eth0.10"}, VlanId: 10}}, nil},
		{"a VXLAN", []netlink.Link{&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "vx0"}}}, nil},
	} {
		wantWords(t, c.name, checkBridgeParent("br-x", c.ports), c.words)
	}
}

// TestMacvlanBridgeParent: in a host's namespace, a bridge of Docker's
// shape (a custom name; no port, or only veths) is refused as a parent
// and leaves nothing; a LAN's bridge (a VXLAN as its port) is a parent.
func TestMacvlanBridgeParent(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "add", "dstcustom", "type", "bridge")
	h.host.IP(t, "link", "add", "dstctr", "type", "bridge")
	h.host.IP(t, "link", "add", "dstcv0", "type", "veth", "peer", "name", "dstcv1")
	h.host.IP(t, "link", "set", "dstcv0", "master", "dstctr")
	h.host.IP(t, "link", "add", "dstlanbr", "type", "bridge")
	// The LAN's uplink: a VXLAN. Any kind but a veth would do; this one
	// needs no module a test machine may lack (dummy, 8021q).
	h.host.IP(t, "link", "add", "dstvx", "type", "vxlan", "id", "7", "dstport", "4789")
	h.host.IP(t, "link", "set", "dstvx", "master", "dstlanbr")
	for _, l := range []string{"dstcustom", "dstctr", "dstlanbr", "dstvx"} {
		h.host.IP(t, "link", "set", l, "up")
	}
	mk := func(id, parent, subnet string) error {
		req := &api.CreateNetworkRequest{NetworkID: id, Options: map[string]interface{}{optGeneric: map[string]interface{}{"mode": "macvlan", "parent": parent}},
			IPv4Data: []*api.IPAMData{{AddressSpace: "local", Pool: subnet, Gateway: netip.MustParsePrefix(subnet).Addr().Next().String()}}}
		var err error
		h.in(func() error { err = h.d.CreateNetwork(req); return nil })
		return err
	}
	before := h.host.Links(t)
	for parent, words := range map[string][]string{
		"dstcustom": {"parent dstcustom is a bridge with no port,", "Docker network"},
		"dstctr":    {"parent dstctr is a bridge with no port but veths (dstcv0)", "Docker network"},
	} {
		if err := mk("bbbb00000000aaaa", parent, "198.51.100.0/26"); err == nil {
			t.Errorf("parent %s accepted", parent)
		} else {
			for _, w := range words {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("parent %s: %q does not say %q", parent, err, w)
				}
			}
		}
	}
	if after := h.host.Links(t); len(after) != len(before) || len(h.d.networks) != 0 {
		t.Fatalf("refused networks left something: %d networks, %d links before, %d after", len(h.d.networks), len(before), len(after))
	}
	if err := mk("bbbb00000000bbbb", "dstlanbr", "198.51.100.64/26"); err != nil {
		t.Fatalf("a LAN's bridge as the parent: %v", err)
	}
}
