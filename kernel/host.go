package kernel

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/links"
)

// The host's own networks, as the kernel's listings show them: its links,
// addresses and routes that dualstack did not make, and the networks of
// container bridges. What to refuse or hold because of them is decided
// by the layers above.

// HostPrefixes lists the destinations of the host's routes (main table,
// default routes excluded) and the subnets of its addresses, of one family.
// Default pools that overlap any of them are skipped.
func HostPrefixes(v6 bool) ([]netip.Prefix, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	routes, err := Routes(family, nil, 0)
	if err != nil {
		return nil, err
	}
	addrs, err := Addrs(nil, family)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	add := func(n *net.IPNet) {
		if n == nil {
			return
		}
		ones, _ := n.Mask.Size()
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || ones == 0 {
			return
		}
		a = a.Unmap()
		if a.IsLinkLocalUnicast() || a.IsLoopback() || a.IsMulticast() {
			return
		}
		out = append(out, netip.PrefixFrom(a, ones).Masked())
	}
	for _, r := range routes {
		add(r.Dst)
	}
	for _, a := range addrs {
		add(a.IPNet)
	}
	return out, nil
}

// HostAddr is an address on one of the host's interfaces.
type HostAddr struct {
	Iface  string
	Prefix netip.Prefix // the address, with its network's length
}

// LinkNames maps the index of each of the host's links that dualstack
// did not make (links.Mark) to its name.
func LinkNames() (map[int]string, error) {
	list, err := Links()
	if err != nil {
		return nil, fmt.Errorf("list the host's interfaces: %w", err)
	}
	names := map[int]string{}
	for _, l := range list {
		if links.Owner(l) == "" {
			names[l.Attrs().Index] = l.Attrs().Name
		}
	}
	return names, nil
}

// HostAddrs lists the global addresses on the host's interfaces, those on
// dualstack's own links (links.Mark) left out.
func HostAddrs() ([]HostAddr, error) {
	names, err := LinkNames()
	if err != nil {
		return nil, err
	}
	addrs, err := Addrs(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var out []HostAddr
	for _, a := range addrs {
		iface, ok := names[a.LinkIndex]
		p, okP := addrPrefix(a)
		if !ok || !okP {
			continue
		}
		if ip := p.Addr(); ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
			continue
		}
		out = append(out, HostAddr{Iface: iface, Prefix: p})
	}
	return out, nil
}

