package kernel

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// hostGW and learned stand for the protocols of dualstack's own routes,
// which the routes package numbers and the driver leaves out.
const (
	hostGW  netlink.RouteProtocol = 213
	learned netlink.RouteProtocol = 214
)

// route is a main-table route as netlink lists it.
func route(dst, via string, link int, proto netlink.RouteProtocol, typ int) netlink.Route {
	r := netlink.Route{LinkIndex: link, Protocol: proto, Type: typ, Table: unix.RT_TABLE_MAIN}
	if dst != "" {
		_, r.Dst, _ = net.ParseCIDR(dst)
	}
	if via != "" {
		r.Gw = net.ParseIP(via)
	}
	return r
}

// TestHostRoutesFrom: which of the host's routes count as the host's own
// (root-free: the routes as netlink lists them).
func TestHostRoutesFrom(t *testing.T) {
	names := map[int]string{2: "eth0", 3: "wg0"} // 7 is one of dualstack's links
	multi := route("198.18.64.0/24", "", 0, unix.RTPROT_STATIC, unix.RTN_UNICAST)
	multi.MultiPath = []*netlink.NexthopInfo{{LinkIndex: 2, Gw: net.ParseIP("192.0.2.1")}, {LinkIndex: 3}}
	ownMulti := route("198.18.65.0/24", "", 0, unix.RTPROT_STATIC, unix.RTN_UNICAST)
	ownMulti.MultiPath = []*netlink.NexthopInfo{{LinkIndex: 7}}
	routes := []netlink.Route{
		route("", "192.0.2.1", 2, unix.RTPROT_DHCP, unix.RTN_UNICAST),                  // default route
		route("0.0.0.0/0", "192.0.2.1", 2, unix.RTPROT_STATIC, unix.RTN_UNICAST),       // default route, spelt out
		route("192.0.2.0/24", "", 2, unix.RTPROT_KERNEL, unix.RTN_UNICAST),             // the LAN's
		route("198.18.5.0/24", "192.0.2.254", 2, unix.RTPROT_STATIC, unix.RTN_UNICAST), // via a router
		route("2001:db8:5::/48", "fe80::1", 2, unix.RTPROT_RA, unix.RTN_UNICAST),       // router advertisement
		route("10.8.0.0/16", "", 3, unix.RTPROT_BOOT, unix.RTN_UNICAST),                // a VPN's
		route("198.51.100.0/24", "", 7, unix.RTPROT_KERNEL, unix.RTN_UNICAST),          // dualstack's bridge
		route("198.18.9.0/26", "192.0.2.9", 2, hostGW, unix.RTN_UNICAST),               // host-gw cluster route
		route("198.18.10.0/26", "192.0.2.10", 2, learned, unix.RTN_UNICAST),            // learned over BGP
		route("10.0.0.0/8", "", 0, unix.RTPROT_STATIC, unix.RTN_BLACKHOLE),             // policy
		route("172.16.0.0/12", "", 0, unix.RTPROT_STATIC, unix.RTN_UNREACHABLE),        // policy
		route("169.254.0.0/16", "", 2, unix.RTPROT_BOOT, unix.RTN_UNICAST),             // link-local
		route("fe80::/64", "", 2, unix.RTPROT_KERNEL, unix.RTN_UNICAST),                // link-local
		route("::1/128", "", 1, unix.RTPROT_KERNEL, unix.RTN_UNICAST),                  // loopback (lo not in names)
		route("ff00::/8", "", 2, unix.RTPROT_BOOT, unix.RTN_UNICAST),                   // multicast
		route("203.0.113.0/24", "", 9, unix.RTPROT_STATIC, unix.RTN_UNICAST),           // a link gone meanwhile
		multi, ownMulti,
	}
	var got []string
	for _, r := range HostRoutesFrom(routes, names, hostGW, learned) {
		got = append(got, r.String())
	}
	want := []string{
		"192.0.2.0/24 dev eth0 proto kernel",
		"198.18.5.0/24 via 192.0.2.254 dev eth0 proto static",
		"2001:db8:5::/48 via fe80::1 dev eth0 proto ra",
		"10.8.0.0/16 dev wg0 proto boot",
		"198.18.64.0/24 proto static",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("host routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
