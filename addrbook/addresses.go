package addrbook

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/dualstack-net/dualstack/addrbook/allocator"
	"github.com/dualstack-net/dualstack/state"
)

// RequestAddress hands owner an address of pool poolID: preferred if
// given, else the next in sequence (for a gateway, the first free one).
// An owner asking again for what it holds (a retried request) gets the
// same address; for a MAC owner, only when retry says so. The result
// carries the pool's prefix length (a cluster block's, in a routed
// cluster pool).
func (bk *Book) RequestAddress(poolID, preferred string, owner Owner) (netip.Prefix, error) {
	return bk.RequestNamedAddress(poolID, preferred, owner, "")
}

// RequestNamedAddress is RequestAddress for the container name, as
// Docker sends it (or ""): in a sticky pool, the address kept for the
// name comes back (sticky.go).
func (bk *Book) RequestNamedAddress(poolID, preferred string, owner Owner, name string) (netip.Prefix, error) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	p, ok := bk.pools[poolID]
	if !ok {
		return netip.Prefix{}, fmt.Errorf("no pool %q is held by dualstack: the network's IPAM state is missing; recreate the network", poolID)
	}
	var addr netip.Addr
	var err error
	if name = bk.stickyName(p, owner, name); name != "" {
		addr, err = bk.requestSticky(p, preferred, owner, name, func() (netip.Addr, error) { return bk.requestAddress(p, preferred, owner) })
	} else {
		addr, err = bk.requestAddress(p, preferred, owner)
	}
	if err != nil {
		return netip.Prefix{}, err
	}
	if owner.Kind == MAC {
		bk.noteAnswered(p, addr)
	}
	return netip.PrefixFrom(addr, p.addrBits(addr)), nil
}

// requestAddress hands owner an address of p: preferred, or the next in
// sequence. A MAC owner may be another endpoint's too (see retry).
func (bk *Book) requestAddress(p *pool, preferred string, owner Owner) (netip.Addr, error) {
	if preferred != "" {
		addr, err := ParseAddr(preferred)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("invalid address %q requested from pool %s: %v", preferred, p, err)
		}
		return bk.reserve(p, addr, owner)
	}
	addr, fresh, undo, err := bk.pick(p, owner)
	if err != nil || !fresh {
		return addr, err
	}
	var cursor netip.Addr
	if !owner.gateway() {
		cursor = addr
	}
	if err := bk.db.Update(func(tx state.Tx) error { return saveAddr(tx, p.id, addr, owner.String(), cursor) }); err != nil {
		undo()
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	return addr, nil
}

// pick chooses owner's address in p, in memory only: the address owner
// holds already (a retried request whose answer was committed but never
// reached Docker; fresh is false; for a MAC owner only if retry says so),
// or the next in sequence (the first free one for a gateway). undo gives a
// fresh pick back and restores the sequence, for a caller whose commit
// failed.
func (bk *Book) pick(p *pool, owner Owner) (addr netip.Addr, fresh bool, undo func(), err error) {
	gateway := owner.gateway()
	if held, ok := bk.heldBy(p, owner); ok {
		bk.log.WithField("pool", p.id).WithField("address", held).Debugf("address already held by %s, returning it again", owner)
		return held, false, func() {}, nil
	}
	if p.cluster != nil && !gateway {
		addr, undo, err := bk.pickInBlocks(p)
		return addr, err == nil, undo, err
	}
	prevCursor, hadCursor := p.alloc.Cursor()
	addr, err = bk.next(p, gateway)
	for errors.Is(err, allocator.ErrFull) && bk.freeOldest(p) {
		addr, err = bk.next(p, gateway)
	}
	if errors.Is(err, allocator.ErrFull) {
		return netip.Addr{}, false, nil, fmt.Errorf("pool %s is exhausted: every usable address is in use; remove unused containers or use a larger subnet", p)
	}
	if err != nil {
		return netip.Addr{}, false, nil, fmt.Errorf("allocate an address in pool %s: %w", p, err)
	}
	return addr, true, func() {
		p.alloc.Release(addr)
		if hadCursor {
			_ = p.alloc.SetCursor(prevCursor)
		} else {
			p.alloc.ResetCursor()
		}
	}, nil
}

// heldBy returns the address owner holds in p already, when a request
// of owner's is asking again for it (for a MAC owner, only if retry says
// so).
func (bk *Book) heldBy(p *pool, owner Owner) (netip.Addr, bool) {
	if owner.Kind == Nobody {
		return netip.Addr{}, false
	}
	var held netip.Addr
	_ = bk.db.View(func(tx state.Tx) error { held, _ = addrOf(tx, p.id, owner.String()); return nil })
	if held.IsValid() && p.alloc.Allocated(held) && (owner.Kind != MAC || bk.retry(p, held)) {
		return held, true
	}
	return netip.Addr{}, false
}

