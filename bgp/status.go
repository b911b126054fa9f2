package bgp

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Status is what the speaker reports of itself: it goes into the host's
// record in the cluster store, for `dualstack cluster status`.
type Status struct {
	ASN      uint32 `json:"asn,omitempty"`
	RouterID string `json:"router_id,omitempty"`
	// Error is why BGP does not run on the host (bad settings).
	Error     string         `json:"error,omitempty"`
	Peers     []PeerStatus   `json:"peers,omitempty"`
	Announced []netip.Prefix `json:"announced,omitempty"`
	Learned   int            `json:"learned,omitempty"`
}

// PeerStatus is one session.
type PeerStatus struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	// State is connecting, active, opening, established or idle.
	State string    `json:"state"`
	Since time.Time `json:"since,omitzero"`
	// Error says why the session is not up, when that is known.
	Error string `json:"error,omitempty"`
}

// Status returns the speaker's status.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID.String(), Learned: len(s.learned)}
	for _, p := range s.cfg.Peers {
		st.Peers = append(st.Peers, *s.peers[p.Address])
	}
	st.Announced = slices.SortedFunc(maps.Keys(s.announced), func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return st
}

// statusChanged tells the OnStatus function, from its own goroutine, that
// the status changed; the caller holds s.mu.
func (s *Speaker) statusChanged() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// reportStatus calls the OnStatus function after each change, until the
// speaker stops.
func (s *Speaker) reportStatus() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.changed:
		}
		s.mu.Lock()
		fn := s.onStatus
		s.mu.Unlock()
		if fn != nil {
			fn(s.Status())
		}
	}
}

// String is the status on one line.
func (st Status) String() string {
	if st.Error != "" {
		return "not running: " + st.Error
	}
	var b strings.Builder
	fmt.Fprintf(&b, "AS %d, router ID %s", st.ASN, st.RouterID)
	for _, p := range st.Peers {
		fmt.Fprintf(&b, "; peer %s AS %d %s", p.Address, p.ASN, p.State)
		if p.Error != "" {
			fmt.Fprintf(&b, " (%s)", p.Error)
		}
	}
	fmt.Fprintf(&b, "; %d prefixes announced, %d learned", len(st.Announced), st.Learned)
	return b.String()
}
