// Package ndp is dualstack's NDP proxy: what makes containers' addresses
// in a host interface's on-link prefix (a VPS's /64) reachable from that
// interface's link, whose router believes every address of the prefix is
// on the link and asks for it with a neighbour solicitation.
//
// The answering is the kernel's: proxy_ndp on the interface and one proxy
// neighbour entry per container address (`ip -6 neigh show proxy`). The
// entries live in the kernel, so the host keeps answering while the plugin
// is down or restarting, and no packet passes through user space. This
// package sets the interface up for it and puts it back (Read, Apply,
// Restore), keeps the entries (AddEntries, DelEntries, Entries), announces
// a new address at once with an unsolicited neighbour advertisement
// (Advertise), asks the link who answers for an address (Probe, and the
// Screen that does it ahead of the allocator), and routes addresses found
// in use on the link back to it (RouteBack).
package ndp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/kernel"
)

// RouteProtocol marks dualstack's routes back to the link: a /128 route
// through the interface for each address of a network's subnet that
// another node of the link holds.
const RouteProtocol netlink.RouteProtocol = 0xd7

// Saved is what an interface's NDP sysctls were before dualstack changed
// them, to be put back by Restore.
type Saved struct {
	ProxyNDP   string `json:"proxyNDP"`
	ProxyDelay string `json:"proxyDelay"`
}

func proxyNDPKey(link string) string   { return "net/ipv6/conf/" + link + "/proxy_ndp" }
func proxyDelayKey(link string) string { return "net/ipv6/neigh/" + link + "/proxy_delay" }

// Read returns link's NDP sysctls as they are.
func Read(link string) (Saved, error) {
	var s Saved
	var err error
	if s.ProxyNDP, err = sysctl.Get(proxyNDPKey(link)); err != nil {
		return s, err
	}
	if s.ProxyDelay, err = sysctl.Get(proxyDelayKey(link)); err != nil {
		return s, err
	}
	return s, nil
}

// Apply turns the kernel's NDP proxy on for link, answering at once:
// proxy_ndp=1, and proxy_delay=0 (by default the kernel delays a proxied
// answer to a multicast solicitation by up to 0.8 s).
func Apply(link string) error {
	return set(link, Saved{ProxyNDP: "1", ProxyDelay: "0"})
}

// Restore puts link's NDP sysctls back as s recorded them.
func Restore(link string, s Saved) error { return set(link, s) }

func set(link string, s Saved) error {
	if err := sysctl.Set(proxyNDPKey(link), s.ProxyNDP); err != nil {
		return fmt.Errorf("interface %s: %w", link, err)
	}
	if err := sysctl.Set(proxyDelayKey(link), s.ProxyDelay); err != nil {
		return fmt.Errorf("interface %s: %w", link, err)
	}
	return nil
}

// AddEntries has the host answer on link for addrs (proxy entries); an
// entry already there is kept.
func AddEntries(link string, addrs []netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("interface %s: %w", link, err)
	}
	for _, a := range addrs {
		if err := netlink.NeighSet(proxyEntry(l, a)); err != nil {
			return fmt.Errorf("answer for %s on %s (proxy neighbour entry): %w", a, link, err)
		}
	}
	return nil
}

// DelEntries stops the host answering on link for addrs; an entry that is
// not there, or a link that is gone, is no error.
func DelEntries(link string, addrs []netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		if links.NotFound(err) {
			return nil
		}
		return fmt.Errorf("interface %s: %w", link, err)
	}
	for _, a := range addrs {
		if err := netlink.NeighDel(proxyEntry(l, a)); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("stop answering for %s on %s (proxy neighbour entry): %w", a, link, err)
		}
	}
	return nil
}

func proxyEntry(l netlink.Link, a netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V6, Flags: netlink.NTF_PROXY, State: netlink.NUD_PERMANENT, IP: a.AsSlice()}
}

// Entries lists the addresses the host answers for on link, in order.
func Entries(link string) ([]netip.Addr, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link, err)
	}
	list, err := netlink.NeighProxyList(l.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list the proxy neighbour entries of %s: %w", link, err)
	}
	var out []netip.Addr
	for _, n := range list {
		if a, ok := netip.AddrFromSlice(n.IP); ok {
			out = append(out, a.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// OnLink returns link's on-link IPv6 prefixes: those of its addresses
// (static, or from router advertisements) and of its connected routes,
// link-local and single addresses aside.
func OnLink(link string) ([]netip.Prefix, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link, err)
	}
	var out []netip.Prefix
	add := func(p netip.Prefix) {
		p = p.Masked()
		if p.Addr().Is6() && p.Bits() > 0 && p.Bits() < 128 && p.Addr().IsGlobalUnicast() && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	addrs, err := kernel.Addrs(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list the addresses of %s: %w", link, err)
	}
	for _, a := range addrs {
		if p, ok := kernel.Prefix(a.IPNet); ok && a.Flags&unix.IFA_F_NOPREFIXROUTE == 0 {
			add(p)
		}
	}
	routes, err := kernel.Routes(netlink.FAMILY_V6, &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list the routes of %s: %w", link, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Gw != nil || r.Protocol == RouteProtocol {
			continue
		}
		if p, ok := kernel.Prefix(r.Dst); ok {
			add(p)
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, nil
}

// Neighbour is a node the host knows on a link.
type Neighbour struct {
	Addr netip.Addr
	MAC  net.HardwareAddr
}

// Neighbours lists the IPv6 neighbours the host's cache holds as present
// on link (reachable, or recently so).
func Neighbours(link string) ([]Neighbour, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link, err)
	}
	list, err := netlink.NeighList(l.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list the neighbours of %s: %w", link, err)
	}
	const present = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT
	var out []Neighbour
	for _, n := range list {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.State&present == 0 || n.Flags&netlink.NTF_PROXY != 0 || len(n.HardwareAddr) == 0 {
			continue
		}
		out = append(out, Neighbour{Addr: a.Unmap(), MAC: n.HardwareAddr})
	}
	return out, nil
}

// RouteBack routes addr, which another node of link holds, to link (a /128
// route), for an address inside a network's subnet whose other addresses
// the host routes to its bridge.
func RouteBack(link string, addr netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("interface %s: %w", link, err)
	}
	r := &netlink.Route{Dst: kernel.IPNet(netip.PrefixFrom(addr, 128)), LinkIndex: l.Attrs().Index, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("route %s, which a node of %s's link holds, to %s: %w", addr, link, link, err)
	}
	return nil
}

// RoutesBack lists link's routes back (RouteBack) inside prefix.
func RoutesBack(link string, prefix netip.Prefix) ([]netip.Addr, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		if links.NotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("interface %s: %w", link, err)
	}
	filter := &netlink.Route{LinkIndex: l.Attrs().Index, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	routes, err := kernel.Routes(netlink.FAMILY_V6, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list the routes of %s: %w", link, err)
	}
	var out []netip.Addr
	for _, r := range routes {
		if p, ok := kernel.Prefix(r.Dst); ok && p.Bits() == 128 && prefix.Contains(p.Addr()) {
			out = append(out, p.Addr())
		}
	}
	return out, nil
}

// DelRouteBack removes the route back of addr on link; one that is not
// there is no error.
func DelRouteBack(link string, addr netip.Addr) error {
	r := &netlink.Route{Dst: kernel.IPNet(netip.PrefixFrom(addr, 128)), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	if l, err := netlink.LinkByName(link); err == nil {
		r.LinkIndex = l.Attrs().Index
	}
	if err := netlink.RouteDel(r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove the route of %s to %s: %w", addr, link, err)
	}
	return nil
}
