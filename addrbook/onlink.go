package addrbook

import (
	"fmt"
	"net/netip"
)

// On-link pools: a network's addresses taken from the prefix a host
// interface holds on its link (a VPS's /64), which the host answers for
// (ndp). Such a pool is an ordinary pool with two additions: the
// interface it was carved from (OnLink), and a Screen that tells which of
// its addresses another node of the link already holds, so that no
// container gets one.

// Screen tells whether another node of a pool's link holds an address.
type Screen interface {
	// Interface is the host interface whose link the screen looks at.
	Interface() string
	// Taken reports whether another node of the link holds a.
	Taken(a netip.Addr) bool
}

// OnLinkRequest asks for a pool carved from a host interface's on-link
// prefix: the first sub-prefix of Size bits of Within that holds none of
// Avoid (the host's and its known neighbours' addresses), overlaps no
// pool held, and is not Within's first (where routers usually sit).
type OnLinkRequest struct {
	Interface string
	Within    netip.Prefix
	Size      int
	Avoid     []netip.Addr
}

// SetScreen has pool poolID pass over the addresses s says another node
// holds; a nil s stops it. An unknown pool is an error.
func (bk *Book) SetScreen(poolID string, s Screen) error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	p, ok := bk.pools[poolID]
	if !ok {
		return fmt.Errorf("no pool %q is held by dualstack", poolID)
	}
	p.screen = s
	return nil
}

// OnLinkOf returns the host interface pool poolID was carved from, or ""
// for a pool that is not an on-link pool.
func (bk *Book) OnLinkOf(poolID string) string {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if p, ok := bk.pools[poolID]; ok {
		return p.onLink
	}
	return ""
}

// Next returns the address pool poolID's sequence hands out next, as far
// as its allocations say (the screen passes over what the link holds):
// where probing ahead starts.
func (bk *Book) Next(poolID string) (netip.Addr, bool) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	p, ok := bk.pools[poolID]
	if !ok {
		return netip.Addr{}, false
	}
	if c, ok := p.alloc.Cursor(); ok {
		return c.Next(), true
	}
	return p.winFirst, true
}

// carve returns the sub-prefix req asks for in space.
func (bk *Book) carve(space string, req OnLinkRequest) (netip.Prefix, error) {
	within := req.Within.Masked()
	if req.Size <= within.Bits() || req.Size > 120 {
		return netip.Prefix{}, fmt.Errorf("a /%d pool cannot be carved from %s, %s's on-link prefix: give ndp_proxy_size between %d and 120", req.Size, within, req.Interface, within.Bits()+1)
	}
	held := bk.sortedPools()
	bits := req.Size - within.Bits()
	count := uint64(1) << uint(min(bits, 20)) // at most a million candidates
	for n := uint64(1); n < count; n++ {
		cand := nthSubnet(within, req.Size, n)
		if overlapping(held, space, cand) != nil || holdsAny(cand, req.Avoid) {
			continue
		}
		return cand, nil
	}
	return netip.Prefix{}, fmt.Errorf("no free /%d is left in %s, %s's on-link prefix: remove a network that uses one, or give ndp_proxy_size a longer prefix", req.Size, within, req.Interface)
}

func holdsAny(p netip.Prefix, addrs []netip.Addr) bool {
	for _, a := range addrs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
