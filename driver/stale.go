package driver

import "net/netip"

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

// PoolReleased is told of each pool Docker releases, before the address
// book forgets it (the plugin's mux calls it first): a network that still
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
	if !d.cfg.Book.Claimed(addr) {
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
