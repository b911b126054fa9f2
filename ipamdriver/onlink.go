package ipamdriver

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/ndp"
	"github.com/dualstack-net/dualstack/validate"
)

// IPAM options (--ipam-opt) of on-link pools: IPAM options reach
// RequestPool, a network's -o options do not.
const (
	// optNDPProxy=IF: the network's IPv6 pool is a part of IF's on-link
	// prefix (a VPS's /64), which the host answers for on IF's link; with
	// no --subnet, a free part is carved for it.
	optNDPProxy = "ndp_proxy"
	// optNDPProxySize=N: the prefix length of the part carved (default
	// defaultOnLinkSize).
	optNDPProxySize = "ndp_proxy_size"
	// defaultOnLinkSize leaves 2^48 addresses to a network, and 65536
	// networks to a /64.
	defaultOnLinkSize = 80
)

// onLinkRequest reads the on-link pool an IPv6 RequestPool asks for
// (nil: none): the interface, its on-link prefix to carve from, the part's
// size, and the addresses to keep out of it (the host's on the interface,
// the neighbours its cache holds).
func onLinkRequest(req *ipam.RequestPoolRequest) (*addrbook.OnLinkRequest, error) {
	link, ok := req.Options[optNDPProxy]
	sizeText, sized := req.Options[optNDPProxySize]
	if !ok {
		if sized {
			return nil, fmt.Errorf("ipam option %s=%s needs %s=IF: the interface whose on-link prefix the pool is carved from", optNDPProxySize, sizeText, optNDPProxy)
		}
		return nil, nil
	}
	if err := validate.InterfaceName(link); err != nil {
		return nil, fmt.Errorf("ipam option %s=%q: %v", optNDPProxy, link, err)
	}
	size := defaultOnLinkSize
	if sized {
		var err error
		if size, err = strconv.Atoi(sizeText); err != nil {
			return nil, fmt.Errorf("ipam option %s=%q: want a prefix length such as 80", optNDPProxySize, sizeText)
		}
	}
	r := &addrbook.OnLinkRequest{Interface: link, Size: size}
	if !req.V6 || req.Pool != "" {
		// The network's IPv4 pool, or the user's subnet: an ordinary
		// pool marked as IF's, so that the network driver turns
		// ndp_proxy on, and checks the network (an IPv4 pool alone is
		// a network without IPv6, refused).
		return r, nil
	}
	l, err := netlink.LinkByName(link)
	if err != nil {
		return nil, fmt.Errorf("ipam option %s=%s: there is no interface %s on the host: name the interface that holds the on-link IPv6 prefix (see ip -6 addr)", optNDPProxy, link, link)
	}
	onLink, err := ndp.OnLink(link)
	if err != nil {
		return nil, err
	}
	if r.Within, ok = carveFrom(onLink); !ok {
		return nil, fmt.Errorf("ipam option %s=%s: %s has no on-link IPv6 prefix of /64 or shorter to take a part of (see ip -6 addr show dev %s): give the network an IPv6 --subnet, or name another interface", optNDPProxy, link, link, link)
	}
	if r.Avoid, err = avoid(l, link); err != nil {
		return nil, err
	}
	return r, nil
}

// carveFrom picks the prefix to carve from: the first /64 (or shorter)
// of the interface's on-link prefixes.
func carveFrom(onLink []netip.Prefix) (netip.Prefix, bool) {
	for _, p := range onLink {
		if p.Bits() <= 64 {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// avoid lists the addresses a carved part must not hold: the host's on
// the interface, and the neighbours the host knows there.
func avoid(l netlink.Link, link string) ([]netip.Addr, error) {
	addrs, err := kernel.Addrs(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list the addresses of %s: %w", link, err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			out = append(out, ip.Unmap()) // the address itself, not its prefix
		}
	}
	neigh, err := ndp.Neighbours(link)
	if err != nil {
		return nil, err
	}
	for _, n := range neigh {
		out = append(out, n.Addr)
	}
	return out, nil
}
