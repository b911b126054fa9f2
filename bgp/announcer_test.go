package bgp

import (
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// recorder records what it is told to announce.
type recorder struct {
	mu    sync.Mutex
	calls [][]netip.Prefix
}

func (r *recorder) Announce(p []netip.Prefix) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, p)
	return nil
}

// TestAnnouncerLatest: every Flush announces the latest prefixes wanted,
// so a Flush late for an older Want never brings the older set back; a
// change to the slice handed to Want changes nothing.
func TestAnnouncerLatest(t *testing.T) {
	r := &recorder{}
	a := NewAnnouncer(r)
	older := []netip.Prefix{netip.MustParsePrefix("198.18.0.0/26")}
	newer := []netip.Prefix{netip.MustParsePrefix("198.18.0.64/26")}
	a.Want(older)
	a.Want(newer)
	older[0] = netip.MustParsePrefix("203.0.113.0/24")
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil { // the first Want's, late
		t.Fatal(err)
	}
	if len(r.calls) != 2 || !slices.Equal(r.calls[0], newer) || !slices.Equal(r.calls[1], newer) {
		t.Fatalf("announced %v, want %v twice", r.calls, newer)
	}
}
