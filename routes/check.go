package routes

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	kern "github.com/dualstack-net/dualstack/kernel"
)

// hostView is what the checks of one sync read from the host, once.
type hostView struct {
	addrs         []kern.HostAddr // with their networks' lengths: the connected networks they make
	containerNets []netip.Prefix
	links         map[string]int
	// hops are the next hops looked at already: why each is refused, ""
	// when it is fine.
	hops map[hopKey]string
}

// hopKey is a next hop as checked for prefixes of one family.
type hopKey struct {
	via netip.Addr
	dev string
	v4  bool
}

// view reads the host's addresses and links, and asks the caller for its
// container networks.
func (t *Table) view() (*hostView, error) {
	addrs, links, err := t.k.addrs()
	if err != nil {
		return nil, fmt.Errorf("routes: list the host's addresses: %w", err)
	}
	v := &hostView{addrs: addrs, links: links, hops: map[hopKey]string{}}
	if t.containerNets != nil {
		for _, n := range t.containerNets() {
			v.containerNets = append(v.containerNets, n.Masked())
		}
	}
	return v, nil
}

// dev returns the index of interface name, 0 for none.
func (v *hostView) dev(name string) int { return v.links[name] }

// check returns why proto may not route p via h, or "".
func (t *Table) check(proto Protocol, p netip.Prefix, h Hop, v *hostView) string {
	if !p.IsValid() {
		return "not a prefix"
	}
	for _, other := range protocols {
		if _, ok := t.state[other].installed[p]; ok && other != proto {
			return fmt.Sprintf("the host routes %s already: a %s route of dualstack's", p, other)
		}
	}
	r, found, err := t.k.lookup(p.Addr())
	if err != nil {
		return fmt.Sprintf("cannot tell whether the host routes %s already: %v", p, err)
	}
	if found && r.Prefix == p {
		return fmt.Sprintf("the host routes %s already: %s", p, r)
	}
	if why := checkPrefix(p, v); why != "" {
		return why
	}
	key := hopKey{h.Via, h.Dev, p.Addr().Is4()}
	why, seen := v.hops[key]
	if !seen {
		why = t.checkHop(p, h, v)
		v.hops[key] = why
	}
	return why
}

// checkPrefix returns why no route of dualstack's may go to p, or "": it
// may not overlap a network the host is on, nor a container network.
func checkPrefix(p netip.Prefix, v *hostView) string {
	for _, n := range v.containerNets {
		if n.Overlaps(p) {
			return fmt.Sprintf("%s overlaps local container network %s", p, n)
		}
	}
	for _, a := range v.addrs {
		if a.Prefix.Masked().Overlaps(p) {
			return fmt.Sprintf("%s overlaps %s, a network of this host's (interface %s)", p, a.Prefix.Masked(), a.Iface)
		}
	}
	return ""
}

// checkHop returns why p may not be routed via h, or "": the next hop
// must be a unicast address of p's family on a network the host reaches
// directly (on h.Dev if set), not the host's, not a container's.
func (t *Table) checkHop(p netip.Prefix, h Hop, v *hostView) string {
	via := h.Via
	switch {
	case !via.IsValid():
		return "no next hop"
	case via.Is4() != p.Addr().Is4():
		return fmt.Sprintf("next hop %s is not of the prefix's family", via)
	case via.IsUnspecified() || via.IsMulticast() || via.IsLoopback() || via.IsLinkLocalUnicast() || via == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Sprintf("next hop %s is not a unicast address a route can go through", via)
	}
	for _, a := range v.addrs {
		if a.Prefix.Addr() == via {
			return fmt.Sprintf("next hop %s is an address of this host (interface %s)", via, a.Iface)
		}
	}
	for _, n := range v.containerNets {
		if n.Contains(via) {
			return fmt.Sprintf("next hop %s is inside local container network %s", via, n)
		}
	}
	if h.Dev != "" && v.links[h.Dev] == 0 {
		return fmt.Sprintf("next hop %s: interface %s not found", via, h.Dev)
	}
	r, found, err := t.k.lookup(via)
	switch {
	case err != nil:
		return fmt.Sprintf("next hop %s: cannot look it up: %v", via, err)
	case !found:
		return fmt.Sprintf("next hop %s is not on a network this host reaches directly: no route to it", via)
	case r.local:
		return fmt.Sprintf("next hop %s is an address of this host", via)
	case r.Via.IsValid() || r.typ != unix.RTN_UNICAST:
		return fmt.Sprintf("next hop %s is not on a network this host reaches directly: the host routes it by %s", via, r)
	case h.Dev != "" && r.link != v.links[h.Dev]:
		return fmt.Sprintf("next hop %s is not on interface %s: the host reaches it by %s", via, h.Dev, r)
	}
	return ""
}

// refusal is why the kernel refused to add a route when that is the
// route's fault (a conflict, a next hop it does not take), or "".
func refusal(err error) string {
	switch {
	case errors.Is(err, unix.EEXIST):
		return "the host routes this prefix already (the kernel refused to add a second route: " + err.Error() + ")"
	case errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.EINVAL):
		return "the kernel refused the next hop: is it on a network this host reaches directly? (" + err.Error() + ")"
	}
	return ""
}
