package addrbook

import (
	"fmt"
	"net/netip"

	"github.com/dualstack-net/dualstack/state"
)

// The addresses the network driver allocates, holds and gives back itself:
// one address from every IPv6 pool of its network for each container
// (Docker asks for only one), the host's own addresses, a host link's.

// PoolFor returns the ID of the pool dualstack holds for prefix in space, if
// it holds one.
func (bk *Book) PoolFor(space string, prefix netip.Prefix) (string, bool) {
	if space == "" {
		space = LocalAddressSpace
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for _, p := range bk.pools {
		if p.space == space && p.prefix == prefix.Masked() {
			return p.id, true
		}
	}
	return "", false
}

// Allocate hands owner the next address of pool poolID in sequence,
// persisted before it returns; if owner already holds an address in the
// pool, that one comes back. The result carries the pool's prefix length.
func (bk *Book) Allocate(poolID string, owner Owner) (netip.Prefix, error) {
	if owner.Kind == Nobody {
		return netip.Prefix{}, fmt.Errorf("allocate from pool %s: no owner given", poolID)
	}
	return bk.RequestAddress(poolID, "", owner)
}

// Hold holds addr in pool poolID for owner, persisted before it returns:
// an address that is not to be handed out (the host's own). Holding it
// again for the same owner changes nothing; an address someone else holds
// is an error naming it.
func (bk *Book) Hold(poolID string, addr netip.Addr, owner Owner) error {
	if owner.Kind == Nobody {
		return fmt.Errorf("hold %s in pool %s: no owner given", addr, poolID)
	}
	_, err := bk.RequestAddress(poolID, addr.String(), owner)
	return err
}

// Range returns the ip-range of pool poolID, if it has one.
func (bk *Book) Range(poolID string) (netip.Prefix, bool) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if p, ok := bk.pools[poolID]; ok && p.sub.IsValid() {
		return p.sub, true
	}
	return netip.Prefix{}, false
}

// Release frees addr in pool poolID; in a sticky pool, an address that
// is a container name's reservation stays allocated to the name for the
// pool's hold time instead (sticky.go). Releasing an address that is not
// held, or from a pool that is gone, succeeds.
func (bk *Book) Release(poolID string, addr netip.Addr) error {
	return bk.Update(func(tx *Tx) error { return tx.ReleaseEach(map[string][]netip.Addr{poolID: {addr}}) })
}

// ReleaseAutoGateway frees the gateway address the IPAM picked itself for
// pool poolID, and reports whether there was one. A network whose router
// is elsewhere (macvlan) calls it so that no address stays claimed for a
// gateway that does not exist; a --gateway the user gave is kept.
func (bk *Book) ReleaseAutoGateway(poolID string) (netip.Addr, bool, error) {
	bk.mu.Lock()
	p, ok := bk.pools[poolID]
	var held netip.Addr
	if ok {
		_ = bk.db.View(func(tx state.Tx) error { held, _ = addrOf(tx, p.id, Owner{Kind: AutoGateway}.String()); return nil })
	}
	bk.mu.Unlock()
	if !held.IsValid() {
		return netip.Addr{}, false, nil
	}
	if err := bk.Release(poolID, held); err != nil {
		return netip.Addr{}, false, err
	}
	return held, true, nil
}

// Allocations lists the addresses allocated in pool poolID, with their
// owners.
func (bk *Book) Allocations(poolID string) map[netip.Addr]Owner {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return bk.allocations(poolID)
}

func (bk *Book) allocations(poolID string) map[netip.Addr]Owner {
	out := map[netip.Addr]Owner{}
	p, ok := bk.pools[poolID]
	if !ok {
		return out
	}
	_ = bk.db.View(func(tx state.Tx) error {
		return tx.ForEach(poolPath(p.id, bucketAddrs), func(k, v []byte) error {
			if a, ok := netip.AddrFromSlice(k); ok {
				out[a] = ParseOwner(string(v))
			}
			return nil
		})
	})
	return out
}
