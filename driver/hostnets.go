package driver

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/ndp"
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

// ownProtocols are those of dualstack's own routes (the cluster's host-gw
// routes, routes learned over BGP): none of them is a route of the host's.
var ownProtocols = []netlink.RouteProtocol{netlink.RouteProtocol(routes.HostGW), netlink.RouteProtocol(routes.Learned), ndp.RouteProtocol}

// checkHost refuses n's subnets that overlap the host's own networks:
// those of its interfaces but lan (checkHostOverlap) and its routes
// (checkHostRoutes). It returns the host's addresses, for holdHostAddrs.
func checkHost(n *network, lan string) ([]kernel.HostAddr, error) {
	host, err := kernel.HostAddrs()
	if err != nil {
		return nil, err
	}
	if err := checkHostOverlap(n, lan, host); err != nil {
		return nil, err
	}
	routes, err := kernel.HostRoutes(ownProtocols...)
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
// design (a macvlan network's parent). host is kernel.HostAddrs'.
func checkHostOverlap(n *network, lan string, host []kernel.HostAddr) error {
	if n.Options.HostOverlap {
		return nil
	}
	for _, p := range n.pools() {
		for _, h := range host {
			if h.Iface == lan {
				continue
			}
			if h.Prefix.Masked().Overlaps(p.Prefix) {
				return fmt.Errorf("subnet %s overlaps %s on the host's interface %s: the network would take that network's addresses (its gateway among them) and cut the host off it; choose another subnet, or give -o host_overlap=true if you route it on purpose",
					p.Prefix, h.Prefix.Masked(), h.Iface)
			}
		}
	}
	return nil
}

// checkHostRoutes refuses n's subnets that overlap a route of the host
// (kernel.HostRoutes): the host sends that network's traffic elsewhere, so the
// network's containers would be cut off from it, or the host from the
// network the route leads to. Routes through lan, the network a macvlan
// network shares by design, are the LAN's; a cluster network whose
// blocks the network routes (cluster_routes=none) expects routes into its
// subnets; and host_overlap=true is for those who route it on purpose.
func checkHostRoutes(n *network, lan string, routes []kernel.HostRoute) error {
	if n.Options.HostOverlap || n.Options.ClusterRoutes == clusterRoutesNone {
		return nil
	}
	for _, p := range n.pools() {
		for _, r := range routes {
			if lan != "" && r.Iface == lan {
				continue
			}
			if r.Dst.Overlaps(p.Prefix) {
				return fmt.Errorf("subnet %s overlaps the host's route %s: the host sends that network's traffic there, so the network would cut its containers off the host or the host off %s; choose another subnet, or give -o host_overlap=true if you route it on purpose",
					p.Prefix, r, r.Dst)
			}
		}
	}
	return nil
}

// holdHostAddrs holds, in n's pools that dualstack's IPAM has, every
// address the host itself has in them, for the host (owner
// "host-address:<network ID>"), so that no container gets one.
func (d *Driver) holdHostAddrs(n *network, host []kernel.HostAddr) error {
	owner := addrbook.HostAddressOwner(n.ID)
	for _, p := range n.pools() {
		if p.PoolID == "" {
			continue
		}
		for _, h := range host {
			a := h.Prefix.Addr()
			if !p.Prefix.Contains(a) || slices.ContainsFunc(n.HostAddrs, func(x extraAddr) bool { return x.Addr.Addr() == a }) {
				continue
			}
			if err := d.cfg.Book.Hold(p.PoolID, a, owner); err != nil {
				return fmt.Errorf("hold %s, which the host has on %s, in subnet %s: %w", a, h.Iface, p.Prefix, err)
			}
			n.HostAddrs = append(n.HostAddrs, extraAddr{PoolID: p.PoolID, Addr: netip.PrefixFrom(a, p.Prefix.Bits())})
		}
	}
	return nil
}
