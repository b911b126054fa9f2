// Package delegation is a DHCPv6 prefix delegation client (RFC 8415): one
// client per host uplink, shared by every holder (network) that names the
// uplink.
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
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/state"
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

// Config configures the clients.
type Config struct {
	DB  state.Store // bucket "delegation", key = uplink: DUID, IAID, the lease
	Log logrus.FieldLogger
	// OnChange is called (from the client's goroutine, no lock of the
	// package held) whenever Current, Stale, lifetimes, State or Error
	// change.
	OnChange func(Lease)
	Timing   Timing // zero value = RFC 8415's; tests shorten
}

// ErrNotHeld is wrapped by Drop's error for an uplink the holder does not
// hold.
var ErrNotHeld = errors.New("not held")

// Clients runs one client per uplink that has holders.
type Clients struct {
	cfg Config

	mu      sync.Mutex
	running map[string]*client // by uplink
	leaving map[string]*client // by uplink: releasing after the last Drop
	closed  bool
}

// New returns the registry of clients; none runs until Hold.
func New(cfg Config) *Clients {
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(Lease) {}
	}
	cfg.Timing = cfg.Timing.withDefaults()
	return &Clients{cfg: cfg, running: map[string]*client{}, leaving: map[string]*client{}}
}

// Hold adds holder to uplink's holders, starting uplink's client (in the
// calling thread's network namespace) if it is not running, and returns
// what the client holds now: a lease restored from DB and still valid is
// held at once.
func (c *Clients) Hold(uplink, holder string) (Lease, error) {
	if uplink == "" || holder == "" {
		return Lease{}, fmt.Errorf("hold a delegated prefix: uplink (%q) and holder (%q) must both be named", uplink, holder)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closed {
			return Lease{}, fmt.Errorf("hold the delegated prefix of uplink %s: the clients are closed (the plugin is stopping)", uplink)
		}
		if cl := c.running[uplink]; cl != nil {
			cl.holders[holder] = true
			return cl.snapshot(), nil
		}
		old := c.leaving[uplink]
		if old == nil {
			break
		}
		c.mu.Unlock() // let the old client finish its Release first
		<-old.done
		c.mu.Lock()
		if c.leaving[uplink] == old {
			delete(c.leaving, uplink)
		}
	}
	cl, err := newClient(&c.cfg, uplink)
	if err != nil {
		return Lease{}, err
	}
	cl.holders[holder] = true
	c.running[uplink] = cl
	netns.Go(cl.run)
	return cl.snapshot(), nil
}

// Drop removes holder from uplink's holders. The last holder's Drop stops
// the client, which sends a Release for the prefix it holds and forgets
// the record (in the background: Drop does not wait for the server).
func (c *Clients) Drop(uplink, holder string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.running[uplink]
	if cl == nil || !cl.holders[holder] {
		return fmt.Errorf("drop the delegated prefix of uplink %s for %s: %w (nothing to do)", uplink, holder, ErrNotHeld)
	}
	delete(cl.holders, holder)
	if len(cl.holders) > 0 {
		return nil
	}
	delete(c.running, uplink)
	c.leaving[uplink] = cl
	close(cl.release)
	return nil
}

// Lease returns what uplink's client holds, and whether one runs.
func (c *Clients) Lease(uplink string) (Lease, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.running[uplink]
	if cl == nil {
		return Lease{}, false
	}
	return cl.snapshot(), true
}

// Leases returns what every running client holds, by uplink.
func (c *Clients) Leases() []Lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Lease, 0, len(c.running))
	for _, cl := range c.running {
		out = append(out, cl.snapshot())
	}
	slices.SortFunc(out, func(a, b Lease) int {
		switch {
		case a.Uplink < b.Uplink:
			return -1
		case a.Uplink > b.Uplink:
			return 1
		}
		return 0
	})
	return out
}

// Close stops all clients WITHOUT Release (a restarted plugin takes the
// lease up again) and waits for them.
func (c *Clients) Close() {
	c.mu.Lock()
	c.closed = true
	var all []*client
	for _, m := range []map[string]*client{c.running, c.leaving} {
		for u, cl := range m {
			all = append(all, cl)
			delete(m, u)
		}
	}
	c.mu.Unlock()
	for _, cl := range all {
		close(cl.stop)
	}
	for _, cl := range all {
		<-cl.done
	}
}
