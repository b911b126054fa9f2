package driver

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/kernel"
)

// TestCheckHostRoutes: a subnet that overlaps a route of the host is
// refused naming the route and what to do, unless the route is the LAN a
// macvlan network shares, the network routes its cluster's blocks itself,
// or host_overlap=true.
func TestCheckHostRoutes(t *testing.T) {
	routes := []kernel.HostRoute{
		{Dst: netip.MustParsePrefix("192.0.2.0/24"), Iface: "eth0", Proto: unix.RTPROT_KERNEL},
		{Dst: netip.MustParsePrefix("198.18.5.0/24"), Iface: "eth0", Via: netip.MustParseAddr("192.0.2.254"), Proto: unix.RTPROT_STATIC},
		{Dst: netip.MustParsePrefix("2001:db8:5::/48"), Iface: "eth0", Via: netip.MustParseAddr("fe80::1"), Proto: unix.RTPROT_RA},
	}
	net := func(opts netOptions, subnets ...string) *network {
		n := &network{ID: "0123456789ab", Options: opts}
		for _, s := range subnets {
			p := pool{Prefix: netip.MustParsePrefix(s)}
			if p.Prefix.Addr().Is4() {
				n.V4 = append(n.V4, p)
			} else {
				n.V6 = append(n.V6, p)
			}
		}
		return n
	}
	bridge := netOptions{Mode: ModeBridge}
	for _, c := range []struct {
		name  string
		n     *network
		lan   string
		words []string // nil: accepted
	}{
		{"inside a route via a router", net(bridge, "198.18.5.0/26"), "", []string{"subnet 198.18.5.0/26", "198.18.5.0/24 via 192.0.2.254 dev eth0 proto static", "host_overlap=true", "choose another subnet"}},
		{"the route itself", net(bridge, "198.18.5.0/24"), "", []string{"198.18.5.0/24 via 192.0.2.254"}},
		{"around a route", net(bridge, "198.18.0.0/16"), "", []string{"subnet 198.18.0.0/16", "198.18.5.0/24"}},
		{"IPv6 inside a route", net(bridge, "198.51.100.0/24", "2001:db8:5:1::/64"), "", []string{"subnet 2001:db8:5:1::/64", "2001:db8:5::/48 via fe80::1 dev eth0 proto ra"}},
		{"clear of every route", net(bridge, "198.18.6.0/24", "2001:db8:6::/64"), "", nil},
		{"host_overlap=true", net(netOptions{Mode: ModeBridge, HostOverlap: true}, "198.18.5.0/26"), "", nil},
		{"a macvlan network on the LAN", net(netOptions{Mode: ModeMacvlan, Parent: "eth0"}, "192.0.2.128/25"), "eth0", nil},
		{"a macvlan network elsewhere", net(netOptions{Mode: ModeMacvlan, Parent: "eth1"}, "192.0.2.128/25"), "eth1", []string{"192.0.2.0/24 dev eth0 proto kernel"}},
		{"cluster_routes=none", net(netOptions{Mode: ModeBridge, Cluster: "c", ClusterRoutes: clusterRoutesNone}, "198.18.0.0/16"), "", nil},
		{"cluster_routes=host-gw", net(netOptions{Mode: ModeBridge, Cluster: "c", ClusterRoutes: clusterRoutesHostGW}, "198.18.0.0/16"), "", []string{"198.18.5.0/24"}},
	} {
		wantWords(t, c.name, checkHostRoutes(c.n, c.lan, routes), c.words)
	}
}

