//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The routed test bed's router (DUALSTACK_CLUSTER=bgp, make
// integration-bgp; the topology is in clusterbed_test.go): Debian's BIRD 2
// in the hub namespace, with a BGP session to each host, and the BGP
// settings of the hosts' plugins.

const (
	routerASN = 65000 // host N is AS routerASN+N
	// routerID is the router's address on etcd's link, the one of its
	// addresses that is no host's peer.
	routerID = "198.51.100.193"
	// bgpHoldTime is the hold time of both ends, in seconds: a lost
	// speaker's routes go within it.
	bgpHoldTime = 6
)

func needRoutedBed(t *testing.T) {
	t.Helper()
	if bed == nil || !bed.routed {
		t.Skip("BGP tests run on the routed test bed: DUALSTACK_CLUSTER=bgp (make integration-bgp)")
	}
}

// router4 and router6 are the router's addresses on h's link: h's BGP
// peer, and the next hop of the routes h learns from it.
func (b *clusterBed) router4(h *clusterHost) netip.Addr { return h.link.gw4 }
func (b *clusterBed) router6(h *clusterHost) netip.Addr { return h.link.gw6 }

// bgpSettings are host h's BGP settings: its AS, the router as its one
// peer, the bed's short hold time, and the import of what the router
// learned from the other hosts, unless the router is h's default gateway.
// BGP_ROUTER_ID is left to its default, the host's IPv4 CLUSTER_ADDRESS.
func (b *clusterBed) bgpSettings(h *clusterHost) []string {
	return []string{
		fmt.Sprintf("BGP_ASN=%d", h.asn),
		fmt.Sprintf("BGP_PEERS=%s:%d", b.router4(h), routerASN),
		fmt.Sprintf("BGP_HOLD_TIME=%d", bgpHoldTime),
		fmt.Sprintf("BGP_IMPORT_ROUTES=%v", !h.link.defaultGateway),
	}
}

// birdConfig is the router's BIRD configuration.
func (b *clusterBed) birdConfig() string {
	var c strings.Builder
	fmt.Fprintf(&c, `# The routed test bed's router (dualstack's integration/bgpbed_test.go).
log stderr all;
router id %s;
# One word, for birdProtocols.
timeformat protocol "%%T";

# Interfaces, for the neighbours and the next hops.
protocol device {}

# What BGP learned goes into the router's kernel tables, which forward.
# Nothing else is in BIRD's tables: no direct or static routes, and the
# kernel's own are not learned.
protocol kernel { ipv4 { export all; }; }
protocol kernel { ipv6 { export all; }; }

# One session per host, over IPv4, carrying both families. The hosts'
# speakers connect out and do not listen: the router only accepts
# (passive). Short timers, so that tests see a lost speaker and a
# returning one in seconds: the hosts' hold time, and after an error the
# next session accepted within 1s, then 2s, at most 5s (BIRD's default
# is 60s to 300s). An IPv6 route the router passes on has as next hop its
# own IPv6 address on the link to the host it goes to, and its link-local
# one: BIRD picks them from the link when the session is not IPv6.
template bgp bedhost {
	local as %d;
	passive on;
	hold time %d;
	error wait time 1, 5;
	debug { states, events };
	ipv4 { import all; export all; };
	ipv6 { import all; export all; };
}
`, routerID, routerASN, bgpHoldTime)
	for _, h := range b.hosts {
		fmt.Fprintf(&c, "\nprotocol bgp %s from bedhost {\n\tneighbor %s as %d;\n}\n", h.name, h.addr4, h.asn)
	}
	return c.String()
}

