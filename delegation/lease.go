// Package delegation is the DHCPv6 prefix-delegation client (RFC 8415) of
// the host's uplinks: one client per uplink, shared by every holder
// (network) that names the uplink.
//
// A client solicits a prefix (IA_PD), requests it from the first server
// that advertises one, renews it at T1 with that server, rebinds at T2 with
// any server and loses it when its valid lifetime ends. A prefix that the
// server replaces (or withdraws) moves to Stale, deprecated at once and
// valid as long as last granted. The DUID, the IAID and the lease are kept
// in the state file (bucket "delegation", key = uplink) at every change, so
// that a restarted plugin takes up its lease again: a prefix still valid is
// held at once and renewed at once.
package delegation

import (
	"net/netip"
	"slices"
	"time"
)

// Prefix is a delegated prefix with the ends of its lifetimes.
type Prefix struct {
	Prefix    netip.Prefix `json:"prefix"`
	Preferred time.Time    `json:"preferred"` // end of the preferred lifetime
	Valid     time.Time    `json:"valid"`     // end of the valid lifetime
}

// States of a client, as Lease.State shows them.
const (
	StateSoliciting = "soliciting"
	StateRequesting = "requesting"
	StateBound      = "bound"
	StateRenewing   = "renewing"
	StateRebinding  = "rebinding"
	StateReleasing  = "releasing"
)

// Lease is what an uplink's client holds.
type Lease struct {
	Uplink  string    `json:"uplink"`
	State   string    `json:"state"`             // soliciting, requesting, bound, renewing, rebinding, releasing
	Current *Prefix   `json:"current,omitempty"` // delegated now; nil when none is held
	Stale   []Prefix  `json:"stale,omitempty"`   // delegated before, no longer renewed, valid until their Valid
	Renew   time.Time `json:"renew,omitempty"`   // T1: next Renew
	Rebind  time.Time `json:"rebind,omitempty"`  // T2
	Server  string    `json:"server,omitempty"`  // server DUID, hex
	DUID    string    `json:"duid"`              // ours, hex
	IAID    uint32    `json:"iaid"`
	Error   string    `json:"error,omitempty"` // the last problem, e.g. "no server answered 4 Solicits since 12:00:01"
}

// clone returns a copy of l that shares no memory with it.
func (l Lease) clone() Lease {
	if l.Current != nil {
		c := *l.Current
		l.Current = &c
	}
	l.Stale = slices.Clone(l.Stale)
	return l
}

// pick returns the prefix of g to hold: the one held now if g renews it,
// else the first.
func (g grant) pick(current *Prefix) granted {
	if current != nil {
		for _, p := range g.prefixes {
			if p.prefix == current.Prefix {
				return p
			}
		}
	}
	return g.prefixes[0]
}

// applyGrant returns l after a Reply at now that granted g (usable): the
// prefix picked becomes Current with its lifetimes and timers; a Current
// that g does not renew moves to Stale (see demote). old is that prefix,
// nil when the prefix did not change.
func applyGrant(l Lease, g grant, now time.Time, minRenew time.Duration) (next Lease, old *Prefix) {
	next = l.clone()
	p := g.pick(l.Current)
	if l.Current != nil && l.Current.Prefix != p.prefix {
		o := *l.Current
		old = &o
		next = demote(next, now)
	}
	next.Current = &Prefix{Prefix: p.prefix, Preferred: now.Add(p.preferred), Valid: now.Add(p.valid)}
	next.Stale = slices.DeleteFunc(next.Stale, func(s Prefix) bool { return s.Prefix == p.prefix })
	next.Renew, next.Rebind = timers(now, g.t1, g.t2, p.preferred, p.valid, minRenew)
	next.Server = g.server
	next.Error = ""
	return next, old
}

// demote returns l with its Current moved to Stale at now: deprecated
// (Preferred = now, unless it ended before) and valid as long as last
// granted. A Current no longer valid is dropped.
func demote(l Lease, now time.Time) Lease {
	l = l.clone()
	if c := l.Current; c != nil && now.Before(c.Valid) {
		s := *c
		if now.Before(s.Preferred) {
			s.Preferred = now
		}
		l.Stale = slices.DeleteFunc(l.Stale, func(o Prefix) bool { return o.Prefix == s.Prefix })
		l.Stale = append(l.Stale, s)
	}
	l.Current = nil
	l.Renew, l.Rebind, l.Server = time.Time{}, time.Time{}, ""
	return l
}

// expireStale returns l without the Stale prefixes whose Valid passed at
// now.
func expireStale(l Lease, now time.Time) Lease {
	l = l.clone()
	l.Stale = slices.DeleteFunc(l.Stale, func(s Prefix) bool { return !now.Before(s.Valid) })
	if len(l.Stale) == 0 {
		l.Stale = nil
	}
	return l
}

// nextExpiry returns the earliest Valid of l's Stale prefixes, zero if
// there is none.
func nextExpiry(l Lease) time.Time {
	var t time.Time
	for _, s := range l.Stale {
		if t.IsZero() || s.Valid.Before(t) {
			t = s.Valid
		}
	}
	return t
}
