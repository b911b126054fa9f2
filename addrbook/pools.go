package addrbook

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/dualstack-net/dualstack/state"

	"github.com/dualstack-net/dualstack/validate"
)

// PoolRequest asks for a pool: a subnet and an ip-range as Docker gives
// them (--subnet, --ip-range), or neither for the next default pool of the
// family.
type PoolRequest struct {
	Space  string
	Subnet string
	Range  string
	V6     bool
	// OnLink makes the pool the interface's (OnLinkOf), and with V6 and no
	// Subnet carves it from the interface's on-link prefix.
	OnLink *OnLinkRequest
}

// Pool is a pool the book holds.
type Pool struct {
	ID     string
	Prefix netip.Prefix
}

// RequestPool holds the subnet (and ip-range) req gives, or the next free
// default pool of the requested family.
func (bk *Book) RequestPool(req PoolRequest) (Pool, error) {
	space := req.Space
	if space == "" {
		space = LocalAddressSpace
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()

	var prefix, sub netip.Prefix
	var err error
	switch {
	case req.Subnet != "":
		if prefix, err = parsePrefix("subnet", req.Subnet); err != nil {
			return Pool{}, err
		}
		if err := validate.Subnet(prefix); err != nil {
			return Pool{}, err
		}
		if req.V6 != prefix.Addr().Is6() {
			want := "IPv4"
			if req.V6 {
				want = "IPv6"
			}
			return Pool{}, fmt.Errorf("subnet %s is not an %s subnet: check the order of --subnet options and --ipv6", prefix, want)
		}
		if req.Range != "" {
			if sub, err = parsePrefix("ip-range", req.Range); err != nil {
				return Pool{}, err
			}
		}
		if held := overlapping(bk.sortedPools(), space, prefix); held != nil {
			if bk.retriedPool(held, prefix, sub) {
				bk.answeredPools[held.id] = true
				bk.log.WithField("pool", held.id).Info("pool asked for again, as an earlier process answered it and nothing uses it yet: the same pool (a retried request)")
				return Pool{held.id, held.prefix}, nil
			}
			return Pool{}, fmt.Errorf("subnet %s overlaps subnet %s, which dualstack already holds for another network (pool %s): choose a subnet that does not overlap, or remove that network", prefix, held.prefix, held.id)
		}
	case req.Range != "":
		return Pool{}, fmt.Errorf("ip-range %s given without a subnet: add --subnet", req.Range)
	case req.V6 && req.OnLink != nil:
		if prefix, err = bk.carve(space, *req.OnLink); err != nil {
			return Pool{}, err
		}
	case req.V6:
		if prefix, err = bk.nextDefault(space, []DefaultPool{{Base: bk.ula, Size: 64}}, true); err != nil {
			return Pool{}, err
		}
	default:
		if prefix, err = bk.nextDefault(space, bk.defaultV4, false); err != nil {
			return Pool{}, err
		}
	}

	p, err := newPool(space, prefix, sub)
	if err != nil {
		return Pool{}, err
	}
	p.byDefault = req.Subnet == ""
	if req.OnLink != nil {
		p.onLink = req.OnLink.Interface
	}
	if err := bk.db.Update(func(tx state.Tx) error { return savePool(tx, p) }); err != nil {
		return Pool{}, fmt.Errorf("record pool %s in the state file: %w", p.id, err)
	}
	bk.pools[p.id] = p
	bk.answeredPools[p.id] = true
	bk.log.WithField("pool", p.id).Debug("pool allocated")
	return Pool{p.id, prefix}, nil
}

// retriedPool reports whether a RequestPool for prefix and sub, which held
// overlaps, is Docker repeating a request whose answer a plugin crash lost:
// the same subnet and ip-range, answered by an earlier plugin process (the
// unix socket loses no answer while the plugin lives), and nothing
// allocated in it yet (Docker asks for the pool before any address). The
// answer is the same pool; any other overlap is another network's, and
// refused.
func (bk *Book) retriedPool(held *pool, prefix, sub netip.Prefix) bool {
	return held.prefix == prefix && held.sub == sub && !bk.answeredPools[held.id] && held.alloc.Runs() == 0
}

// overlapping returns the first pool of space in pools that overlaps
// prefix, if any.
func overlapping(pools []*pool, space string, prefix netip.Prefix) *pool {
	for _, p := range pools {
		if p.space == space && p.prefix.Overlaps(prefix) {
			return p
		}
	}
	return nil
}

// sortedPools returns the pools in ID order, so that choices and messages do
// not depend on map order.
func (bk *Book) sortedPools() []*pool {
	out := make([]*pool, 0, len(bk.pools))
	for _, p := range bk.pools {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// nextDefault returns the first subnet of defaults that overlaps neither a
// pool held in space nor the host's own routes and addresses.
func (bk *Book) nextDefault(space string, defaults []DefaultPool, v6 bool) (netip.Prefix, error) {
	var host []netip.Prefix
	if bk.hostNets != nil {
		var err error
		if host, err = bk.hostNets(v6); err != nil {
			return netip.Prefix{}, fmt.Errorf("read the host's routes to pick a free default pool: %w", err)
		}
	}
	held := bk.sortedPools()
	for _, def := range defaults {
		count := uint64(1) << uint(def.Size-def.Base.Bits())
		for n := uint64(0); n < count; n++ {
			cand := nthSubnet(def.Base, def.Size, n)
			if overlapping(held, space, cand) != nil || overlapsAny(cand, host) {
				continue
			}
			return cand, nil
		}
	}
	if v6 {
		return netip.Prefix{}, fmt.Errorf("every /64 of the host's ULA prefix %s is in use: give the network an explicit IPv6 --subnet", bk.ula)
	}
	return netip.Prefix{}, errors.New("every default IPv4 pool (DEFAULT_POOLS_V4) is in use or overlaps a host route: give the network an explicit --subnet, or add pools with `docker plugin set dualstack DEFAULT_POOLS_V4=...`")
}

func overlapsAny(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Bits() > 0 && p.Overlaps(q) {
			return true
		}
	}
	return false
}

// ReleasePool lets pool id go, and its addresses with it. Releasing an
// unknown pool succeeds.
func (bk *Book) ReleasePool(id string) error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	p, ok := bk.pools[id]
	if ok {
		bk.leaveCluster(p)
	}
	if err := bk.db.Update(func(tx state.Tx) error { return deletePool(tx, id) }); err != nil {
		return fmt.Errorf("remove pool %s from the state file: %w", id, err)
	}
	delete(bk.pools, id)
	delete(bk.answered, id)
	delete(bk.answeredPools, id)
	if ok && p.sticky != nil {
		bk.writeStickyStatus()
	}
	return nil
}
