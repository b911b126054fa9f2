package driver

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/bgp"
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
	h.d.announcer = bgp.NewAnnouncer(f)
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

// TestLearnedRoutes: of the routes BGP learned, only those into a subnet
// of a network with cluster_routes=bgp are installed (protocol 214, via
// the router); a default route or another subnet a router sends is not,
// and what is no longer learned goes. A prefix the administrator routes
// and a next hop off the host's networks are refused: the host's whole
// table stays as it was, and withdrawing leaves the administrator's route.
func TestLearnedRoutes(t *testing.T) {
	h := newHarness(t)
	h.lanBridge("uplink")
	h.host.IP(t, "addr", "add", "198.51.100.18/28", "dev", "uplink")
	h.host.IP(t, "addr", "add", "fd00:fab:1::2/64", "dev", "uplink", "nodad")
	h.host.IP(t, "route", "add", "203.0.113.0/24", "via", "198.51.100.17", "proto", "static")
	h.host.IP(t, "route", "add", "198.19.1.0/24", "via", "198.51.100.17", "proto", "static")
	// A network of the host's in cluster bgp-net, as CreateNetwork leaves
	// it (its blocks are the IPAM's; it has none here).
	h.d.mu.Lock()
	h.d.networks["cccccccccccc8888"] = &network{ID: "cccccccccccc8888", Options: netOptions{Mode: ModeBridge, Cluster: "bgp-net", ClusterRoutes: clusterRoutesBGP},
		V4: []pool{{Prefix: netip.MustParsePrefix("198.19.0.0/16")}}, V6: []pool{{Prefix: netip.MustParsePrefix("fd00:b1::/48")}}}
	h.d.publishRoutes()
	h.d.mu.Unlock()
	table := func() string {
		return string(h.host.IP(t, "-4", "route", "show", "table", "all")) + string(h.host.IP(t, "-6", "route", "show", "table", "all"))
	}
	before := table()
	r4, r6 := netip.MustParseAddr("198.51.100.17"), netip.MustParseAddr("fd00:fab:1::1")
	hostile := map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("0.0.0.0/0"):      r4, // not the router's to give
		netip.MustParsePrefix("203.0.113.0/24"): r4,
		netip.MustParsePrefix("198.18.0.0/26"):  r4,
		netip.MustParsePrefix("198.19.1.0/24"):  netip.MustParseAddr("198.51.100.19"), // the admin's
		netip.MustParsePrefix("198.19.2.0/26"):  netip.MustParseAddr("198.51.100.99"), // off-link
		netip.MustParsePrefix("198.19.3.0/26"):  netip.MustParseAddr("198.51.100.18"), // the host
	}
	h.in(func() error { return h.d.routes.Learned(hostile, nil) })
	if after := table(); after != before {
		t.Fatalf("hostile learned routes changed the table:\n%s\nwant\n%s", after, before)
	}
	routes := func() string {
		v4 := strings.TrimSpace(string(h.host.IP(t, "-4", "route", "show", "proto", "214")))
		v6 := strings.TrimSpace(string(h.host.IP(t, "-6", "route", "show", "proto", "214")))
		return strings.Join(strings.Fields(v4+" | "+v6), " ")
	}
	learned := map[netip.Prefix]netip.Addr{
		netip.MustParsePrefix("198.19.0.64/26"):   r4, // another host's blocks
		netip.MustParsePrefix("fd00:b1:0:2::/64"): r6,
	}
	h.in(func() error { return h.d.routes.Learned(learned, nil) })
	if got, want := routes(), "198.19.0.64/26 via 198.51.100.17 dev uplink | fd00:b1:0:2::/64 via fd00:fab:1::1 dev uplink metric 1024 pref medium"; got != want {
		t.Fatalf("learned routes installed:\n got %s\nwant %s", got, want)
	}
	h.in(func() error { return h.d.routes.Learned(nil, []netip.Prefix{netip.MustParsePrefix("198.19.0.64/26")}) })
	if got, want := routes(), "| fd00:b1:0:2::/64 via fd00:fab:1::1 dev uplink metric 1024 pref medium"; got != want {
		t.Fatalf("after a withdrawal:\n got %s\nwant %s", got, want)
	}
	var all []netip.Prefix
	for p := range hostile {
		all = append(all, p)
	}
	h.in(func() error { return h.d.routes.Learned(nil, append(all, netip.MustParsePrefix("fd00:b1:0:2::/64"))) })
	if after := table(); after != before {
		t.Fatalf("nothing learned, yet the table changed:\n%s\nwant\n%s", after, before)
	}
}