// AllAddrs lists every address on every link, dualstack's and the
// loopback's included, each with its link's name ("" for a link gone
// meanwhile), and the links' indexes by name.
func AllAddrs() ([]HostAddr, map[string]int, error) {
	list, err := Links()
	if err != nil {
		return nil, nil, err
	}
	index, names := map[string]int{}, map[int]string{}
	for _, l := range list {
		index[l.Attrs().Name] = l.Attrs().Index
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := Addrs(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, nil, err
	}
	out := make([]HostAddr, 0, len(addrs))
	for _, a := range addrs {
		if p, ok := addrPrefix(a); ok {
			out = append(out, HostAddr{Iface: names[a.LinkIndex], Prefix: p})
		}
	}
	return out, index, nil
}

// addrPrefix is a's address with its network's length; false for none.
func addrPrefix(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := a.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

// HostRoute is a route of the host's main table that dualstack did not
// make.
type HostRoute struct {
	Dst   netip.Prefix
	Iface string     // its interface; "" for one of several next hops
	Via   netip.Addr // its gateway, if any
	Proto netlink.RouteProtocol
}

func (r HostRoute) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Iface != "" {
		s += " dev " + r.Iface
	}
	return s + " proto " + r.Proto.String()
}

// HostRoutes lists the host's own routes to networks (main table, both
// families), those of the protocols own left out: HostRoutesFrom's.
func HostRoutes(own ...netlink.RouteProtocol) ([]HostRoute, error) {
	names, err := LinkNames()
	if err != nil {
		return nil, err
	}
	routes, err := Routes(netlink.FAMILY_ALL, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("list the host's routes: %w", err)
	}
	return HostRoutesFrom(routes, names, own...), nil
}

// HostRoutesFrom keeps, of all, the routes that send a network somewhere
// the host chose: unicast routes to a unicast network other than the
// default route, through an interface in names (the host's links that
// dualstack did not make, LinkNames). Left out are dualstack's own: the
// routes on its links (a bridge's connected routes, a shim's) and those
// of the protocols own (the cluster's host-gw routes, routes learned over
// BGP: the routes package owns their numbers); blackhole, unreachable,
// prohibit and throw routes, which are policy rather than a place; and
// link-local, loopback and multicast ones.
func HostRoutesFrom(all []netlink.Route, names map[int]string, own ...netlink.RouteProtocol) []HostRoute {
	var out []HostRoute
	for _, r := range all {
		if r.Type != unix.RTN_UNICAST || slices.Contains(own, r.Protocol) || r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones == 0 {
			continue
		}
		a = a.Unmap()
		if a.IsLinkLocalUnicast() || a.IsLoopback() || a.IsMulticast() {
			continue
		}
		h := HostRoute{Dst: netip.PrefixFrom(a, ones).Masked(), Proto: r.Protocol}
		h.Via, _ = netip.AddrFromSlice(r.Gw)
		h.Via = h.Via.Unmap()
		switch {
		case r.LinkIndex != 0:
			name, ok := names[r.LinkIndex]
			if !ok {
				continue // on one of dualstack's links
			}
			h.Iface = name
		case len(r.MultiPath) > 0:
			if !slices.ContainsFunc(r.MultiPath, func(nh *netlink.NexthopInfo) bool { _, ok := names[nh.LinkIndex]; return ok }) {
				continue
			}
		default:
			continue
		}
		out = append(out, h)
	}
	return out
}

// dockerBridgeName matches the names Docker gives its own bridges.
var dockerBridgeName = regexp.MustCompile(`^(docker0|br-[0-9a-f]{12})$`)

// DockerBridgeName reports whether name is one Docker gives its own
// bridges.
func DockerBridgeName(name string) bool { return dockerBridgeName.MatchString(name) }

// VethPorts returns the names of ports, sorted, and whether every port is
// a veth (none at all counts): the shape of a container network's
// bridge.
func VethPorts(ports []netlink.Link) (veths []string, only bool) {
	for _, p := range ports {
		if p.Type() != "veth" {
			return nil, false
		}
		veths = append(veths, p.Attrs().Name)
	}
	slices.Sort(veths)
	return veths, true
}

// PortsOf returns the links of all that are ports of bridge l.
func PortsOf(l netlink.Link, all []netlink.Link) []netlink.Link {
	var ports []netlink.Link
	for _, p := range all {
		if p.Attrs().MasterIndex == l.Attrs().Index {
			ports = append(ports, p)
		}
	}
	return ports
}

// ContainerBridge reports whether l (one of all, the host's links) is the
// bridge of a container network, Docker's or dualstack's, whatever its
// name: named as Docker names its own, or with no port but veths.
func ContainerBridge(l netlink.Link, all []netlink.Link) bool {
	if l.Type() != "bridge" {
		return false
	}
	if DockerBridgeName(l.Attrs().Name) {
		return true
	}
	_, only := VethPorts(PortsOf(l, all))
	return only
}

// ContainerBridgeNets are the networks of the addresses on the bridges of
// container networks, Docker's among them whatever their names
// (ContainerBridge).
func ContainerBridgeNets() ([]netip.Prefix, error) {
	list, err := Links()
	if err != nil {
		return nil, fmt.Errorf("list the host's interfaces: %w", err)
	}
	bridges := map[int]bool{}
	for _, l := range list {
		if ContainerBridge(l, list) {
			bridges[l.Attrs().Index] = true
		}
	}
	if len(bridges) == 0 {
		return nil, nil
	}
	addrs, err := Addrs(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := Prefix(a.IPNet); ok && bridges[a.LinkIndex] && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	return out, nil
}

// ProtoName names a route protocol as ip-route(8) does, its number when
// it has no name.
func ProtoName(p int) string {
	switch p {
	case unix.RTPROT_REDIRECT:
		return "redirect"
	case unix.RTPROT_KERNEL:
		return "kernel"
	case unix.RTPROT_BOOT:
		return "boot"
	case unix.RTPROT_STATIC:
		return "static"
	case unix.RTPROT_DHCP:
		return "dhcp"
	case unix.RTPROT_RA:
		return "ra"
	case 186:
		return "bgp"
	}
	return fmt.Sprint(p)
}
