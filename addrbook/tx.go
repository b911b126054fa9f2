package addrbook

import (
	"fmt"
	"net/netip"

	"github.com/dualstack-net/dualstack/state"
)

// Tx is one change of the book: the book's lock held for the whole of it,
// and its writes committed in one transaction of the state file when the
// function given to Update returns nil. The caller's own records (an
// endpoint's) go into the same commit with Put and Delete, so that they
// and the addresses they name are committed together or not at all.
//
// The writes wait for the end: a cluster pool may lease a block while an
// address is picked, and that lease is committed on its own (a block is
// the host's once the store gave it, whatever becomes of the change), so
// no transaction of the state file may be open while the function runs.
type Tx struct {
	bk *Book
	// writes are the change's writes, in order, for the one commit.
	writes []func(state.Tx) error
	// undo takes back, in reverse, the changes in memory made so far,
	// should the function or the commit fail; after makes those that wait
	// for the commit.
	undo  []func()
	after []func()
	// sticky: the change touches a sticky pool's reservations, so the
	// status file is written after it.
	sticky bool
}

// Update runs fn as one change of the book (see Tx). When fn fails, or
// the commit does, nothing of it remains, in memory or on disk.
func (bk *Book) Update(fn func(tx *Tx) error) error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	tx := &Tx{bk: bk}
	err := fn(tx)
	if err == nil && len(tx.writes) > 0 {
		err = bk.db.Update(func(st state.Tx) error {
			for _, w := range tx.writes {
				if err := w(st); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		for i := len(tx.undo) - 1; i >= 0; i-- {
			tx.undo[i]()
		}
		return err
	}
	for _, f := range tx.after {
		f()
	}
	if tx.sticky {
		bk.writeStickyStatus()
	}
	return nil
}

// write adds w to the change's commit.
func (tx *Tx) write(w func(state.Tx) error) { tx.writes = append(tx.writes, w) }

// Put writes the caller's record key in bucket path in this change's
// commit.
func (tx *Tx) Put(path []string, key, value []byte) error {
	tx.write(func(st state.Tx) error { return st.Put(path, key, value) })
	return nil
}

// Delete removes the caller's record key of bucket path in this change's
// commit.
func (tx *Tx) Delete(path []string, key []byte) error {
	tx.write(func(st state.Tx) error { return st.Delete(path, key) })
	return nil
}

// AllocateEach hands owner the next address of each pool in poolIDs; an
// address owner already holds in a pool comes back. On any failure
// nothing is allocated.
func (tx *Tx) AllocateEach(poolIDs []string, owner Owner) ([]netip.Prefix, error) {
	return tx.AllocateEachNamed(poolIDs, owner, "")
}

// AllocateEachNamed is AllocateEach for a container name (or ""): in a
// sticky pool, the address kept for the name comes back (sticky.go).
func (tx *Tx) AllocateEachNamed(poolIDs []string, owner Owner, name string) ([]netip.Prefix, error) {
	if owner.Kind == Nobody {
		return nil, fmt.Errorf("allocate from pools %v: no owner given", poolIDs)
	}
	bk := tx.bk
	out := make([]netip.Prefix, 0, len(poolIDs))
	for _, id := range poolIDs {
		p, ok := bk.pools[id]
		if !ok {
			return nil, fmt.Errorf("no pool %q is held by dualstack: the network's IPAM state is missing; recreate the network", id)
		}
		addr, err := tx.allocate(p, owner, bk.stickyName(p, owner, name))
		if err != nil {
			return nil, err
		}
		out = append(out, netip.PrefixFrom(addr, p.addrBits(addr)))
	}
	return out, nil
}

// allocate hands owner an address of p: the one p keeps for name, when
// name is sticky there, else the next (see pick), which becomes name's.
func (tx *Tx) allocate(p *pool, owner Owner, name string) (netip.Addr, error) {
	bk := tx.bk
	if name != "" {
		bk.expire(p)
		if addr, w, apply, ok := bk.stickyTake(p, owner, name); ok {
			tx.write(w)
			tx.after = append(tx.after, apply)
			tx.sticky = true
			return addr, nil
		}
	}
	addr, fresh, undo, err := bk.pick(p, owner)
	if err != nil {
		return netip.Addr{}, err
	}
	tx.undo = append(tx.undo, undo)
	if fresh {
		tx.write(func(st state.Tx) error { return saveAddr(st, p.id, addr, owner.String(), addr) })
	}
	if name != "" {
		if w, apply := bk.stickyBind(p, name, addr); w != nil {
			tx.write(w)
			tx.after = append(tx.after, apply)
			tx.sticky = true
		}
	}
	return addr, nil
}

// ReleaseEach frees addresses of several pools; addresses not held, or in
// pools that are gone, are skipped.
func (tx *Tx) ReleaseEach(addrs map[string][]netip.Addr) error {
	bk := tx.bk
	for id, as := range addrs {
		p, ok := bk.pools[id]
		if !ok {
			continue
		}
		for _, a := range as {
			if !p.alloc.Allocated(a) || tx.keep(p, a) {
				continue
			}
			tx.write(func(st state.Tx) error { return deleteAddr(st, p.id, a) })
			tx.after = append(tx.after, func() { bk.freeAddr(p, a) })
		}
	}
	return nil
}
