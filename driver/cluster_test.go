package driver

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver/netns"
	"github.com/dualstack-net/dualstack/driver/netns/netnstest"
)

// TestClusterRouteSync: the routes to other hosts' blocks (host-gw) are
// exactly those asked for, marked as dualstack's, in both families; the
// host's other routes stay; a next hop the host cannot reach is an error
// that says why.
func TestClusterRouteSync(t *testing.T) {
	host := netnstest.New(t)
	host.IP(t, "link", "add", "fabric", "type", "bridge")
	host.IP(t, "link", "set", "fabric", "up")
	host.IP(t, "addr", "add", "198.51.100.1/24", "dev", "fabric")
	host.IP(t, "addr", "add", "fd00:f::1/64", "dev", "fabric", "nodad")
	host.IP(t, "route", "add", "203.0.113.0/24", "via", "198.51.100.9", "proto", "static")
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	sync := func(want map[netip.Prefix]netip.Addr) error {
		return netns.Do(host.Path, func() error { return syncRoutes(routeProtocol, want, log, hostGWHint) })
	}
	routes := func() string {
		v4 := strings.TrimSpace(string(host.IP(t, "-4", "route", "show", "proto", "213")))
		v6 := strings.TrimSpace(string(host.IP(t, "-6", "route", "show", "proto", "213")))
		return strings.Join(strings.Fields(v4+" | "+v6), " ")
	}
	a4, a6 := netip.MustParsePrefix("198.18.0.64/26"), netip.MustParsePrefix("fd00:c1::1:0:0:0/80")
	if err := sync(map[netip.Prefix]netip.Addr{a4: netip.MustParseAddr("198.51.100.2"), a6: netip.MustParseAddr("fd00:f::2")}); err != nil {
		t.Fatal(err)
	}
	want := "198.18.0.64/26 via 198.51.100.2 dev fabric | fd00:c1:0:0:1::/80 via fd00:f::2 dev fabric metric 1024 pref medium"
	if got := routes(); got != want {
		t.Fatalf("routes to blocks:\n got %s\nwant %s", got, want)
	}
	// The same again changes nothing; a block that moved to another host
	// follows it; one that is gone goes.
	if err := sync(map[netip.Prefix]netip.Addr{a4: netip.MustParseAddr("198.51.100.3")}); err != nil {
		t.Fatal(err)
	}
	if got, want := routes(), "198.18.0.64/26 via 198.51.100.3 dev fabric |"; got != want {
		t.Fatalf("after the change:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(string(host.IP(t, "route", "show", "203.0.113.0/24")), "via 198.51.100.9") {
		t.Fatal("a route that is not dualstack's went")
	}
	err := sync(map[netip.Prefix]netip.Addr{a4: netip.MustParseAddr("10.99.0.1")})
	if err == nil || !strings.Contains(err.Error(), "10.99.0.1") || !strings.Contains(err.Error(), "one LAN") {
		t.Fatalf("a next hop off the host's networks: %v, want an error naming it and what host-gw needs", err)
	}
	if err := sync(nil); err != nil || routes() != "|" {
		t.Fatalf("no block left: routes %q, %v", routes(), err)
	}
}

// TestHostBlocks: the default block lengths, and the options'.
func TestHostBlocks(t *testing.T) {
	for _, tc := range []struct {
		mode       string
		v4, v6     string
		opt4, opt6 int
		want4      int
		want6      int
	}{
		{ModeBridge, "198.18.0.0/16", "fd00:1::/48", 0, 0, 26, 64},
		{ModeBridge, "198.18.0.0/24", "fd00:1::/64", 0, 0, 26, 80},
		{ModeBridge, "198.18.0.0/28", "fd00:1::/120", 0, 0, 28, 124},
		{ModeMacvlan, "198.18.0.0/24", "fd00:1::/64", 0, 0, 28, 120},
		{ModeBridge, "198.18.0.0/16", "fd00:1::/48", 24, 56, 24, 56},
	} {
		n := &network{Options: netOptions{Mode: tc.mode, HostBlock4: tc.opt4, HostBlock6: tc.opt6},
			V4: []pool{{Prefix: netip.MustParsePrefix(tc.v4)}}, V6: []pool{{Prefix: netip.MustParsePrefix(tc.v6)}}}
		if v4, v6 := hostBlocks(n); v4 != tc.want4 || v6 != tc.want6 {
			t.Errorf("%s %s %s (options %d, %d): blocks /%d and /%d, want /%d and /%d", tc.mode, tc.v4, tc.v6, tc.opt4, tc.opt6, v4, v6, tc.want4, tc.want6)
		}
	}
}