// next takes the next address of p in sequence (the first free one for a
// gateway), passing over those p's screen says another node holds: each
// is held for that node (owner OnLink), in a commit of its own, whatever
// becomes of the request.
func (bk *Book) next(p *pool, gateway bool) (netip.Addr, error) {
	for {
		var addr netip.Addr
		var err error
		if gateway {
			addr, err = p.alloc.FirstFree()
		} else {
			addr, err = p.alloc.Next()
		}
		if err != nil || p.screen == nil || !p.screen.Taken(addr) {
			return addr, err
		}
		owner := OnLinkOwner(p.screen.Interface())
		if err := bk.db.Update(func(tx state.Tx) error { return saveAddr(tx, p.id, addr, owner.String(), netip.Addr{}) }); err != nil {
			p.alloc.Release(addr)
			return netip.Addr{}, fmt.Errorf("hold %s of pool %s, which a node of %s's link holds, in the state file: %w", addr, p, owner.ID, err)
		}
		bk.log.WithField("pool", p.id).WithField("address", addr).WithField("interface", owner.ID).Warn("address held by another node of the link: passed over, and held for it")
	}
}

// reserve hands out a specific address: a user's --ip or --gateway, or a
// request Docker repeats for an address it already holds (for a MAC owner,
// only a retry: see retry).
func (bk *Book) reserve(p *pool, addr netip.Addr, owner Owner) (netip.Addr, error) {
	if !p.prefix.Contains(addr) {
		return netip.Addr{}, fmt.Errorf("address %s is outside pool %s: choose an address inside the subnet", addr, p.prefix)
	}
	err := p.alloc.Reserve(addr)
	switch {
	case errors.Is(err, allocator.ErrInUse):
		var holder string
		_ = bk.db.View(func(tx state.Tx) error { holder = ownerOf(tx, p.id, addr); return nil })
		if h := ParseOwner(holder); h.Kind == Sticky {
			return bk.takeOver(p, addr, owner, h.ID)
		}
		// The same holder asking again; a gateway named now that the
		// IPAM had picked itself (a replayed request) is the same gateway.
		if owner.Kind != Nobody && (holder == owner.String() && (owner.Kind != MAC || bk.retry(p, addr)) || owner.Kind == Gateway && ParseOwner(holder).Kind == AutoGateway) {
			return addr, nil
		}
		return netip.Addr{}, fmt.Errorf("address %s is already in use in pool %s: choose another address or let dualstack pick one", addr, p.prefix)
	case errors.Is(err, allocator.ErrOutOfRange):
		return netip.Addr{}, fmt.Errorf("address %s cannot be assigned in pool %s: it is the network, broadcast or subnet-router address", addr, p.prefix)
	case err != nil:
		return netip.Addr{}, fmt.Errorf("reserve address %s in pool %s: %w", addr, p.prefix, err)
	}
	// In a cluster network, an address outside the host's blocks is the
	// host's only once the cluster store says so.
	if p.cluster != nil {
		if err := bk.claimOutside(p, addr); err != nil {
			p.alloc.Release(addr)
			return netip.Addr{}, err
		}
	}
	if err := bk.db.Update(func(tx state.Tx) error { return saveAddr(tx, p.id, addr, owner.String(), netip.Addr{}) }); err != nil {
		p.alloc.Release(addr)
		bk.releaseClaims(p, []netip.Addr{addr})
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	return addr, nil
}

// retry reports whether a RequestAddress for the address a MAC already
// holds in p is Docker repeating a request whose answer was lost, so that
// the same address is the answer.
//
// The key is the MAC address, which Docker sends with each request
// (RequiresMACAddress): it is the only thing a request carries that is the
// endpoint's own. But two endpoints can have one MAC (docker run
// --mac-address twice on a network), and they must not share an address.
// Answers are lost only when the plugin dies before it replies (the unix
// socket loses nothing while the plugin lives), so a retry asks for an
// address an earlier process handed out, which no endpoint has claimed
// yet: Docker asks for the address before it creates the endpoint. An
// address this process handed out, or one an endpoint holds, belongs to
// another endpoint with the same MAC, which gets an address of its own.
func (bk *Book) retry(p *pool, held netip.Addr) bool {
	if bk.answered[p.id][held] {
		return false
	}
	return !bk.users.claimed(held)
}

// noteAnswered records addr as handed to a MAC by this process.
func (bk *Book) noteAnswered(p *pool, addr netip.Addr) {
	if bk.answered[p.id] == nil {
		bk.answered[p.id] = map[netip.Addr]bool{}
	}
	bk.answered[p.id][addr] = true
}
