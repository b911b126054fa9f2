package addrbook

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/dualstack-net/dualstack/addrbook/allocator"
)

// pool is one address pool handed to Docker, with the allocator that tracks
// which of its addresses are in use.
type pool struct {
	id     string
	space  string
	prefix netip.Prefix
	sub    netip.Prefix // the --ip-range, or the zero Prefix when there is none
	alloc  *allocator.Allocator
	// byDefault: picked from the default pools (a network that named no
	// subnet).
	byDefault bool
	// winFirst and winLast bound what the pool hands out in sequence: its
	// usable addresses, or its ip-range.
	winFirst, winLast netip.Addr
	// cluster is the part of a cluster network's pool; nil for a pool of
	// one host.
	cluster *clusterState
	// onLink is the host interface whose on-link prefix an on-link pool
	// was carved from (PoolRequest.OnLink); screen, when set, tells which
	// of its addresses another node of the link holds.
	onLink string
	screen Screen
	// sticky keeps the container names' reservations of a sticky pool
	// (sticky.go); nil for any other pool.
	sticky *stickyPool
}

// poolID names a pool after what it holds, so that IDs read well in logs and
// in `docker network inspect`. Overlapping pools are refused within a space,
// so the ID is unique.
func poolID(space string, prefix, sub netip.Prefix) string {
	id := space + "/" + prefix.String()
	if sub.IsValid() {
		id += "/" + sub.String()
	}
	return id
}

// newPool builds the allocator for prefix with the sequential window set to
// sub (when valid). It checks that sub lies inside prefix and leaves at least
// one usable address.
func newPool(space string, prefix, sub netip.Prefix) (*pool, error) {
	first, last := usableRange(prefix)
	if !first.IsValid() {
		return nil, fmt.Errorf("pool %s has no usable address: use a shorter prefix", prefix)
	}
	winFirst, winLast := first, last
	if sub.IsValid() {
		if sub.Addr().Is4() != prefix.Addr().Is4() {
			return nil, fmt.Errorf("ip-range %s and subnet %s are of different address families", sub, prefix)
		}
		if sub.Bits() < prefix.Bits() || !prefix.Contains(sub.Addr()) {
			return nil, fmt.Errorf("ip-range %s is not inside subnet %s: choose a range within the subnet", sub, prefix)
		}
		sf, sl := sub.Addr(), lastAddr(sub)
		if sf.Less(first) {
			sf = first
		}
		if last.Less(sl) {
			sl = last
		}
		if sl.Less(sf) {
			return nil, fmt.Errorf("ip-range %s holds no usable address of subnet %s", sub, prefix)
		}
		winFirst, winLast = sf, sl
	}
	a, err := allocator.New(first, last, winFirst, winLast)
	if err != nil {
		return nil, fmt.Errorf("pool %s: %w", prefix, err)
	}
	return &pool{id: poolID(space, prefix, sub), space: space, prefix: prefix, sub: sub, alloc: a, winFirst: winFirst, winLast: winLast}, nil
}

// String describes the pool for error messages: the subnet, and the range
// when there is one.
func (p *pool) String() string {
	if p.sub.IsValid() {
		return fmt.Sprintf("%s (ip-range %s)", p.prefix, p.sub)
	}
	return p.prefix.String()
}

// usableRange returns the addresses of p that may be handed out: IPv4 drops
// the network and broadcast addresses (except in /31 and /32, RFC 3021),
// IPv6 drops the subnet-router anycast address (except in /127 and /128).
func usableRange(p netip.Prefix) (first, last netip.Addr) {
	first, last = p.Addr(), lastAddr(p)
	if p.Addr().Is4() {
		if p.Bits() <= 30 {
			first, last = first.Next(), last.Prev()
		}
		return first, last
	}
	if p.Bits() <= 126 {
		first = first.Next()
	}
	return first, last
}

// lastAddr returns the highest address of p (all host bits set).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// parsePrefix parses a pool or ip-range as Docker sends it and masks it to its
// network address. what names the field in the error ("pool", "ip-range").
func parsePrefix(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid %s %q: want an address and prefix length such as 192.0.2.0/24 or 2001:db8::/64 (%v)", what, s, err)
	}
	if p.Addr().Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid %s %q: zones are not allowed", what, s)
	}
	p = p.Masked()
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid %s %q: write IPv4 pools in dotted form", what, s)
	}
	return p, nil
}

// ParseAddr parses an address as Docker sends it: bare, or in CIDR form.
func ParseAddr(s string) (netip.Addr, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, err
		}
		return p.Addr(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("zones are not allowed")
	}
	return a.Unmap(), nil
}
