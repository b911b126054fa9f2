package ipamdriver

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/kernel"
)

// HostPrefixes lists the destinations of the host's routes (main table,
// default routes excluded) and the subnets of its addresses, of one family.
// Default pools that overlap any of them are skipped.
func HostPrefixes(v6 bool) ([]netip.Prefix, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	routes, err := kernel.Routes(family, nil, 0)
	if err != nil {
		return nil, err
	}
	addrs, err := kernel.Addrs(nil, family)
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
