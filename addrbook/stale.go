package addrbook

import (
	"net/netip"
	"slices"
	"time"
)

// Stale allocations and forgotten pools.
//
// Docker asks the IPAM for a container's address before it asks the
// network driver for the endpoint, and gives the address back if that
// fails. When the plugin is down at that moment (killed, restarting), the
// release cannot reach it and Docker does not try again: the address stays
// allocated with no endpoint. At start the book notes the allocations in
// the networks' pools that no endpoint, gateway, host address or host link
// explains, and after a grace period longer than Docker's retries of a
// plugin call (30 s), releases those still unexplained: a container start
// that was under way at the restart has created its endpoint by then.
// Pools are treated alike (CollectEmptyDefaultPools).

// StaleGrace is how long a suspicious allocation is left alone.
const StaleGrace = 90 * time.Second

// staleKey is one allocation.
type staleKey struct {
	poolID string
	addr   netip.Addr
}

// unexplained lists the allocations of the networks' pools that no owner
// accounts for (users.explains).
func (bk *Book) unexplained() map[staleKey]Owner {
	out := map[staleKey]Owner{}
	for network, pools := range bk.users.networks {
		for _, id := range pools {
			for a, owner := range bk.allocations(id) {
				if !bk.users.explains(network, owner) {
					out[staleKey{id, a}] = owner
				}
			}
		}
	}
	return out
}

// CollectStale notes the unexplained allocations now and releases, after
// grace, those still unexplained and held by the same owner. The network
// driver has attached its networks and claimed its endpoints by then.
func (bk *Book) CollectStale(grace time.Duration) {
	bk.mu.Lock()
	suspects := bk.unexplained()
	bk.mu.Unlock()
	if len(suspects) == 0 {
		return
	}
	bk.log.WithField("allocations", len(suspects)).Infof("allocations without an endpoint (a container start the plugin missed); released in %s unless an endpoint claims them", grace)
	time.AfterFunc(grace, func() { bk.releaseStale(suspects) })
}

func (bk *Book) releaseStale(suspects map[staleKey]Owner) {
	var gone []staleKey
	err := bk.Update(func(tx *Tx) error {
		now := bk.unexplained()
		gone = nil
		for k, owner := range suspects {
			if cur, ok := now[k]; ok && cur == owner {
				gone = append(gone, k)
				if err := tx.ReleaseEach(map[string][]netip.Addr{k.poolID: {k.addr}}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		bk.log.WithField("allocations", len(gone)).WithError(err).Warn("release stale allocations")
		return
	}
	for _, k := range gone {
		bk.log.WithField("pool", k.poolID).WithField("address", k.addr).WithField("owner", suspects[k]).Info("released an allocation no endpoint claims")
	}
}

// CollectEmptyDefaultPools releases, grace after it is called, the pools
// picked from the default pools (a network that named no subnet) that an
// earlier plugin process handed out, that hold no address then as now, and
// that no network of the network driver holds (Attach). Docker asks for a
// pool again when the plugin died before it answered, and a default-pool
// request then gets the next default pool: the first would stay held by
// nobody. A network of another driver holds at least its gateway's
// address. Each release is logged.
func (bk *Book) CollectEmptyDefaultPools(grace time.Duration) {
	suspects := bk.emptyDefaultPools()
	if len(suspects) == 0 {
		return
	}
	time.AfterFunc(grace, func() {
		for _, id := range suspects {
			if !slices.Contains(bk.emptyDefaultPools(), id) {
				continue
			}
			if err := bk.ReleasePool(id); err != nil {
				bk.log.WithField("pool", id).WithError(err).Warn("release an empty default pool no network claims")
				continue
			}
			bk.log.WithField("pool", id).Info("released a default pool that no network has used since an earlier process handed it out (Docker asked again after the plugin died before answering)")
		}
	})
}

// emptyDefaultPools lists the default pools an earlier process handed out
// that hold no address and no network holds.
func (bk *Book) emptyDefaultPools() []string {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	var out []string
	for _, p := range bk.sortedPools() {
		if p.byDefault && !bk.answeredPools[p.id] && p.alloc.Runs() == 0 && !bk.users.poolAttached(p.id) {
			out = append(out, p.id)
		}
	}
	return out
}
