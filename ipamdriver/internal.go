package ipamdriver

import (
	"fmt"
	"net/netip"

	"github.com/docker/go-plugins-helpers/ipam"
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
