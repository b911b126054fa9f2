package addrbook

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/internal/statusfile"
	"github.com/dualstack-net/dualstack/state"
)

// Sticky pools: a container that goes and comes back under the same name
// gets the same address (sticky_addresses=true).
//
// A sticky pool keeps, for each container name it was asked for, a
// reservation: the address the name got last. While an endpoint holds
// the address the reservation is in use; when the address is released it
// stays allocated, to owner sticky:NAME, until the pool's hold time has
// passed, and the sequence passes over it. A request under the name gets
// the address back if it is still kept for it; otherwise (an endpoint
// holds it, or the reservation ended) the next in sequence, which becomes
// the name's reservation. Reservations never make a pool run out: a full
// pool frees its oldest kept address for a new one, and a preferred
// address (--ip) kept for another name is handed out. Ended reservations
// are freed lazily: at each request on the pool, and at load.
//
// The name is what Docker sends with RequestAddress
// (com.docker.network.endpoint.name, API 1.52); the network driver passes
// it on for the addresses it allocates itself (StickyName). A pool that is
// not sticky keeps no records and pays nothing.

// StickyStatusFile is the sticky pools' status file in the state
// directory (Config.StatusDir): the plugin holds the state file locked, so
// `dualstack sticky` reads this instead.
const StickyStatusFile = "sticky.json"

// MinStickyHold is the shortest hold time a sticky pool takes.
const MinStickyHold = time.Minute

// stickyPool is a sticky pool's hold time and reservations.
type stickyPool struct {
	hold   time.Duration
	byName map[string]reservation
	byAddr map[netip.Addr]string
	// warned: a request without a name was logged.
	warned bool
}

// reservation is a container name's address in a sticky pool, as the
// state file keeps it.
type reservation struct {
	Addr netip.Addr `json:"address"`
	// Until is when the reservation ends; zero while an endpoint holds
	// the address.
	Until time.Time `json:"until"`
}

// kept reports whether the address is kept for the name (released, and
// allocated to owner sticky:NAME until Until).
func (r reservation) kept() bool { return !r.Until.IsZero() }

func newStickyPool(hold time.Duration) *stickyPool {
	return &stickyPool{hold: hold, byName: map[string]reservation{}, byAddr: map[netip.Addr]string{}}
}

func (s *stickyPool) set(name string, r reservation) {
	if old, ok := s.byName[name]; ok {
		delete(s.byAddr, old.Addr)
	}
	s.byName[name] = r
	s.byAddr[r.Addr] = name
}

func (s *stickyPool) drop(name string) {
	if old, ok := s.byName[name]; ok {
		delete(s.byAddr, old.Addr)
		delete(s.byName, name)
	}
}

