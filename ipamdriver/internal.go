package ipamdriver

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/docker/go-plugins-helpers/ipam"

	"github.com/dualstack-net/dualstack/state"
)

// This file is the IPAM's API for dualstack's own network driver, which
// gives each container one address from every IPv6 pool of its network
// while Docker asks for only one.

// PoolFor returns the ID of the pool dualstack holds for prefix in space, if
// it holds one.
func (d *Driver) PoolFor(space string, prefix netip.Prefix) (string, bool) {
	if space == "" {
		space = LocalAddressSpace
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.pools {
		if p.space == space && p.prefix == prefix.Masked() {
			return p.id, true
		}
	}
	return "", false
}

// AllocateFor hands owner the next address of pool poolID in sequence,
// persisted before it returns; if owner already holds an address in the
// pool, that one comes back. The result carries the pool's prefix length.
func (d *Driver) AllocateFor(poolID, owner string) (netip.Prefix, error) {
	if owner == "" {
		return netip.Prefix{}, fmt.Errorf("allocate from pool %s: no owner given", poolID)
	}
	r, err := d.RequestAddress(&ipam.RequestAddressRequest{PoolID: poolID, Options: map[string]string{optMACAddress: owner}})
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.ParsePrefix(r.Address)
}

// Hold holds addr in pool poolID for owner, persisted before it returns:
// an address that is not to be handed out (the host's own). Holding it
// again for the same owner changes nothing; an address someone else holds
// is an error naming it.
func (d *Driver) Hold(poolID string, addr netip.Addr, owner string) error {
	if owner == "" {
		return fmt.Errorf("hold %s in pool %s: no owner given", addr, poolID)
	}
	_, err := d.RequestAddress(&ipam.RequestAddressRequest{PoolID: poolID, Address: addr.String(), Options: map[string]string{optMACAddress: owner}})
	return err
}

// Range returns the ip-range of pool poolID, if it has one.
func (d *Driver) Range(poolID string) (netip.Prefix, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pools[poolID]; ok && p.sub.IsValid() {
		return p.sub, true
	}
	return netip.Prefix{}, false
}

// Release frees addr in pool poolID; idempotent like ReleaseAddress.
func (d *Driver) Release(poolID string, addr netip.Addr) error {
	return d.ReleaseAddress(&ipam.ReleaseAddressRequest{PoolID: poolID, Address: addr.String()})
}

// ReleaseAutoGateway frees the gateway address the IPAM picked itself for
// pool poolID, and reports whether there was one. A network whose router
// is elsewhere (macvlan) calls it so that no address stays claimed for a
// gateway that does not exist; a --gateway the user gave is kept.
func (d *Driver) ReleaseAutoGateway(poolID string) (netip.Addr, bool, error) {
	d.mu.Lock()
	p, ok := d.pools[poolID]
	var held netip.Addr
	if ok {
		_ = d.db.View(func(tx state.Tx) error { held, _ = addrOf(tx, p.id, ownerAutoGateway); return nil })
	}
	d.mu.Unlock()
	if !held.IsValid() {
		return netip.Addr{}, false, nil
	}
	if err := d.Release(poolID, held); err != nil {
		return netip.Addr{}, false, err
	}
	return held, true, nil
}

// Allocations lists the addresses allocated in pool poolID, with their
// owners (an endpoint's MAC address, "endpoint:<ID>", "host-link:<ID>",
// "gateway", "gateway:auto", or "").
func (d *Driver) Allocations(poolID string) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pools[poolID]
	if !ok {
		return out
	}
	_ = d.db.View(func(tx state.Tx) error {
		return tx.ForEach(poolPath(p.id, bucketAddrs), func(k, v []byte) error {
			if a, ok := netip.AddrFromSlice(k); ok {
				out[a] = string(v)
			}
			return nil
		})
	})
	return out
}

// AllocateEach hands owner the next address of each pool in poolIDs, all
// committed in one transaction (one pair of fsyncs for an endpoint's
// extra addresses, not one per pool). with, if not nil, writes the
// caller's own record of the addresses in that same transaction. An
// address owner already holds in a pool comes back. On any failure,
// with's included, nothing is allocated.
func (d *Driver) AllocateEach(poolIDs []string, owner string, with func(tx state.Tx, addrs []netip.Prefix) error) ([]netip.Prefix, error) {
	if owner == "" {
		return nil, fmt.Errorf("allocate from pools %v: no owner given", poolIDs)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	type picked struct {
		p     *pool
		addr  netip.Addr
		fresh bool
		undo  func()
	}
	var picks []picked
	undo := func() {
		for i := len(picks) - 1; i >= 0; i-- {
			picks[i].undo()
		}
	}
	for _, id := range poolIDs {
		p, ok := d.pools[id]
		if !ok {
			undo()
			return nil, fmt.Errorf("no pool %q is held by dualstack: the network's IPAM state is missing; recreate the network", id)
		}
		addr, fresh, u, err := d.pick(p, owner, false, false)
		if err != nil {
			undo()
			return nil, err
		}
		picks = append(picks, picked{p, addr, fresh, u})
	}
	out := make([]netip.Prefix, len(picks))
	for i, s := range picks {
		out[i] = netip.PrefixFrom(s.addr, s.p.addrBits(s.addr))
	}
	err := d.db.Update(func(tx state.Tx) error {
		for _, s := range picks {
			if !s.fresh {
				continue
			}
			if err := saveAddr(tx, s.p.id, s.addr, owner, s.addr); err != nil {
				return err
			}
		}
		if with != nil {
			return with(tx, out)
		}
		return nil
	})
	if err != nil {
		undo()
		return nil, fmt.Errorf("record addresses of %s in the state file: %w", owner, err)
	}
	return out, nil
}

// ReleaseEach frees several addresses in one transaction; addresses not
// held, or in pools that are gone, are skipped. with, if not nil, runs in
// that same transaction (the caller drops its own record of them); if it
// fails, nothing is released.
func (d *Driver) ReleaseEach(addrs map[string][]netip.Addr, with func(tx state.Tx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	type item struct {
		p    *pool
		addr netip.Addr
	}
	var items []item
	for id, as := range addrs {
		p, ok := d.pools[id]
		if !ok {
			continue
		}
		for _, a := range as {
			if p.alloc.Allocated(a) {
				items = append(items, item{p, a})
			}
		}
	}
	if len(items) == 0 && with == nil {
		return nil
	}
	if err := d.db.Update(func(tx state.Tx) error {
		for _, it := range items {
			if err := deleteAddr(tx, it.p.id, it.addr); err != nil {
				return err
			}
		}
		if with != nil {
			return with(tx)
		}
		return nil
	}); err != nil {
		if len(items) == 0 {
			return err
		}
		names := make([]string, len(items))
		for i, it := range items {
			names[i] = fmt.Sprintf("%s of pool %s", it.addr, it.p)
		}
		return fmt.Errorf("remove %s from the state file: %w", strings.Join(names, ", "), err)
	}
	for _, it := range items {
		it.p.alloc.Release(it.addr)
		delete(d.answered[it.p.id], it.addr)
		d.releaseClaims(it.p, []netip.Addr{it.addr})
		d.dropEmptyLost(it.p)
	}
	return nil
}