// startRouter starts BIRD in the router's namespace, once every link is
// there, and waits until it answers on its control socket.
func (b *clusterBed) startRouter() error {
	bin, err := exec.LookPath("bird")
	if err != nil {
		return fmt.Errorf("bird not found: apt-get install bird2")
	}
	if b.routerDir, err = os.MkdirTemp("", "dualstack-bird-"); err != nil {
		return err
	}
	conf := filepath.Join(b.routerDir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.birdConfig()), 0o644); err != nil {
		return err
	}
	ready := func() error { _, err := b.birdc("show", "status"); return err }
	b.bird, err = startDaemon(b.hubNS, filepath.Join(b.routerDir, "bird.log"), ready, bin, "-f", "-c", conf, "-s", b.birdSocket())
	return err
}

func (b *clusterBed) birdSocket() string { return filepath.Join(b.routerDir, "bird.ctl") }

// routerLog is the last n lines of BIRD's log: its sessions' states and
// events, for failure reports.
func (b *clusterBed) routerLog(n int) string { return tail(filepath.Join(b.routerDir, "bird.log"), n) }

// birdVersion is BIRD's "BIRD version 2.0.12".
func birdVersion() string {
	out, err := exec.Command("bird", "--version").CombinedOutput()
	if err != nil {
		return "BIRD (version unknown)"
	}
	return strings.TrimSpace(string(out))
}

// birdc runs a birdc command against the router. The control socket is a
// file: birdc need not enter the router's namespace. birdc fails when BIRD
// answers with an error.
func (b *clusterBed) birdc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.birdSocket()}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// birdProtocols is the router's protocols by name, each with its state:
// for a BGP session (host1...) its BGP state, followed by its last error
// if any ("Established", "Passive", "Passive Socket: Connection closed");
// for the others BIRD's state ("up").
func (b *clusterBed) birdProtocols(t testing.TB) map[string]string {
	t.Helper()
	out, err := b.birdc("show", "protocols")
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	// Name Proto Table State Since Info...; Since is one word (the
	// config's timeformat).
	protos := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "BIRD" || f[0] == "Name" {
			continue
		}
		if len(f) < 5 {
			t.Fatalf("router: show protocols: cannot read %q in:\n%s", line, out)
		}
		protos[f[0]] = f[3]
		if len(f) > 5 {
			protos[f[0]] = strings.Join(f[5:], " ")
		}
	}
	return protos
}

// birdRoute is a route in the router's tables, where every route was
// learned over BGP.
type birdRoute struct {
	prefix netip.Prefix
	proto  string       // the session it came from: a host's name
	via    []netip.Addr // its next hops
	best   bool         // the route the router uses, and has in its kernel
}

func (r birdRoute) String() string {
	s := fmt.Sprintf("%s from %s via %v", r.prefix, r.proto, r.via)
	if r.best {
		s += " (best)"
	}
	return s
}

// birdRoutes lists the routes in the router's tables, both families.
func (b *clusterBed) birdRoutes(t testing.TB) []birdRoute {
	t.Helper()
	out, err := b.birdc("show", "route")
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	routes, err := parseBirdRoutes(out)
	if err != nil {
		t.Fatalf("router: show route: %v, in:\n%s", err, out)
	}
	return routes
}

// routerRoutes is what the router learned over BGP: each prefix with the
// next hops of its routes (of them all, when several hosts announce it).
func (b *clusterBed) routerRoutes(t testing.TB) map[netip.Prefix][]netip.Addr {
	t.Helper()
	learned := map[netip.Prefix][]netip.Addr{}
	for _, r := range b.birdRoutes(t) {
		learned[r.prefix] = append(learned[r.prefix], r.via...)
	}
	return learned
}

