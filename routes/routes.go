// Package routes owns the routes dualstack puts in the host's main table:
// host-gw routes to other hosts' blocks (protocol 0xd5) and the routes BGP
// learned (protocol 0xd6, 214). The Keeper (keeper.go) makes each
// protocol's wanted routes from what it is handed: the host's networks
// (from the network driver), the blocks the cluster store reports, the
// routes BGP learned. A Table takes the routes wanted per protocol, whole
// (Sync) or as changes (Update); it keeps in memory what it installed, so
// a change costs kernel work for the changed prefixes only, and reads the
// kernel's table only on the first sync of a protocol and after an error.
//
// It never replaces nor deletes a route it did not make. A prefix the host
// already routes (a route of the kernel, of the administrator, of another
// daemon or of dualstack's other protocol) is refused, logged as a
// conflict, and the route there is left as it is; routes are added with
// NLM_F_EXCL, never replaced. A next hop must be on a network the host
// reaches directly (the kernel would take it without the onlink flag),
// never an address of the host, never inside one of the host's container
// networks; and a prefix may not overlap a network the host is on.
package routes

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"

	"github.com/sirupsen/logrus"
)

// Protocol is the routing protocol number that marks a kind of route of
// dualstack's in the kernel.
type Protocol uint8

const (
	// HostGW marks the routes to other hosts' blocks of cluster networks
	// with cluster_routes=host-gw.
	HostGW Protocol = 0xd5
	// Learned marks the routes learned over BGP (BGP_IMPORT_ROUTES): not
	// the kernel's "bgp" (186), which a routing daemon of the host may use.
	Learned Protocol = 0xd6
)

// protocols are dualstack's own protocols.
var protocols = []Protocol{HostGW, Learned}

func (p Protocol) String() string {
	switch p {
	case HostGW:
		return "host-gw"
	case Learned:
		return "bgp-learned"
	}
	return fmt.Sprintf("protocol %d", uint8(p))
}

// Hop is where a wanted route leads.
type Hop struct {
	// Via is the next hop.
	Via netip.Addr
	// Dev, when set, is the interface the next hop must be on (the
	// cluster's interface, when the caller knows it).
	Dev string
	// Network names what the route is for (a cluster network), for the
	// log; it is not part of the route.
	Network string
}

// same reports whether a route installed via h needs no change for w: the
// same next hop, on w's interface when w names one.
func (h Hop) same(w Hop) bool { return h.Via == w.Via && (w.Dev == "" || h.Dev == w.Dev) }

// Options are what a Table is made with.
type Options struct {
	Log logrus.FieldLogger
	// ContainerNets lists the host's local container networks: the
	// subnets (or, in cluster networks, the host's own blocks) of
	// dualstack's networks and Docker's bridges. No route goes into or
	// overlaps one, and no next hop lies inside one. May be nil.
	ContainerNets func() []netip.Prefix
	// kernel is the kernel's table: netlink unless a test sets it.
	kernel kernel
}

// Table syncs dualstack's routes in the main table.
type Table struct {
	mu            sync.Mutex
	k             kernel
	log           logrus.FieldLogger
	containerNets func() []netip.Prefix
	state         map[Protocol]*protoState
}

// protoState is what the table knows of one protocol's routes.
type protoState struct {
	// loaded: installed was read from the kernel, and is still right.
	loaded    bool
	installed map[netip.Prefix]Hop
	wanted    map[netip.Prefix]Hop
	// refused are the wanted prefixes not routed, with the reason (each
	// logged once).
	refused map[netip.Prefix]string
}

// New returns a table; nothing is read from the kernel before the first
// sync.
func New(o Options) *Table {
	t := &Table{k: o.kernel, log: o.Log, containerNets: o.ContainerNets, state: map[Protocol]*protoState{}}
	if t.k == nil {
		t.k = netlinkKernel{}
	}
	if t.log == nil {
		t.log = logrus.StandardLogger()
	}
	for _, p := range protocols {
		t.state[p] = &protoState{installed: map[netip.Prefix]Hop{}, wanted: map[netip.Prefix]Hop{}, refused: map[netip.Prefix]string{}}
	}
	return t
}

// Sync makes proto's routes want: the prefixes that differ from the last
// wanted set, and those refused before, are tried; nothing else touches
// the kernel. A refused prefix is logged, not returned: the error is
// what failed in the kernel.
func (t *Table) Sync(proto Protocol, want map[netip.Prefix]Hop) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	st, err := t.stateOf(proto)
	if err != nil {
		return err
	}
	wanted := make(map[netip.Prefix]Hop, len(want))
	for p, h := range want {
		wanted[p.Masked()] = h
	}
	var changed []netip.Prefix
	for p, h := range st.installed {
		if w, ok := wanted[p]; !ok || !h.same(w) {
			changed = append(changed, p)
		}
	}
	for p := range wanted {
		_, has := st.installed[p]
		_, refused := st.refused[p]
		if !has || refused {
			changed = append(changed, p)
		}
	}
	for p := range st.refused {
		if _, ok := wanted[p]; !ok {
			delete(st.refused, p)
		}
	}
	st.wanted = wanted
	return t.apply(proto, st, changed)
}

