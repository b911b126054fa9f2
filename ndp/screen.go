package ndp

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// Screen tells the address book, for one link, whether an address it is
// about to hand out is held by another node of the link, without making
// `docker run` wait for the answer: it probes the addresses the sequential
// allocator reaches next ahead of time, Ahead at a time, in the
// background, and reads the link's neighbour cache with each probe. Only
// an address it has no fresh answer for (the allocator outran it, or it
// went stale) is probed while the caller waits.
type Screen struct {
	Link string
	// Ahead is how many addresses a probe covers; Wait how long it waits
	// for answers; Fresh how long an answer holds.
	Ahead int
	Wait  time.Duration
	Fresh time.Duration
	// Found is called, in a goroutine of its own, with each address found
	// held on the link and the MAC address holding it.
	Found func(addr netip.Addr, mac net.HardwareAddr)
	Log   logrus.FieldLogger

	// probe and neighbours are Probe and Neighbours; tests replace them.
	probe      func(link string, targets []netip.Addr, wait time.Duration) (map[netip.Addr]net.HardwareAddr, error)
	neighbours func(link string) ([]Neighbour, error)

	mu      sync.Mutex
	answers map[netip.Addr]answer
	busy    bool // a probe ahead is under way
}

// answer is what a probe learned of one address.
type answer struct {
	at  time.Time
	mac net.HardwareAddr // nil: nobody answered
}

// Defaults of a Screen.
const (
	DefaultAhead = 64
	DefaultWait  = 500 * time.Millisecond
	DefaultFresh = 10 * time.Minute
)

// NewScreen returns a screen for link with the defaults.
func NewScreen(link string, log logrus.FieldLogger, found func(netip.Addr, net.HardwareAddr)) *Screen {
	return &Screen{Link: link, Ahead: DefaultAhead, Wait: DefaultWait, Fresh: DefaultFresh, Found: found, Log: log,
		probe: Probe, neighbours: Neighbours, answers: map[netip.Addr]answer{}}
}

// Taken reports whether another node of the link holds a, probing a and
// the addresses after it first if it never asked about a; and it has the
// addresses from a on probed in the background where its answers are
// missing or older than Fresh, so that the next ones are answered from
// what it knows. An answer older than Fresh still answers meanwhile.
func (s *Screen) Taken(a netip.Addr) bool {
	ans, ok := s.answer(a)
	if !ok {
		s.run(span(a, s.Ahead))
		ans, _ = s.answer(a)
	}
	s.ahead(a)
	return ans.mac != nil
}

// answer returns the answer for a, however old, if there is one.
func (s *Screen) answer(a netip.Addr) (answer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ans, ok := s.answers[a]
	return ans, ok
}

// Warm probes the Ahead addresses from first on, waiting for the answers:
// at a network's creation, so that its first containers wait for none.
func (s *Screen) Warm(first netip.Addr) {
	var todo []netip.Addr
	for _, a := range span(first, s.Ahead) {
		if _, ok := s.known(a); !ok {
			todo = append(todo, a)
		}
	}
	if len(todo) > 0 {
		s.run(todo)
	}
}

// known returns the fresh answer for a, if there is one.
func (s *Screen) known(a netip.Addr) (answer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ans, ok := s.answers[a]
	return ans, ok && time.Since(ans.at) < s.Fresh
}

// ahead probes, in the background, the addresses from first on that it
// has no fresh answer for, unless a probe ahead is under way.
func (s *Screen) ahead(first netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.busy {
		return
	}
	var todo []netip.Addr
	now := time.Now()
	for _, a := range span(first, s.Ahead) {
		if ans, ok := s.answers[a]; !ok || now.Sub(ans.at) >= s.Fresh {
			todo = append(todo, a)
		}
	}
	// Probe when half the window is unknown: in batches, not one by one.
	if len(todo) < s.Ahead/2 {
		return
	}
	s.busy = true
	netns.Go(func() {
		s.run(todo)
		s.mu.Lock()
		s.busy = false
		s.mu.Unlock()
	})
}

// run probes targets and reads the neighbour cache, and records what it
// learned. A probe that fails is logged and records nothing: the
// addresses count as free (an address cannot be refused for want of an
// answer), and are probed again next time.
func (s *Screen) run(targets []netip.Addr) {
	held, err := s.probe(s.Link, targets, s.Wait)
	if err != nil {
		s.Log.WithField("interface", s.Link).WithError(err).Warn("probe the link for addresses in use (they are handed out unchecked)")
		return
	}
	neigh, err := s.neighbours(s.Link)
	if err != nil {
		s.Log.WithField("interface", s.Link).WithError(err).Warn("read the neighbour cache")
	}
	now := time.Now()
	var found []Neighbour
	s.mu.Lock()
	note := func(a netip.Addr, mac net.HardwareAddr) {
		if old := s.answers[a]; mac != nil && old.mac == nil {
			found = append(found, Neighbour{a, mac})
		}
		s.answers[a] = answer{at: now, mac: mac}
	}
	for _, t := range targets {
		note(t, held[t])
	}
	for _, n := range neigh {
		if _, probed := held[n.Addr]; !probed && !n.Addr.IsLinkLocalUnicast() {
			note(n.Addr, n.MAC)
		}
	}
	s.mu.Unlock()
	for _, n := range found {
		if s.Found != nil {
			netns.Go(func() { s.Found(n.Addr, n.MAC) })
		}
	}
}

// span is n addresses from first on.
func span(first netip.Addr, n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for a := first; a.IsValid() && len(out) < n; a = a.Next() {
		out = append(out, a)
	}
	return out
}

// Held lists the addresses of prefix the screen found held, with their
// holders' MAC addresses.
func (s *Screen) Held(prefix netip.Prefix) []Neighbour {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Neighbour
	for a, ans := range s.answers {
		if ans.mac != nil && prefix.Contains(a) {
			out = append(out, Neighbour{a, ans.mac})
		}
	}
	return out
}

// Interface is the link the screen looks at.
func (s *Screen) Interface() string { return s.Link }

// Screens holds one Screen per link, shared by the IPAM driver (which
// screens the pools it carves) and the network driver (which screens the
// pools of its ndp_proxy networks, and routes back what they find).
type Screens struct {
	log logrus.FieldLogger
	mu  sync.Mutex
	// found is told of each address found held on a link.
	found func(link string, addr netip.Addr, mac net.HardwareAddr)
	m     map[string]*Screen
}

// NewScreens returns an empty set of screens.
func NewScreens(log logrus.FieldLogger) *Screens {
	return &Screens{log: log, m: map[string]*Screen{}}
}

// OnFound has found told of each address any screen finds held.
func (ss *Screens) OnFound(found func(link string, addr netip.Addr, mac net.HardwareAddr)) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.found = found
}

// For returns link's screen, made on first use.
func (ss *Screens) For(link string) *Screen {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s, ok := ss.m[link]; ok {
		return s
	}
	s := NewScreen(link, ss.log, func(a netip.Addr, mac net.HardwareAddr) {
		ss.mu.Lock()
		found := ss.found
		ss.mu.Unlock()
		if found != nil {
			found(link, a, mac)
		}
	})
	ss.m[link] = s
	return s
}