// parseBirdRoutes reads `birdc show route`:
//
//	BIRD 2.0.12 ready.
//	Table master4:
//	198.19.9.0/24        unicast [host1 13:06:26.479] * (100) [AS65001i]
//		via 198.51.100.18 on p-host1
//	                     unicast [host2 13:06:26.483] (100) [AS65002i]
//		via 198.51.100.34 on p-host2
//
//	Table master6:
//	fd00:1::/64          unicast [host1 13:06:18.797 from 198.51.100.18] * (100) [AS65001i]
//		via fd00:fab:1::2 on p-host1
//
// A route's line starts with its prefix, or with spaces when it is another
// route to the prefix above; its next hops follow, a line each, indented
// by a tab ("via ADDR on LINK", with "weight N" when there are several).
func parseBirdRoutes(out string) ([]birdRoute, error) {
	var routes []birdRoute
	var prefix netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0 || f[0] == "BIRD" || f[0] == "Table":
		case strings.HasPrefix(line, "\t"):
			if f[0] != "via" {
				continue // dev LINK: not from BGP
			}
			if len(routes) == 0 || len(f) < 2 {
				return nil, fmt.Errorf("cannot read next hop %q", line)
			}
			a, err := netip.ParseAddr(f[1])
			if err != nil {
				return nil, fmt.Errorf("next hop %q: %w", line, err)
			}
			r := &routes[len(routes)-1]
			r.via = append(r.via, a)
		default:
			if !strings.HasPrefix(line, " ") {
				p, err := netip.ParsePrefix(f[0])
				if err != nil {
					return nil, fmt.Errorf("route %q: %w", line, err)
				}
				prefix, f = p, f[1:]
			} else if !prefix.IsValid() {
				return nil, fmt.Errorf("route %q under no prefix", line)
			}
			r := birdRoute{prefix: prefix, best: slices.Contains(f, "*")}
			if i := slices.IndexFunc(f, func(w string) bool { return strings.HasPrefix(w, "[") }); i >= 0 {
				r.proto = strings.TrimSuffix(f[i][1:], "]")
			}
			routes = append(routes, r)
		}
	}
	return routes, nil
}

// TestBGPBed checks the routed bed itself: the router has a session for
// each host; each host reaches etcd (its plugin registered), the router,
// and through it the other hosts; and nothing more: with no default route,
// what the hosts' containers reach beyond the bed's links is up to the
// routes learned over BGP.
func TestBGPBed(t *testing.T) {
	needRoutedBed(t)
	protos := bed.birdProtocols(t)
	t.Logf("router's sessions: host1 %q, host2 %q, host3 %q", protos["host1"], protos["host2"], protos["host3"])
	within(t, 30*time.Second, func() error {
		live := map[string]bool{}
		for _, n := range clusterStatus(t).Nodes {
			live[n.Name] = n.Alive
		}
		for _, h := range bed.hosts {
			if !live[h.name] {
				time.Sleep(time.Second)
				return fmt.Errorf("%s is not a live node in the store: its plugin did not reach etcd at %s", h.name, bed.endpoint())
			}
		}
		return nil
	})
	for i, h := range bed.hosts {
		if _, ok := protos[h.name]; !ok {
			t.Errorf("the router has no session %s: %v", h.name, protos)
		}
		other := bed.hosts[(i+1)%len(bed.hosts)]
		for _, a := range []netip.Addr{bed.router4(h), bed.router6(h), other.addr4, other.addr6} {
			if out, err := exec.Command("ip", "netns", "exec", h.e.netns, "busybox", "ping", "-c1", "-W2", a.String()).CombinedOutput(); err != nil {
				routes, _ := exec.Command("ip", "-n", h.e.netns, "route", "show", "table", "all").CombinedOutput()
				t.Errorf("%s cannot ping %s: %v\n%s\nits routes:\n%s", h.name, a, err, out, routes)
			}
		}
		for _, a := range []string{"198.19.77.1", "fd00:77::1"} {
			out, err := exec.Command("ip", "-n", h.e.netns, "route", "get", a).CombinedOutput()
			switch {
			case h.link.defaultGateway && err != nil:
				t.Errorf("%s has no route to %s, yet the router is its default gateway: %v %s", h.name, a, err, out)
			case !h.link.defaultGateway && err == nil:
				t.Errorf("%s has a route to %s, beyond the bed's links, with no BGP route learned: %s", h.name, a, out)
			}
		}
	}
}
