package ipamdriver

import (
	"fmt"
	"net/netip"

	"github.com/docker/go-plugins-helpers/ipam"
	bolt "go.etcd.io/bbolt"
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
		_ = d.db.View(func(tx *bolt.Tx) error { held, _ = addrOf(tx, p.id, ownerAutoGateway); return nil })
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
	_ = d.db.View(func(tx *bolt.Tx) error {
		_, addrs, _, err := poolBuckets(tx, p.id)
		if err != nil {
			return nil
		}
		return addrs.ForEach(func(k, v []byte) error {
			if a, ok := netip.AddrFromSlice(k); ok {
				out[a] = string(v)
			}
			return nil
		})
	})
	return out
}