// SetSticky makes pool poolID sticky, its reservations kept for hold
// after their endpoint goes, persisted with the pool. The network driver
// calls it as it creates a network with sticky_addresses=true.
func (bk *Book) SetSticky(poolID string, hold time.Duration) error {
	if hold < MinStickyHold {
		return fmt.Errorf("sticky pool %s: hold time %s is shorter than %s", poolID, hold, MinStickyHold)
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	p, ok := bk.pools[poolID]
	if !ok {
		return fmt.Errorf("no pool %q is held by dualstack: the network's IPAM state is missing; recreate the network", poolID)
	}
	if p.sticky != nil && p.sticky.hold == hold {
		return nil
	}
	prev := p.sticky
	if p.sticky == nil {
		p.sticky = newStickyPool(hold)
	} else {
		p.sticky = &stickyPool{hold: hold, byName: prev.byName, byAddr: prev.byAddr, warned: prev.warned}
	}
	if err := bk.db.Update(func(tx state.Tx) error { return saveMeta(tx, p) }); err != nil {
		p.sticky = prev
		return fmt.Errorf("record pool %s as sticky in the state file: %w", p.id, err)
	}
	bk.log.WithField("pool", p.id).WithField("hold", hold).Debug("pool made sticky")
	bk.writeStickyStatus()
	return nil
}

// StickyName returns the container name whose reservation in pool poolID
// is addr, if any: the network driver allocates an endpoint's addresses
// in the other IPv6 pools under the name of its address in Docker's.
func (bk *Book) StickyName(poolID string, addr netip.Addr) string {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if p, ok := bk.pools[poolID]; ok && p.sticky != nil {
		return p.sticky.byAddr[addr]
	}
	return ""
}

// loadSticky reads p's reservations when hold (poolRecord.StickyHold)
// makes it sticky.
func loadSticky(tx state.Tx, p *pool, hold string) error {
	if hold == "" {
		return nil
	}
	d, err := time.ParseDuration(hold)
	if err != nil {
		return fmt.Errorf("bad sticky hold time %q: %w", hold, err)
	}
	p.sticky = newStickyPool(d)
	return tx.ForEach(poolPath(p.id, bucketSticky), func(k, v []byte) error {
		var r reservation
		if err := json.Unmarshal(v, &r); err != nil || !r.Addr.IsValid() {
			return fmt.Errorf("bad reservation of %q: %s", k, v)
		}
		p.sticky.set(string(k), r)
		return nil
	})
}

// loadedSticky frees the reservations that ended while the plugin was
// down, and writes the status file.
func (bk *Book) loadedSticky() {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	sticky := false
	for _, p := range bk.sortedPools() {
		if p.sticky != nil {
			sticky = true
			bk.expire(p)
		}
	}
	if sticky {
		bk.writeStickyStatus()
	}
}

// stickyName is the name owner's request in p is sticky under: name, for
// an endpoint's request in a sticky pool; "" for any other. A sticky pool
// asked by Docker without a name logs it, once.
func (bk *Book) stickyName(p *pool, owner Owner, name string) string {
	if p.sticky == nil || (owner.Kind != MAC && owner.Kind != Endpoint) {
		return ""
	}
	if name == "" && owner.Kind == MAC && !p.sticky.warned {
		p.sticky.warned = true
		bk.log.WithField("pool", p.id).Warn("the engine sends no container names to IPAM plugins (Docker 29 / API 1.52 does): sticky_addresses has no effect on this engine")
	}
	return name
}

// expire frees the addresses of p whose reservations ended, in a commit
// of their own.
func (bk *Book) expire(p *pool) {
	now := bk.now()
	var ended []string
	for name, r := range p.sticky.byName {
		if r.kept() && !now.Before(r.Until) {
			ended = append(ended, name)
		}
	}
	if len(ended) == 0 {
		return
	}
	slices.Sort(ended)
	for _, name := range ended {
		r := p.sticky.byName[name]
		if err := bk.db.Update(func(tx state.Tx) error { return bk.unkeep(tx, p, name, r.Addr) }); err != nil {
			bk.log.WithField("pool", p.id).WithField("name", name).WithError(err).Warn("free an address whose reservation ended (tried again at the next request)")
			return
		}
		bk.freed(p, name, r.Addr)
		bk.log.WithField("pool", p.id).WithField("name", name).WithField("address", r.Addr).Debug("reservation ended: address freed")
	}
	bk.writeStickyStatus()
}

// unkeep writes the end of name's reservation of addr, whose address is
// freed with it.
func (bk *Book) unkeep(tx state.Tx, p *pool, name string, addr netip.Addr) error {
	if err := deleteAddr(tx, p.id, addr); err != nil {
		return err
	}
	return tx.Delete(poolPath(p.id, bucketSticky), []byte(name))
}

// freed makes in memory the change unkeep wrote.
func (bk *Book) freed(p *pool, name string, addr netip.Addr) {
	p.sticky.drop(name)
	bk.freeAddr(p, addr)
}

// freeAddr gives addr of p back in memory, as ReleaseEach does.
func (bk *Book) freeAddr(p *pool, addr netip.Addr) {
	p.alloc.Release(addr)
	delete(bk.answered[p.id], addr)
	bk.releaseClaims(p, []netip.Addr{addr})
	bk.dropEmptyLost(p)
}

// freeOldest frees the address of p kept the longest, for a pool that
// is full otherwise, and reports whether there was one.
func (bk *Book) freeOldest(p *pool) bool {
	if p.sticky == nil {
		return false
	}
	var name string
	var oldest reservation
	for n, r := range p.sticky.byName {
		if r.kept() && (name == "" || r.Until.Before(oldest.Until) || r.Until.Equal(oldest.Until) && n < name) {
			name, oldest = n, r
		}
	}
	if name == "" {
		return false
	}
	if err := bk.db.Update(func(tx state.Tx) error { return bk.unkeep(tx, p, name, oldest.Addr) }); err != nil {
		bk.log.WithField("pool", p.id).WithField("name", name).WithError(err).Warn("free the oldest reservation of a full pool")
		return false
	}
	bk.freed(p, name, oldest.Addr)
	bk.log.WithField("pool", p.id).WithField("name", name).WithField("address", oldest.Addr).Infof("pool %s is full: the address kept the longest for a container name is freed for a new one", p)
	bk.writeStickyStatus()
	return true
}

// stickyTake hands owner, asking under name, the address p keeps for
// name, if it keeps one and owner is not asking again for what it holds
// (see heldBy): the change's write, and what changes in memory once it is
// committed.
func (bk *Book) stickyTake(p *pool, owner Owner, name string) (netip.Addr, func(state.Tx) error, func(), bool) {
	r, ok := p.sticky.byName[name]
	if !ok || !r.kept() {
		return netip.Addr{}, nil, nil, false
	}
	if _, again := bk.heldBy(p, owner); again {
		return netip.Addr{}, nil, nil, false
	}
	active := reservation{Addr: r.Addr}
	w := func(tx state.Tx) error {
		if err := deleteAddr(tx, p.id, r.Addr); err != nil {
			return err
		}
		if err := saveAddr(tx, p.id, r.Addr, owner.String(), netip.Addr{}); err != nil {
			return err
		}
		return putReservation(tx, p, name, active)
	}
	return r.Addr, w, func() { p.sticky.set(name, active) }, true
}

// stickyBind records addr, which owner got, as name's reservation in p:
// the change's write, and what changes in memory once it is committed
// (both nil when it is so already). The address name's reservation kept
// before, if another, is freed; the reservation another name had of addr
// ends.
func (bk *Book) stickyBind(p *pool, name string, addr netip.Addr) (func(state.Tx) error, func()) {
	s := p.sticky
	old, had := s.byName[name]
	if had && old.Addr == addr && !old.kept() {
		return nil, nil
	}
	other, shared := s.byAddr[addr]
	shared = shared && other != name
	active := reservation{Addr: addr}
	w := func(tx state.Tx) error {
		if had && old.Addr != addr && old.kept() {
			if err := deleteAddr(tx, p.id, old.Addr); err != nil {
				return err
			}
		}
		if shared {
			if err := tx.Delete(poolPath(p.id, bucketSticky), []byte(other)); err != nil {
				return err
			}
		}
		return putReservation(tx, p, name, active)
	}
	apply := func() {
		if had && old.Addr != addr && old.kept() {
			bk.freeAddr(p, old.Addr)
		}
		if shared {
			s.drop(other)
		}
		s.set(name, active)
	}
	return w, apply
}

func putReservation(tx state.Tx, p *pool, name string, r reservation) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put(poolPath(p.id, bucketSticky), []byte(name), v)
}

