package delegation

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/state"
)

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
