package driver

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/driver/links"
	"github.com/dualstack-net/dualstack/driver/nladdr"
	"github.com/dualstack-net/dualstack/driver/nldump"
	"github.com/dualstack-net/dualstack/routes"
)

// The host's own networks.
//
// A bridge network whose subnet is the LAN of one of the host's interfaces
// (192.168.1.0/24 on eth0, say) puts that LAN's addresses, its gateway
// among them, on the bridge and cuts the host off its LAN. A macvlan
// network is meant to share its parent's LAN, but not another interface's.
// Such a subnet is refused, naming the interface, unless the network says
// host_overlap=true (for those who route it on purpose). And whatever the
// options, an address the host holds in a network's subnet is held for the
// host in the network's pool, so that no container gets it.

// hostAddr is an address on one of the host's interfaces that dualstack
// did not make.
type hostAddr struct {
	iface  string
	prefix netip.Prefix // the address, with its network's length
}

// hostLinkNames maps the index of each of the host's links that dualstack
// did not make (links.Mark) to its name.
func hostLinkNames() (map[int]string, error) {
	list, err := nldump.Links()
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

// hostAddrs lists the global addresses on the host's interfaces, those on
// dualstack's own links (links.Mark) left out.
func hostAddrs() ([]hostAddr, error) {
	names, err := hostLinkNames()
	if err != nil {
		return nil, err
	}
	addrs, err := nldump.Addrs(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var out []hostAddr
	for _, a := range addrs {
		iface, ok := names[a.LinkIndex]
		ip, okIP := netip.AddrFromSlice(a.IP)
		if !ok || !okIP || a.IPNet == nil {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, hostAddr{iface: iface, prefix: netip.PrefixFrom(ip, ones)})
	}
	return out, nil
}

// checkHost refuses n's subnets that overlap the host's own networks:
// those of its interfaces but lan (checkHostOverlap) and its routes
// (checkHostRoutes). It returns the host's addresses, for holdHostAddrs.
func checkHost(n *network, lan string) ([]hostAddr, error) {
	host, err := hostAddrs()
	if err != nil {
		return nil, err
	}
	if err := checkHostOverlap(n, lan, host); err != nil {
		return nil, err
	}
	routes, err := hostRoutes()
	if err != nil {
		return nil, err
	}
	if err := checkHostRoutes(n, lan, routes); err != nil {
		return nil, err
	}
	return host, nil
}

// checkHostOverlap refuses n's subnets that overlap a network connected on
// a host interface other than lan, the one whose network n shares by
// design (a macvlan network's parent). host is hostAddrs'.
func checkHostOverlap(n *network, lan string, host []hostAddr) error {
	if n.Options.HostOverlap {
		return nil
	}
	for _, p := range n.pools() {
		for _, h := range host {
			if h.iface == lan {
				continue
			}
			if h.prefix.Masked().Overlaps(p.Prefix) {
				return fmt.Errorf("subnet %s overlaps %s on the host's interface %s: the network would take that network's addresses (its gateway among them) and cut the host off it; choose another subnet, or give -o host_overlap=true if you route it on purpose",
					p.Prefix, h.prefix.Masked(), h.iface)
			}
		}
	}
	return nil
}

// hostRoute is a route of the host's main table that dualstack did not
// make.
type hostRoute struct {
	dst   netip.Prefix
	iface string     // its interface; "" for one of several next hops
	via   netip.Addr // its gateway, if any
	proto netlink.RouteProtocol
}

func (r hostRoute) String() string {
	s := r.dst.String()
	if r.via.IsValid() {
		s += " via " + r.via.String()
	}
	if r.iface != "" {
		s += " dev " + r.iface
	}
	return s + " proto " + r.proto.String()
}

// hostRoutes lists the host's own routes to networks (main table, both
// families): hostRoutesFrom's.
func hostRoutes() ([]hostRoute, error) {
	names, err := hostLinkNames()
	if err != nil {
		return nil, err
	}
	routes, err := nldump.Routes(netlink.FAMILY_ALL, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("list the host's routes: %w", err)
	}
	return hostRoutesFrom(routes, names), nil
}

// hostRoutesFrom keeps, of all, the routes that send a network somewhere
// the host chose: unicast routes to a unicast network other than the
// default route, through an interface in names (the host's links that
// dualstack did not make). Left out are dualstack's own: the routes on
// its links (a bridge's connected routes, a shim's) and those of its
// protocols (the cluster's host-gw routes, routes learned over BGP);
// blackhole, unreachable, prohibit and throw routes, which are policy
// rather than a place; and link-local, loopback and multicast ones.
func hostRoutesFrom(all []netlink.Route, names map[int]string) []hostRoute {
	var out []hostRoute
	for _, r := range all {
		if r.Type != unix.RTN_UNICAST || r.Protocol == netlink.RouteProtocol(routes.HostGW) || r.Protocol == netlink.RouteProtocol(routes.Learned) || r.Dst == nil {
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
		h := hostRoute{dst: netip.PrefixFrom(a, ones).Masked(), proto: r.Protocol}
		h.via, _ = netip.AddrFromSlice(r.Gw)
		h.via = h.via.Unmap()
		switch {
		case r.LinkIndex != 0:
			name, ok := names[r.LinkIndex]
			if !ok {
				continue // on one of dualstack's links
			}
			h.iface = name
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

// checkHostRoutes refuses n's subnets that overlap a route of the host
// (hostRoutes): the host sends that network's traffic elsewhere, so the
// network's containers would be cut off from it, or the host from the
// network the route leads to. Routes through lan, the network a macvlan
// network shares by design, are the LAN's; a cluster network whose
// blocks the network routes (cluster_routes=none) expects routes into its
// subnets; and host_overlap=true is for those who route it on purpose.
func checkHostRoutes(n *network, lan string, routes []hostRoute) error {
	if n.Options.HostOverlap || n.Options.ClusterRoutes == clusterRoutesNone {
		return nil
	}
	for _, p := range n.pools() {
		for _, r := range routes {
			if lan != "" && r.iface == lan {
				continue
			}
			if r.dst.Overlaps(p.Prefix) {
				return fmt.Errorf("subnet %s overlaps the host's route %s: the host sends that network's traffic there, so the network would cut its containers off the host or the host off %s; choose another subnet, or give -o host_overlap=true if you route it on purpose",
					p.Prefix, r, r.dst)
			}
		}
	}
	return nil
}

// holdHostAddrs holds, in n's pools that dualstack's IPAM has, every
// address the host itself has in them, for the host (owner
// "host-address:<network ID>"), so that no container gets one.
func (d *Driver) holdHostAddrs(n *network, host []hostAddr) error {
	owner := hostAddrOwner(n)
	for _, p := range n.pools() {
		if p.PoolID == "" {
			continue
		}
		for _, h := range host {
			a := h.prefix.Addr()
			if !p.Prefix.Contains(a) || slices.ContainsFunc(n.HostAddrs, func(x extraAddr) bool { return x.Addr.Addr() == a }) {
				continue
			}
			if err := d.cfg.IPAM.Hold(p.PoolID, a, owner); err != nil {
				return fmt.Errorf("hold %s, which the host has on %s, in subnet %s: %w", a, h.iface, p.Prefix, err)
			}
			n.HostAddrs = append(n.HostAddrs, extraAddr{PoolID: p.PoolID, Addr: netip.PrefixFrom(a, p.Prefix.Bits())})
		}
	}
	return nil
}

func hostAddrOwner(n *network) string { return "host-address:" + n.ID }

// containerBridgeNets are the networks of the addresses on the bridges of
// container networks, Docker's among them whatever their names
// (containerBridge): for the routes (routes.KeeperOptions.HostNets), which
// add dualstack's own.
func containerBridgeNets() ([]netip.Prefix, error) {
	list, err := nldump.Links()
	if err != nil {
		return nil, fmt.Errorf("list the host's interfaces: %w", err)
	}
	bridges := map[int]bool{}
	for _, l := range list {
		if containerBridge(l, list) {
			bridges[l.Attrs().Index] = true
		}
	}
	if len(bridges) == 0 {
		return nil, nil
	}
	addrs, err := nldump.Addrs(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list the host's addresses: %w", err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := nladdr.Prefix(a.IPNet); ok && bridges[a.LinkIndex] && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	return out, nil
}
