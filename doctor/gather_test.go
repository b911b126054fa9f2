package doctor

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// TestGatherReadsTheKernel: in a namespace of its own, the facts Gather
// reads show a route into a network's subnet and an interface that would
// lose its advertised default route, as the checks report them.
func TestGatherReadsTheKernel(t *testing.T) {
	ns := netnstest.New(t)
	ns.IP(t, "link", "add", "dstdoc0", "type", "veth", "peer", "name", "dstdoc1")
	ns.IP(t, "link", "set", "dstdoc0", "up")
	ns.IP(t, "link", "set", "dstdoc1", "up")
	ns.IP(t, "addr", "add", "198.18.0.1/24", "dev", "dstdoc0")
	ns.IP(t, "route", "add", "203.0.113.0/25", "dev", "dstdoc0", "proto", "static")
	ns.IP(t, "-6", "route", "add", "default", "via", "fe80::1", "dev", "dstdoc0", "proto", "ra")
	ns.SetSysctl(t, "net/ipv6/conf/dstdoc0/forwarding", "1")
	ns.SetSysctl(t, "net/ipv6/conf/dstdoc0/accept_ra", "1")
	var h Host
	if err := netns.Do(ns.Path, func() error { h = Gather(context.Background(), Sources{}); return nil }); err != nil {
		t.Fatal(err)
	}
	h.Networks = []Network{{ID: netID, Link: "ds-1a2b3c4d5e6f", Subnets: []netip.Prefix{pfx("203.0.113.0/24")}, Forward4: true}}
	r := Run(h)
	// Without an engine pid the mounts cannot be read, and the doctor
	// says so; the address's own route and lo's are not collisions.
	want := []string{CheckMountPropagation, CheckForwarding, CheckAcceptRA, CheckRouteCollision}
	if got := ids(r.Findings); !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v: %+v", got, want, r.Findings)
	}
	for _, f := range r.Findings {
		switch f.Check {
		case CheckRouteCollision:
			if f.Object != "203.0.113.0/25 dev dstdoc0" || !strings.Contains(f.Problem, "proto static") {
				t.Errorf("collision: %+v", f)
			}
		case CheckAcceptRA:
			if f.Object != "dstdoc0" || !strings.Contains(f.Problem, "accept_ra is 1") {
				t.Errorf("accept_ra: %+v", f)
			}
		}
	}
}
