package driver

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"
)

// fakeAnnouncer records what the driver announces.
type fakeAnnouncer struct {
	mu    sync.Mutex
	calls [][]netip.Prefix
}

func (f *fakeAnnouncer) Announce(p []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, slices.Clone(p))
	return nil
}

func (f *fakeAnnouncer) last() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return nil
	}
	var out []string
	for _, p := range f.calls[len(f.calls)-1] {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return out
}

// TestAnnounce: a network with announce=true has its subnets announced
// while it exists; without BGP on the host it is refused, saying why,
// and nothing is made.
func TestAnnounce(t *testing.T) {
	h := newHarness(t)
	opts := map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"announce": "true"}}

	// No BGP: refused, with the settings to set or what is wrong.
	req := h.network("aaaaaaaaaaaa7777", opts, "198.18.7.0/24", "fd00:7::/64")
	err := h.d.CreateNetwork(req)
	if err == nil || !strings.Contains(err.Error(), "announce=true: BGP does not run on this host: set BGP_ASN and BGP_PEERS") {
		t.Fatalf("announce=true without BGP: %v", err)
	}
	h.d.cfg.BGPOff = errors.New("BGP is off: BGP_PEERS=\"x\": want ADDRESS:ASN")
	if err := h.d.CreateNetwork(req); err == nil || !strings.Contains(err.Error(), `BGP_PEERS="x"`) {
		t.Fatalf("announce=true with bad BGP settings: %v, want the settings' problem", err)
	}
	if links := h.host.IP(t, "-o", "link", "show", "type", "bridge"); len(links) > 0 {
		t.Fatalf("a refused network left a bridge: %s", links)
	}

	f := &fakeAnnouncer{}
	h.d.cfg.BGP, h.d.cfg.BGPOff = f, nil
	h.in(func() error { return h.d.CreateNetwork(req) })
	plain := h.network("bbbbbbbbbbbb7777", map[string]interface{}{optEnableIPv6: true}, "198.18.8.0/24", "fd00:8::/64")
	h.in(func() error { return h.d.CreateNetwork(plain) })
	h.d.SyncBGP()
	if got, want := f.last(), []string{"198.18.7.0/24", "fd00:7::/64"}; !slices.Equal(got, want) {
		t.Fatalf("announced %v, want %v (the announce=true network's subnets only)", got, want)
	}
	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: req.NetworkID}) })
	h.d.SyncBGP()
	if got := f.last(); len(got) != 0 {
		t.Fatalf("announced %v after the network went, want nothing", got)
	}
}