// requestSticky is RequestAddress's part for a sticky pool and a name:
// the address p keeps for name (stickyTake) when it keeps one and no
// address is preferred, else what request gives, recorded as name's
// reservation.
func (bk *Book) requestSticky(p *pool, preferred string, owner Owner, name string, request func() (netip.Addr, error)) (netip.Addr, error) {
	bk.expire(p)
	if preferred == "" {
		if addr, w, apply, ok := bk.stickyTake(p, owner, name); ok {
			if err := bk.db.Update(w); err != nil {
				return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
			}
			apply()
			bk.log.WithField("pool", p.id).WithField("name", name).WithField("address", addr).Debug("address kept for the container name handed out again")
			bk.writeStickyStatus()
			return addr, nil
		}
	}
	addr, err := request()
	if err != nil {
		return addr, err
	}
	if w, apply := bk.stickyBind(p, name, addr); w != nil {
		if err := bk.db.Update(w); err != nil {
			// The address is the owner's all the same; only its
			// reservation is missing.
			bk.log.WithField("pool", p.id).WithField("name", name).WithField("address", addr).WithError(err).Warn("record the container name's reservation: the address is not kept for the name")
			return addr, nil
		}
		apply()
		bk.writeStickyStatus()
	}
	return addr, nil
}

// takeOver hands owner addr, which p keeps for container name: the
// reservation ends (a --ip asks for it).
func (bk *Book) takeOver(p *pool, addr netip.Addr, owner Owner, name string) (netip.Addr, error) {
	err := bk.db.Update(func(tx state.Tx) error {
		if err := bk.unkeep(tx, p, name, addr); err != nil {
			return err
		}
		return saveAddr(tx, p.id, addr, owner.String(), netip.Addr{})
	})
	if err != nil {
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	if p.sticky != nil {
		p.sticky.drop(name)
		bk.writeStickyStatus()
	}
	bk.log.WithField("pool", p.id).WithField("address", addr).WithField("name", name).Info("address kept for a container name handed out as asked: that name's reservation ends")
	return addr, nil
}

// keep writes, for a release of addr in p, that addr stays allocated
// to the name whose reservation it is, and reports whether it is one's;
// the change in memory waits for tx's commit.
func (tx *Tx) keep(p *pool, addr netip.Addr) bool {
	if p.sticky == nil {
		return false
	}
	name, ok := p.sticky.byAddr[addr]
	if !ok {
		return false
	}
	r := p.sticky.byName[name]
	if r.kept() {
		return true
	}
	bk := tx.bk
	kept := reservation{Addr: addr, Until: bk.now().Add(p.sticky.hold).UTC().Truncate(time.Second)}
	tx.write(func(st state.Tx) error {
		if err := deleteAddr(st, p.id, addr); err != nil {
			return err
		}
		if err := saveAddr(st, p.id, addr, StickyOwner(name).String(), netip.Addr{}); err != nil {
			return err
		}
		return putReservation(st, p, name, kept)
	})
	tx.after = append(tx.after, func() {
		p.sticky.set(name, kept)
		delete(bk.answered[p.id], addr)
		bk.log.WithField("pool", p.id).WithField("name", name).WithField("address", addr).WithField("until", kept.Until).Debug("address kept for the container name")
	})
	tx.sticky = true
	return true
}

// StickyStatus is what the status file (StickyStatusFile) holds: each
// sticky network's reservations. `dualstack sticky` prints it.
type StickyStatus struct {
	Written  time.Time       `json:"written"`
	Networks []StickyNetwork `json:"networks"`
}

// StickyNetwork is a network's sticky pools and their reservations.
type StickyNetwork struct {
	// Network is the network's ID; "" for pools no network holds (yet).
	Network      string              `json:"network"`
	Pools        []string            `json:"pools"`
	Hold         string              `json:"hold"`
	Reservations []StickyReservation `json:"reservations"`
}

// StickyReservation is a container name's addresses, one per pool.
type StickyReservation struct {
	Name      string          `json:"name"`
	Addresses []StickyAddress `json:"addresses"`
}

// StickyAddress is one address of a reservation.
type StickyAddress struct {
	Pool    string     `json:"pool"`
	Address netip.Addr `json:"address"`
	// Until is when the address is freed; nil while an endpoint holds it.
	Until *time.Time `json:"until,omitempty"`
}

// stickyStatus is the status now, with bk.mu held.
func (bk *Book) stickyStatus() StickyStatus {
	st := StickyStatus{Written: bk.now().UTC(), Networks: []StickyNetwork{}}
	byNet := map[string]int{}
	for _, p := range bk.sortedPools() {
		if p.sticky == nil {
			continue
		}
		net := bk.users.networkOf(p.id)
		i, ok := byNet[net]
		if !ok {
			i = len(st.Networks)
			byNet[net] = i
			st.Networks = append(st.Networks, StickyNetwork{Network: net, Hold: p.sticky.hold.String()})
		}
		sn := &st.Networks[i]
		sn.Pools = append(sn.Pools, p.id)
		for name, r := range p.sticky.byName {
			a := StickyAddress{Pool: p.id, Address: r.Addr}
			if r.kept() {
				until := r.Until
				a.Until = &until
			}
			j := slices.IndexFunc(sn.Reservations, func(x StickyReservation) bool { return x.Name == name })
			if j < 0 {
				j = len(sn.Reservations)
				sn.Reservations = append(sn.Reservations, StickyReservation{Name: name})
			}
			sn.Reservations[j].Addresses = append(sn.Reservations[j].Addresses, a)
		}
	}
	for i := range st.Networks {
		slices.SortFunc(st.Networks[i].Reservations, func(a, b StickyReservation) int { return strings.Compare(a.Name, b.Name) })
	}
	slices.SortFunc(st.Networks, func(a, b StickyNetwork) int { return strings.Compare(a.Network, b.Network) })
	return st
}

// writeStickyStatus writes the status file, whole (a rename), when the
// book has a status directory; bk.mu is held.
func (bk *Book) writeStickyStatus() {
	if bk.statusDir == "" {
		return
	}
	if err := statusfile.Write(bk.statusDir, StickyStatusFile, bk.stickyStatus()); err != nil {
		bk.log.WithError(err).Warn("write the sticky pools' status file")
	}
}
