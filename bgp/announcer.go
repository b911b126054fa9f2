package bgp

import (
	"net/netip"
	"slices"
	"sync"
)

// Target announces prefixes (a *Speaker, or a fake in tests).
type Target interface {
	// Announce makes the announced prefixes exactly these.
	Announce([]netip.Prefix) error
}

// Announcer keeps what the host announces: the network driver hands it
// the prefixes it wants announced as its networks and blocks change
// (Want), in order, and has them announced (Flush) once it let go of its
// own lock. Every Flush announces the latest prefixes wanted, so
// announcements never go back to an older set whatever order the Flushes
// run in.
//
// Locks: mu is held while the target announces, and want.mu is a leaf,
// held only to copy the prefixes in or out: the driver calls Want with
// its own lock held.
type Announcer struct {
	to Target
	mu sync.Mutex // held while announcing
	// want are the prefixes wanted last.
	want struct {
		mu       sync.Mutex // a leaf
		prefixes []netip.Prefix
	}
}

// NewAnnouncer returns an Announcer that announces through to.
func NewAnnouncer(to Target) *Announcer { return &Announcer{to: to} }

// Want records prefixes as what the host announces from now on; Flush
// announces them.
func (a *Announcer) Want(prefixes []netip.Prefix) {
	prefixes = slices.Clone(prefixes)
	a.want.mu.Lock()
	a.want.prefixes = prefixes
	a.want.mu.Unlock()
}

// Flush makes the announced prefixes the latest wanted.
func (a *Announcer) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.want.mu.Lock()
	want := a.want.prefixes
	a.want.mu.Unlock()
	return a.to.Announce(want)
}
