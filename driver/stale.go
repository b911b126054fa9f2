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
		owners := map[string]bool{"": true, "gateway": true, "gateway:auto": true, "host-link:" + n.ID: true}
		for _, ep := range d.endpoints {
			if ep.NetworkID == n.ID {
				owners["endpoint:"+ep.ID] = true
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
			d.log.WithField("pool", k.poolID).Warnf("release stale allocation %s: %v", k.addr, err)
			continue
		}
		d.log.WithField("pool", k.poolID).WithField("address", k.addr).WithField("owner", owner).Info("released an allocation no endpoint claims")
	}
}