// Update changes proto's wanted routes by set (routed, or routed
// elsewhere) and withdrawn: only those prefixes are looked at.
func (t *Table) Update(proto Protocol, set map[netip.Prefix]Hop, withdrawn []netip.Prefix) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	reload := !t.state[proto].loaded
	st, err := t.stateOf(proto)
	if err != nil {
		return err
	}
	changed := make([]netip.Prefix, 0, len(set)+len(withdrawn))
	if reload {
		// The kernel was read again (first use, or after an error):
		// every route of the protocol is looked at, not only these.
		for p := range st.installed {
			changed = append(changed, p)
		}
		for p := range st.wanted {
			changed = append(changed, p)
		}
	}
	for _, p := range withdrawn {
		p = p.Masked()
		delete(st.wanted, p)
		delete(st.refused, p)
		changed = append(changed, p)
	}
	for p, h := range set {
		p = p.Masked()
		st.wanted[p] = h
		changed = append(changed, p)
	}
	return t.apply(proto, st, changed)
}

// Installed returns proto's routes the table installed.
func (t *Table) Installed(proto Protocol) map[netip.Prefix]Hop {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.state[proto].installed)
}

// Refused returns proto's wanted prefixes that are not routed, with why.
func (t *Table) Refused(proto Protocol) map[netip.Prefix]string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.state[proto].refused)
}

// stateOf returns proto's state, its installed routes read from the
// kernel when they are not known (first sync, or after an error): every
// wanted prefix is tried again then.
func (t *Table) stateOf(proto Protocol) (*protoState, error) {
	st := t.state[proto]
	if st == nil {
		return nil, fmt.Errorf("routes: protocol %d is not dualstack's", uint8(proto))
	}
	if st.loaded {
		return st, nil
	}
	list, err := t.k.list(proto)
	if err != nil {
		return nil, fmt.Errorf("list the host's %s routes (protocol %d) in the main table: %w", proto, uint8(proto), err)
	}
	st.installed = map[netip.Prefix]Hop{}
	for _, r := range list {
		if _, dup := st.installed[r.Prefix]; dup || !r.Via.IsValid() {
			// A second route of ours to one prefix, or one without a
			// next hop: not one this table makes; it goes at the
			// next change of that prefix.
			st.installed[r.Prefix] = Hop{}
			continue
		}
		st.installed[r.Prefix] = Hop{Via: r.Via, Dev: r.dev}
	}
	st.loaded = true
	return st, nil
}

// apply makes the kernel's routes of proto to the prefixes changed those
// st.wanted asks for.
func (t *Table) apply(proto Protocol, st *protoState, changed []netip.Prefix) error {
	var errs []error
	var env *hostView
	for _, p := range changed {
		want, wanted := st.wanted[p]
		have, has := st.installed[p]
		if has && (!wanted || !have.same(want)) {
			if err := t.k.del(proto, p, have.Via); err != nil {
				st.loaded = false
				errs = append(errs, fmt.Errorf("remove the %s route to %s via %s: %w", proto, p, have.Via, err))
				continue
			}
			delete(st.installed, p)
			t.entry(p, have).WithField("protocol", proto.String()).Info("route removed")
		}
		if !wanted || (has && have.same(want)) {
			continue
		}
		if env == nil {
			var err error
			if env, err = t.view(); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		if why := t.check(proto, p, want, env); why != "" {
			t.refuse(proto, st, p, want, why)
			continue
		}
		if err := t.k.add(proto, p, want, env.dev(want.Dev)); err != nil {
			if why := refusal(err); why != "" {
				t.refuse(proto, st, p, want, why)
				continue
			}
			st.loaded = false
			errs = append(errs, fmt.Errorf("route %s via %s (%s): %w", p, want.Via, proto, err))
			continue
		}
		st.installed[p] = want
		delete(st.refused, p)
		t.entry(p, want).WithField("protocol", proto.String()).Info("route added")
	}
	return errors.Join(errs...)
}

// refuse records that p is not routed, and logs it once per reason.
func (t *Table) refuse(proto Protocol, st *protoState, p netip.Prefix, h Hop, why string) {
	if st.refused[p] == why {
		return
	}
	st.refused[p] = why
	t.entry(p, h).WithField("protocol", proto.String()).WithField("reason", why).Warn("route refused: conflict, the host's table left as it is")
}

func (t *Table) entry(p netip.Prefix, h Hop) *logrus.Entry {
	return t.log.WithFields(logrus.Fields{"network": h.Network, "prefix": p, "via": h.Via})
}