// TestCreateNetworkRefusesHostRoutes: in a host's namespace, a subnet
// inside (or around) a route of the host's is refused naming the route
// and leaves nothing; dualstack's own routes (a network's bridge, the
// cluster's protocols) and policy routes are no reason to refuse, and a
// network removed can be created again.
func TestCreateNetworkRefusesHostRoutes(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "add", "dstrt0", "type", "veth", "peer", "name", "dstrt1")
	h.host.IP(t, "link", "set", "dstrt1", "up")
	h.host.IP(t, "addr", "add", "203.0.113.2/24", "dev", "dstrt0")
	h.host.IP(t, "-6", "addr", "add", "2001:db8:ff::2/64", "dev", "dstrt0", "nodad")
	h.host.IP(t, "link", "set", "dstrt0", "up")
	h.host.IP(t, "route", "add", "198.18.5.0/24", "via", "203.0.113.1", "proto", "static")
	h.host.IP(t, "-6", "route", "add", "2001:db8:5::/48", "via", "2001:db8:ff::1")
	h.host.IP(t, "route", "add", "198.18.8.0/26", "via", "203.0.113.8", "proto", "213") // a host-gw cluster route
	h.host.IP(t, "route", "add", "198.18.9.0/26", "via", "203.0.113.9", "proto", "214") // learned over BGP
	h.host.IP(t, "route", "add", "blackhole", "10.0.0.0/8")
	create := func(id string, v4, v6 string) error {
		req := &api.CreateNetworkRequest{NetworkID: id, Options: map[string]interface{}{optEnableIPv6: v6 != ""},
			IPv4Data: []*api.IPAMData{{AddressSpace: "local", Pool: v4}}}
		if v6 != "" {
			req.IPv6Data = []*api.IPAMData{{AddressSpace: "local", Pool: v6}}
		}
		var err error
		h.in(func() error { err = h.d.CreateNetwork(req); return nil })
		return err
	}
	linksBefore, routesBefore := len(h.host.Links(t)), string(h.host.IP(t, "route", "show", "table", "all"))
	for _, c := range []struct {
		name, v4, v6 string
		words        []string
	}{
		{"inside a route via a router", "198.18.5.0/26", "", []string{"subnet 198.18.5.0/26 overlaps the host's route 198.18.5.0/24 via 203.0.113.1 dev dstrt0 proto static", "host_overlap=true"}},
		{"around a route", "198.18.0.0/16", "", []string{"198.18.5.0/24 via 203.0.113.1"}},
		{"IPv6 inside a route", "198.51.100.0/24", "2001:db8:5:1::/64", []string{"subnet 2001:db8:5:1::/64 overlaps the host's route 2001:db8:5::/48 via 2001:db8:ff::1 dev dstrt0"}},
	} {
		err := create("abcdabcdabcd0001", c.v4, c.v6)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		for _, w := range c.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", c.name, err, w)
			}
		}
	}
	if len(h.d.networks) != 0 || len(h.host.Links(t)) != linksBefore || string(h.host.IP(t, "route", "show", "table", "all")) != routesBefore {
		t.Fatalf("refused networks left something: %d networks, links %+v", len(h.d.networks), h.host.Links(t))
	}
	// Not the host's: dualstack's cluster routes, a blackhole; and a
	// network's own bridge route when it is created again.
	for i, subnet := range []string{"198.18.8.0/24", "198.18.9.0/24", "10.1.0.0/24", "198.18.6.0/24"} {
		if err := create(fmt.Sprintf("abcdabcdab%02d0002", i), subnet, ""); err != nil {
			t.Errorf("%s refused: %v", subnet, err)
		}
	}
	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: "abcdabcdab030002"}) })
	if err := create("abcdabcdab030002", "198.18.6.0/24", ""); err != nil {
		t.Errorf("a network created again: %v", err)
	}
	// With host_overlap=true the route is the user's business.
	req := &api.CreateNetworkRequest{NetworkID: "abcdabcdabcd0003", Options: map[string]interface{}{optGeneric: map[string]interface{}{"host_overlap": "true"}},
		IPv4Data: []*api.IPAMData{{AddressSpace: "local", Pool: "198.18.5.0/26"}}}
	h.in(func() error { return h.d.CreateNetwork(req) })
}

// TestContainerNetsByShape: the container networks next hops may not lie
// in (learned and host-gw routes) include a Docker network whose bridge
// has a custom name (no port but veths), and not a LAN's bridge (a
// VXLAN as its port) nor a plain interface of the host.
func TestContainerNetsByShape(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "add", "dkcustom", "type", "bridge")
	h.host.IP(t, "link", "add", "dkcv0", "type", "veth", "peer", "name", "dkcv1")
	h.host.IP(t, "link", "set", "dkcv0", "master", "dkcustom")
	h.lanBridge("lanbr")
	for l, a := range map[string]string{"dkcustom": "203.0.113.1/24", "lanbr": "198.18.77.1/24", "dkcv1": "198.18.78.1/24"} {
		h.host.IP(t, "addr", "add", a, "dev", l)
		h.host.IP(t, "link", "set", l, "up")
	}
	var got []netip.Prefix
	h.in(func() error { got = h.d.routes.ContainerNets(); return nil })
	want := netip.MustParsePrefix("203.0.113.0/24")
	if !slices.Contains(got, want) {
		t.Errorf("container networks %v lack %s, the network of a Docker bridge with a custom name", got, want)
	}
	for _, p := range []string{"198.18.77.0/24", "198.18.78.0/24"} {
		if slices.Contains(got, netip.MustParsePrefix(p)) {
			t.Errorf("container networks %v hold %s, a LAN of the host's", got, p)
		}
	}
}

// lanBridge makes bridge name in the harness's host as a host's LAN
// bridge is: up, with an uplink port (a VXLAN: the kernel may have no
// dummy module). A bridge with no port, or only veths, would be a
// container network's (kernel.ContainerBridge).
func (h *harness) lanBridge(name string) {
	h.t.Helper()
	port := name + "-vx"
	h.host.IP(h.t, "link", "add", name, "type", "bridge")
	h.host.IP(h.t, "link", "add", port, "type", "vxlan", "id", "9", "dstport", "4789")
	h.host.IP(h.t, "link", "set", port, "master", name)
	h.host.IP(h.t, "link", "set", port, "up")
	h.host.IP(h.t, "link", "set", name, "up")
}

// wantWords checks the outcome err of case what: no error when words is
// nil, else an error that says each of words.
func wantWords(t *testing.T, what string, err error, words []string) {
	t.Helper()
	switch {
	case words == nil && err != nil:
		t.Errorf("%s: %v", what, err)
	case words == nil:
	case err == nil:
		t.Errorf("%s: accepted", what)
	default:
		for _, w := range words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", what, err, w)
			}
		}
	}
}
