package driver

import (
	"net/netip"
	"strings"
	"time"
)

// Stale allocations.
//
// Docker asks the IPAM for a container's address before it asks the
// network driver for the endpoint, and gives the address back if that
// fails. When the plugin is down at that moment (killed, restarting), the
// release cannot reach it and Docker does not try again: the address stays
// allocated with no endpoint. At start the driver notes the allocations in
// its networks' pools that no endpoint, gateway or host link explains, and
// after a grace period longer than Docker's retries of a plugin call
// (30 s), releases those still unexplained: a container start that was
// under way at the restart has created its endpoint by then.

// StaleGrace is how long a suspicious allocation is left alone.
const StaleGrace = 90 * time.Second

// staleKey is one allocation.
type staleKey struct {
	poolID string
	addr   netip.Addr
}

// expectedOwners lists, by pool, the owners dualstack can account for.
func (d *Driver) expectedOwners() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, n := range d.networks {
		owners := map[string]bool{"": true, "gateway": true, "gateway:auto": true, hostLinkOwner(n): true, hostAddrOwner(n): true}
		for _, ep := range d.endpoints {
			if ep.NetworkID == n.ID {
				owners[endpointOwner(ep)] = true
				owners[strings.ToLower(ep.MAC)] = true
			}
		}
		for _, p := range n.pools() {
			if p.PoolID != "" {
				out[p.PoolID] = owners
			}
		}
	}
	return out
}

// unexplained lists the allocations of the networks' pools that no owner
// accounts for.
func (d *Driver) unexplained() map[staleKey]string {
	out := map[staleKey]string{}
	for poolID, owners := range d.expectedOwners() {
		for a, owner := range d.cfg.IPAM.Allocations(poolID) {
			if !owners[strings.ToLower(owner)] {
				out[staleKey{poolID, a}] = owner
			}
		}
	}
	return out
}

// CollectStale notes the unexplained allocations now and releases, after
// grace, those still unexplained and held by the same owner.
func (d *Driver) CollectStale(grace time.Duration) {
	d.mu.Lock()
	suspects := d.unexplained()
	d.mu.Unlock()
	if len(suspects) == 0 {
		return
	}
	d.log.WithField("allocations", len(suspects)).Infof("allocations without an endpoint (a container start the plugin missed); released in %s unless an endpoint claims them", grace)
	time.AfterFunc(grace, func() { d.releaseStale(suspects) })
}

func (d *Driver) releaseStale(suspects map[staleKey]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.unexplained()
	for k, owner := range suspects {
		if cur, ok := now[k]; !ok || cur != owner {
			continue
		}
		if err := d.cfg.IPAM.Release(k.poolID, k.addr); err != nil {
			d.log.WithField("pool", k.poolID).WithField("address", k.addr).WithError(err).Warn("release a stale allocation")
			continue
		}
		d.log.WithField("pool", k.poolID).WithField("address", k.addr).WithField("owner", owner).Info("released an allocation no endpoint claims")
	}
}

// What Docker gave up on.
//
// A network whose creation failed after the plugin committed it (the
// answer to CreateNetwork was lost and Docker stopped retrying, or a later
// step of Docker's failed) is never deleted: Docker has no such network.
// Docker does give its pools back, though. So when Docker releases a pool
// that a network still holds, the network goes now. Current engines
// (moby v2) release a network's pools before they call DeleteNetwork even
// when they remove it as usual; Engine 20.10 releases them after. Either
// way the network is to go, and a DeleteNetwork that follows finds it gone.

// PoolReleased is told of each pool Docker releases, before the IPAM
// forgets it (ipamdriver.Driver.SetPoolRelease): a network that still
// holds the pool is removed.
func (d *Driver) PoolReleased(poolID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.networks {
		for _, p := range n.pools() {
			if p.PoolID != poolID {
				continue
			}
			log := d.log.WithField("network", short(n.ID)).WithField("pool", poolID)
			log.Info("Docker released the pool of a network it has not deleted (current engines release the pools first; after a failed creation it never deletes it): removing the network")
			if err := d.deleteNetwork(n); err != nil {
				log.WithError(err).Error("remove a network Docker gave up on")
			}
			return
		}
	}
}

// AddressReleased removes the endpoint that holds addr, the address Docker
// gave it, when Docker releases that address: Docker deletes an endpoint
// before it releases its addresses, so an endpoint still holding one is an
// endpoint Docker gave up on (its creation failed after the plugin
// committed it, the answer lost in a restart). Left, it would keep its
// veth and refuse the next endpoint Docker gives the address to.
func (d *Driver) AddressReleased(addr netip.Addr) {
	if !d.AddressClaimed(addr) {
		return // the usual case, at no cost
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ep := range d.endpoints {
		if ep.IPv4.Addr() != addr && ep.IPv6.Addr() != addr {
			continue
		}
		log := d.log.WithField("endpoint", short(ep.ID)).WithField("network", short(ep.NetworkID)).WithField("address", addr)
		log.Warn("Docker gave back the address of an endpoint it never deleted (its creation failed after the plugin committed it): removing the endpoint")
		if err := d.deleteEndpoint(ep); err != nil {
			log.WithError(err).Error("remove an endpoint Docker gave up on")
		}
		return
	}
}

// PoolClaimed reports whether one of the driver's networks holds pool
// poolID.
func (d *Driver) PoolClaimed(poolID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.networks {
		for _, p := range n.pools() {
			if p.PoolID == poolID {
				return true
			}
		}
	}
	return false
}
