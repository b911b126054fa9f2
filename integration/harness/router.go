//go:build integration

package harness

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

// The routed test bed's router (the Routed topology, make
// integration-bgp; the topology is in bed.go): Debian's BIRD 2
// in the hub namespace, with a BGP session to each host, and the BGP
// settings of the hosts' plugins.

const (
	routerASN = 65000 // host N is AS routerASN+N
	// routerID is the router's address on etcd's link, the one of its
	// addresses that is no host's peer.
	routerID = "198.51.100.193"
	// BGPHoldTime is the hold time of both ends, in seconds: a lost
	// speaker's routes go within it.
	BGPHoldTime = 6
)

// Router4 and Router6 are the router's addresses on h's link: h's BGP
// peer, and the next hop of the routes h learns from it.
func (b *ClusterBed) Router4(h *ClusterHost) netip.Addr { return h.Link.GW4 }
func (b *ClusterBed) Router6(h *ClusterHost) netip.Addr { return h.Link.GW6 }

// BGPSettings are host h's BGP settings: its AS, the router as its one
// peer, the bed's short hold time, and the import of what the router
// learned from the other hosts, unless the router is h's default gateway.
// BGP_ROUTER_ID is left to its default, the host's IPv4 CLUSTER_ADDRESS.
func (b *ClusterBed) BGPSettings(h *ClusterHost) []string {
	return []string{
		fmt.Sprintf("BGP_ASN=%d", h.ASN),
		fmt.Sprintf("BGP_PEERS=%s:%d", b.Router4(h), routerASN),
		fmt.Sprintf("BGP_HOLD_TIME=%d", BGPHoldTime),
		fmt.Sprintf("BGP_IMPORT_ROUTES=%v", !h.Link.DefaultGateway),
	}
}

// BirdConfig is the router's BIRD configuration.
func (b *ClusterBed) BirdConfig() string {
	var c strings.Builder
	fmt.Fprintf(&c, `# The routed test bed's router (dualstack's integration/harness/router.go).
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
`, routerID, routerASN, BGPHoldTime)
	for _, h := range b.Hosts {
		fmt.Fprintf(&c, "\nprotocol bgp %s from bedhost {\n\tneighbor %s as %d;\n}\n", h.Name, h.Addr4, h.ASN)
	}
	return c.String()
}

// startRouter starts BIRD in the router's namespace, once every link is
// there, and waits until it answers on its control socket.
func (b *ClusterBed) startRouter() error {
	bin, err := exec.LookPath("bird")
	if err != nil {
		return fmt.Errorf("bird not found: apt-get install bird2")
	}
	if b.RouterDir, err = os.MkdirTemp("", "dualstack-bird-"); err != nil {
		return err
	}
	conf := filepath.Join(b.RouterDir, "bird.conf")
	if err := os.WriteFile(conf, []byte(b.BirdConfig()), 0o644); err != nil {
		return err
	}
	ready := func() error { _, err := b.Birdc("show", "status"); return err }
	b.bird, err = startDaemon(b.HubNS, filepath.Join(b.RouterDir, "bird.log"), ready, bin, "-f", "-c", conf, "-s", b.birdSocket())
	return err
}

func (b *ClusterBed) birdSocket() string { return filepath.Join(b.RouterDir, "bird.ctl") }

// RouterLog is the last n lines of BIRD's log: its sessions' states and
// events, for failure reports.
func (b *ClusterBed) RouterLog(n int) string { return tail(filepath.Join(b.RouterDir, "bird.log"), n) }

// birdVersion is BIRD's "BIRD version 2.0.12".
func birdVersion() string {
	out, err := exec.Command("bird", "--version").CombinedOutput()
	if err != nil {
		return "BIRD (version unknown)"
	}
	return strings.TrimSpace(string(out))
}

// Birdc runs a birdc command against the router. The control socket is a
// file: birdc need not enter the router's namespace. birdc fails when BIRD
// answers with an error.
func (b *ClusterBed) Birdc(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "birdc", append([]string{"-s", b.birdSocket()}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// BirdProtocols is the router's protocols by name, each with its state:
// for a BGP session (host1...) its BGP state, followed by its last error
// if any ("Established", "Passive", "Passive Socket: Connection closed");
// for the others BIRD's state ("up").
func (b *ClusterBed) BirdProtocols(t testing.TB) map[string]string {
	t.Helper()
	out, err := b.Birdc("show", "protocols")
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
func (b *ClusterBed) birdRoutes(t testing.TB) []birdRoute {
	t.Helper()
	out, err := b.Birdc("show", "route")
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	routes, err := parseBirdRoutes(out)
	if err != nil {
		t.Fatalf("router: show route: %v, in:\n%s", err, out)
	}
	return routes
}

// RouterRoutes is what the router learned over BGP: each prefix with the
// next hops of its routes (of them all, when several hosts announce it).
func (b *ClusterBed) RouterRoutes(t testing.TB) map[netip.Prefix][]netip.Addr {
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

// WaitSessions waits until the router has a session up with every host:
// a plugin just installed may not have connected yet.
func WaitSessions(t testing.TB) {
	t.Helper()
	Within(t, 30*time.Second, func() error {
		protos := Bed.BirdProtocols(t)
		for _, h := range Bed.Hosts {
			if protos[h.Name] != "Established" {
				time.Sleep(200 * time.Millisecond)
				return fmt.Errorf("the router's session with %s is %q, not Established\nits log:\n%s", h.Name, protos[h.Name], Bed.RouterLog(20))
			}
		}
		return nil
	})
}
