//go:build integration

package bgp

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The BGP end-to-end tests, on the routed test bed (harness.Routed,
// `make integration-bgp`): each host on its own link to a BIRD router,
// which learns the hosts' blocks from their plugins' speakers.

// hostBlocks returns h's blocks of cluster network name, from the store.
func hostBlocks(t *testing.T, name string, h *harness.ClusterHost) []netip.Prefix {
	t.Helper()
	return harness.ClusterStatus(t).BlocksOf(name)[h.Name]
}

// missingAtRouter returns what of blocks the router does not have via h's
// address of the block's family.
func missingAtRouter(t *testing.T, h *harness.ClusterHost, blocks []netip.Prefix) []string {
	t.Helper()
	have := harness.Bed.RouterRoutes(t)
	var missing []string
	for _, b := range blocks {
		via := h.Addr4
		if b.Addr().Is6() {
			via = h.Addr6
		}
		if !slices.Contains(have[b], via) {
			missing = append(missing, fmt.Sprintf("%s via %s (has %v)", b, via, have[b]))
		}
	}
	return missing
}

// presentAtRouter returns which of blocks the router still has.
func presentAtRouter(t *testing.T, blocks []netip.Prefix) []netip.Prefix {
	t.Helper()
	have := harness.Bed.RouterRoutes(t)
	var out []netip.Prefix
	for _, b := range blocks {
		if len(have[b]) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// routesOf lists host h's routes of protocol proto, both families.
func routesOf(t *testing.T, h *harness.ClusterHost, proto string) string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", "-n", h.Engine.Netns, fam, "route", "show", "proto", proto).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ip route: %v: %s", h.Name, err, b)
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, "\n")
}

// Acceptances 1 and 2: each host's IPv4 and IPv6 blocks are at the router
// with the host's address as next hop, and containers on each host reach
// those of the other hosts on IPv4 and every IPv6 subnet through the
// router, by routes the hosts learned over BGP (protocol 214), with no
// host-gw route anywhere.
func TestBGPAnnounceAndRoute(t *testing.T) {
	harness.WaitSessions(t)
	subnets := []string{"198.19.64.0/20", "fd00:b1::/48", "fd00:b2::/48"}
	harness.ClusterNet(t, "bgp-br", harness.Bed.Hosts, "-o", "cluster=bgp-br", "-o", "cluster_routes=bgp", "--subnet", subnets[0], "--ipv6", "--subnet", subnets[1], "--subnet", subnets[2])
	cs := harness.StartEverywhere(t, harness.Bed.Hosts, "bgp-br", 3, false)
	addrs := harness.WantClusterAddrs(t, cs, "bgp-br", subnets...)
	st := harness.ClusterStatus(t)
	for _, h := range harness.Bed.Hosts {
		blocks := st.BlocksOf("bgp-br")[h.Name]
		if len(blocks) != 3 {
			t.Errorf("%s holds blocks %v, want one per subnet", h.Name, blocks)
		}
		harness.Within(t, 10*time.Second, func() error {
			if m := missingAtRouter(t, h, blocks); len(m) > 0 {
				return fmt.Errorf("the router lacks %s's blocks %v\nits log:\n%s", h.Name, m, harness.Bed.RouterLog(20))
			}
			return nil
		})
	}
	h1 := harness.Bed.Hosts[0]
	harness.Within(t, 10*time.Second, func() error {
		learned := routesOf(t, h1, "214")
		for _, h := range harness.Bed.Hosts[1:] {
			for _, b := range st.BlocksOf("bgp-br")[h.Name] {
				via := harness.Bed.Router4(h1)
				if b.Addr().Is6() {
					via = harness.Bed.Router6(h1)
				}
				if !strings.Contains(learned, b.String()+" via "+via.String()) {
					return fmt.Errorf("%s has no learned route to %s's block %s via the router %s; its routes of protocol 214:\n%s", h1.Name, h.Name, b, via, learned)
				}
			}
		}
		return nil
	})
	t.Logf("%s's routes learned over BGP:\n%s", h1.Name, routesOf(t, h1, "214"))
	for _, h := range harness.Bed.Hosts {
		if hostgw := routesOf(t, h, "213"); hostgw != "" {
			t.Errorf("%s has host-gw routes on the routed bed:\n%s", h.Name, hostgw)
		}
		// Host 3 learns nothing (BGP_IMPORT_ROUTES=false): its default
		// gateway, the router, routes the other hosts' blocks.
		if learned := routesOf(t, h, "214"); h.Link.DefaultGateway && learned != "" {
			t.Errorf("%s, importing no routes, has learned ones:\n%s", h.Name, learned)
		}
	}
	harness.WantCrossHostPings(t, cs, addrs)

	// Removing the network withdraws its blocks.
	var all []netip.Prefix
	for _, h := range harness.Bed.Hosts {
		all = append(all, st.BlocksOf("bgp-br")[h.Name]...)
	}
	for _, c := range cs {
		c.Host.Docker(t, "rm", "-f", c.Name)
	}
	for _, h := range harness.Bed.Hosts {
		h.Docker(t, "network", "rm", "bgp-br")
	}
	harness.Within(t, 5*time.Second, func() error {
		if left := presentAtRouter(t, all); len(left) > 0 {
			return fmt.Errorf("the router still has %v after the network was removed everywhere", left)
		}
		return nil
	})
	harness.Within(t, 5*time.Second, func() error {
		if left := routesOf(t, h1, "214"); left != "" {
			return fmt.Errorf("%s keeps learned routes after the network went:\n%s", h1.Name, left)
		}
		return nil
	})
}

// Acceptance 3: a graceful stop of host 2's plugin takes its routes out
// of the router within 1 s; a SIGKILL of host 1's within the hold time
// (the kernel closes the session at once); each comes back when the
// plugin runs again.
func TestBGPStopKillRestart(t *testing.T) {
	harness.WaitSessions(t)
	harness.ClusterNet(t, "bgp-stop", harness.Bed.Hosts[:2], "-o", "cluster=bgp-stop", "-o", "cluster_routes=bgp", "--subnet", "198.19.96.0/20", "--ipv6", "--subnet", "fd00:b3::/48")
	// A host leases its blocks for its first container.
	harness.StartEverywhere(t, harness.Bed.Hosts[:2], "bgp-stop", 1, false)
	h1, h2 := harness.Bed.Hosts[0], harness.Bed.Hosts[1]
	b1, b2 := hostBlocks(t, "bgp-stop", h1), hostBlocks(t, "bgp-stop", h2)
	if len(b1) != 2 || len(b2) != 2 {
		t.Fatalf("blocks %v of %s and %v of %s: want an IPv4 and an IPv6 block each", b1, h1.Name, b2, h2.Name)
	}
	for _, hb := range []struct {
		h      *harness.ClusterHost
		blocks []netip.Prefix
	}{{h1, b1}, {h2, b2}} {
		harness.Within(t, 10*time.Second, func() error {
			if m := missingAtRouter(t, hb.h, hb.blocks); len(m) > 0 {
				return fmt.Errorf("the router lacks %v", m)
			}
			return nil
		})
	}

	h2.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	disabled := time.Now()
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			_, _ = h2.DockerCmd("plugin", "enable", harness.PluginName)
		}
	})
	harness.Within(t, time.Second, func() error {
		if left := presentAtRouter(t, b2); len(left) > 0 {
			return fmt.Errorf("%v after %s's plugin stopped: the router still has %v", time.Since(disabled).Round(time.Millisecond), h2.Name, left)
		}
		return nil
	})
	t.Logf("graceful stop: %s's routes left the router %v after `docker plugin disable` returned", h2.Name, time.Since(disabled).Round(time.Millisecond))
	if m := missingAtRouter(t, h1, b1); len(m) > 0 {
		t.Errorf("%s's routes went with %s's plugin: %v", h1.Name, h2.Name, m)
	}
	h2.Docker(t, "plugin", "enable", harness.PluginName)
	enabled = true
	harness.Within(t, 20*time.Second, func() error {
		if m := missingAtRouter(t, h2, b2); len(m) > 0 {
			return fmt.Errorf("after %s's plugin was enabled again, the router lacks %v", h2.Name, m)
		}
		return nil
	})

	// SIGKILL: watch the router while the plugin dies and Docker
	// restarts it.
	var mu sync.Mutex
	var goneAfter time.Duration
	stop := make(chan struct{})
	watching := sync.WaitGroup{}
	watching.Add(1)
	killed := time.Now()
	go func() {
		defer watching.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if len(presentAtRouter(t, b1)) == 0 {
				mu.Lock()
				goneAfter = time.Since(killed)
				mu.Unlock()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	harness.KillPlugin(t) // host1's; returns once Docker restarted it
	harness.Within(t, 20*time.Second, func() error {
		if m := missingAtRouter(t, h1, b1); len(m) > 0 {
			return fmt.Errorf("after %s's plugin was restarted, the router lacks %v", h1.Name, m)
		}
		return nil
	})
	close(stop)
	watching.Wait()
	mu.Lock()
	defer mu.Unlock()
	if goneAfter == 0 || goneAfter > harness.BGPHoldTime*time.Second {
		t.Fatalf("after the SIGKILL of %s's plugin its routes did not leave the router within the hold time (%ds)", h1.Name, harness.BGPHoldTime)
	}
	t.Logf("SIGKILL: %s's routes left the router %v after the kill, and came back with the restarted plugin", h1.Name, goneAfter.Round(time.Millisecond))
}

// Acceptance 4: bad BGP settings on host 3 (a malformed peer, a private AS
// with a public peer, an unreachable peer) give a clear error at start and
// in `dualstack cluster status`, and the plugin still serves local
// networks.
func TestBGPBadSettings(t *testing.T) {
	h3 := harness.Bed.Hosts[2]
	good := harness.Bed.BGPSettings(h3)
	set := func(settings ...string) {
		t.Helper()
		h3.Docker(t, "plugin", "disable", "-f", harness.PluginName)
		h3.Docker(t, append([]string{"plugin", "set", harness.PluginName}, settings...)...)
		h3.Docker(t, "plugin", "enable", harness.PluginName)
	}
	t.Cleanup(func() {
		_, _ = h3.DockerCmd("plugin", "disable", "-f", harness.PluginName)
		_, _ = h3.DockerCmd(append([]string{"plugin", "set", harness.PluginName}, good...)...)
		_, _ = h3.DockerCmd("plugin", "enable", harness.PluginName)
	})
	statusLine := func() string {
		out, err := harness.ClusterCLI("status")
		if err != nil {
			t.Fatalf("dualstack cluster status: %v\n%s", err, out)
		}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == h3.Name && !strings.Contains(line, "alive") && !strings.Contains(line, "dead") {
				return strings.TrimSpace(line)
			}
		}
		return ""
	}
	r := harness.Bed.Router4(h3).String()
	for _, tc := range []struct {
		name, peers string
		want        []string // in the status line; the last one in the log too
	}{
		{"malformed peer", "BGP_PEERS=" + r, []string{"not running", `BGP is off: BGP_PEERS="` + r + `": peer "` + r + `": want ADDRESS:ASN`}},
		{"private AS, public peer", "BGP_PEERS=" + r + ":3356", []string{"not running", "BGP is off: peer " + r + " is in public AS 3356 but this host's AS 65003 (BGP_ASN) is private"}},
		{"unreachable peer", "BGP_PEERS=198.51.100.99:65000", []string{"AS 65003, router ID " + h3.Addr4.String() + "; peer 198.51.100.99 AS 65000", "not established after 10s: cannot connect: dial tcp 198.51.100.99:179"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			set(tc.peers)
			harness.Within(t, 25*time.Second, func() error {
				line := statusLine()
				for _, w := range tc.want {
					if !strings.Contains(line, w) {
						time.Sleep(500 * time.Millisecond)
						return fmt.Errorf("%s: dualstack cluster status shows %q for %s, want %q", tc.name, line, h3.Name, w)
					}
				}
				return nil
			})
			t.Logf("%s: dualstack cluster status: %s", tc.name, statusLine())
			last := tc.want[len(tc.want)-1]
			// dockerd quotes the plugin's lines: drop the escapes.
			if log := strings.ReplaceAll(harness.LastLines(h3.Engine.PluginLog(), 200), `\`, ""); !strings.Contains(log, "level=error") || !strings.Contains(log, last) {
				t.Errorf("%s: the plugin's log has no error line saying %q:\n%s", tc.name, last, harness.LastLines(log, 20))
			}
			// Local networks are served.
			name := "bgp-local-" + strings.ReplaceAll(tc.name, " ", "-")
			name = strings.ReplaceAll(name, ",", "")
			h3.Docker(t, "network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--subnet", "198.19.112.0/24", name)
			defer func() { _, _ = h3.DockerCmd("network", "rm", name) }()
			out := h3.Docker(t, "run", "--rm", "--label", harness.TestLabel, "--network", name, harness.Image, "ping", "-c", "1", "-W", "2", "198.19.112.1")
			if !strings.Contains(out, "1 packets received") {
				t.Errorf("%s: a container on a local network cannot reach its gateway: %s", tc.name, out)
			}
		})
	}
	// A network that needs BGP is refused with the reason while it is off.
	set("BGP_PEERS=" + harness.Bed.Router4(h3).String())
	out, err := h3.DockerCmd("network", "create", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "cluster=bgp-refused", "-o", "cluster_routes=bgp", "--subnet", "198.19.113.0/24", "bgp-refused")
	if err == nil {
		_, _ = h3.DockerCmd("network", "rm", "bgp-refused")
		t.Fatal("a cluster_routes=bgp network was created with BGP off")
	}
	if !strings.Contains(out, "cluster_routes=bgp: BGP does not run on this host: BGP is off: BGP_PEERS=") {
		t.Errorf("the refusal does not say why: %s", out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
}

// Acceptance 3, the hold time: host 3 lost to the router without a word
// (its BGP packets dropped, as when the host dies or its link is cut):
// the router drops its routes when the hold time runs out, not before
// half of it, and takes them again when the host is back.
func TestBGPHostLost(t *testing.T) {
	harness.WaitSessions(t)
	h3 := harness.Bed.Hosts[2]
	harness.ClusterNet(t, "bgp-lost", []*harness.ClusterHost{h3}, "-o", "cluster=bgp-lost", "-o", "cluster_routes=bgp", "--subnet", "198.19.104.0/22", "--ipv6", "--subnet", "fd00:b4::/48")
	harness.StartEverywhere(t, []*harness.ClusterHost{h3}, "bgp-lost", 1, false)
	blocks := hostBlocks(t, "bgp-lost", h3)
	if len(blocks) != 2 {
		t.Fatalf("%s holds blocks %v, want an IPv4 and an IPv6 one", h3.Name, blocks)
	}
	harness.Within(t, 10*time.Second, func() error {
		if m := missingAtRouter(t, h3, blocks); len(m) > 0 {
			return fmt.Errorf("the router lacks %v", m)
		}
		return nil
	})
	r := harness.Bed.Router4(h3).String()
	rules := [][]string{
		{"OUTPUT", "-d", r, "-p", "tcp", "--dport", "179", "-j", "DROP"},
		{"INPUT", "-s", r, "-p", "tcp", "--sport", "179", "-j", "DROP"},
	}
	iptables := func(op string, rule []string) error {
		out, err := exec.Command("ip", append([]string{"netns", "exec", h3.Engine.Netns, "iptables", op}, rule...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s %v in %s: %v: %s", op, rule, h3.Name, err, out)
		}
		return nil
	}
	cut := time.Now()
	for _, rule := range rules {
		if err := iptables("-I", rule); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = iptables("-D", rule) })
	}
	harness.Within(t, (harness.BGPHoldTime+2)*time.Second, func() error {
		if left := presentAtRouter(t, blocks); len(left) > 0 {
			time.Sleep(50 * time.Millisecond)
			return fmt.Errorf("%v after %s was cut off, the router still has %v (hold time %ds)\nits log:\n%s", time.Since(cut).Round(time.Millisecond), h3.Name, left, harness.BGPHoldTime, harness.Bed.RouterLog(10))
		}
		return nil
	})
	gone := time.Since(cut)
	if gone < harness.BGPHoldTime*time.Second/2 {
		t.Errorf("the router dropped %s's routes %v after the cut: before the hold timer could run out (%ds)", h3.Name, gone.Round(time.Millisecond), harness.BGPHoldTime)
	}
	t.Logf("cut off: %s's routes left the router %v after the cut (hold time %ds)", h3.Name, gone.Round(time.Millisecond), harness.BGPHoldTime)
	for _, rule := range rules {
		if err := iptables("-D", rule); err != nil {
			t.Fatal(err)
		}
	}
	back := time.Now()
	harness.Within(t, 30*time.Second, func() error {
		if m := missingAtRouter(t, h3, blocks); len(m) > 0 {
			time.Sleep(200 * time.Millisecond)
			return fmt.Errorf("%s is reachable again, yet the router lacks %v", h3.Name, m)
		}
		return nil
	})
	t.Logf("back: the router had %s's routes again %v later", h3.Name, time.Since(back).Round(time.Millisecond))
}

// A single-host network with -o announce=true: its subnets are at the
// router via the host's addresses while it exists; the router reaches a
// container's published port on its own IPv6 address through that route,
// and not an unpublished one (the firewall holds as without BGP).
func TestBGPAnnounceSingleHost(t *testing.T) {
	harness.WaitSessions(t)
	h1 := harness.Bed.Hosts[0]
	sub4, sub6 := netip.MustParsePrefix("198.19.120.0/24"), netip.MustParsePrefix("fd00:b9::/64")
	h1.Docker(t, "network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "announce=true", "--subnet", sub4.String(), "--ipv6", "--subnet", sub6.String(), "bgp-one")
	t.Cleanup(func() { _, _ = h1.DockerCmd("network", "rm", "bgp-one") })
	harness.Within(t, 10*time.Second, func() error {
		if m := missingAtRouter(t, h1, []netip.Prefix{sub4, sub6}); len(m) > 0 {
			return fmt.Errorf("the router lacks %v", m)
		}
		return nil
	})
	harness.RunServer(t, "bgp-one-web", "bgp-one", "-p", "8080:80")
	var v6 netip.Addr
	for _, a := range harness.GlobalAddrs(t, harness.Started{Host: h1, Name: "bgp-one-web"}) {
		if sub6.Contains(a.Addr()) {
			v6 = a.Addr()
		}
	}
	if !v6.IsValid() {
		t.Fatalf("bgp-one-web has no address in %s", sub6)
	}
	router := "/run/netns/" + harness.Bed.HubNS
	harness.WantReach(t, "the router, to the published port", router, harness.HostPort(v6.String(), "80"), "bgp-one-web")
	harness.WantBlocked(t, "the router, to a port not published", router, harness.HostPort(v6.String(), "81"))
	h1.Docker(t, "rm", "-f", "bgp-one-web")
	h1.Docker(t, "network", "rm", "bgp-one")
	harness.Within(t, 5*time.Second, func() error {
		if left := presentAtRouter(t, []netip.Prefix{sub4, sub6}); len(left) > 0 {
			return fmt.Errorf("the router still has %v after the network was removed", left)
		}
		return nil
	})
}

// The firewall: a host whose INPUT policy drops everything but replies
// still has its session and its routes at the router, since the speaker
// only connects out; dualstack adds no INPUT rule for BGP.
func TestBGPInputPolicyDrop(t *testing.T) {
	harness.WaitSessions(t)
	h2 := harness.Bed.Hosts[1]
	harness.ClusterNet(t, "bgp-drop", []*harness.ClusterHost{h2}, "-o", "cluster=bgp-drop", "-o", "cluster_routes=bgp", "--subnet", "198.19.108.0/22")
	harness.StartEverywhere(t, []*harness.ClusterHost{h2}, "bgp-drop", 1, false)
	blocks := hostBlocks(t, "bgp-drop", h2)
	if len(blocks) != 1 {
		t.Fatalf("%s holds blocks %v of bgp-drop, want one", h2.Name, blocks)
	}
	iptables := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"netns", "exec", h2.Engine.Netns, "iptables"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("iptables %v in %s: %v: %s", args, h2.Name, err, out)
		}
		return string(out)
	}
	iptables("-I", "INPUT", "1", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	iptables("-I", "INPUT", "2", "-i", "lo", "-j", "ACCEPT")
	iptables("-P", "INPUT", "DROP")
	t.Cleanup(func() {
		iptables("-P", "INPUT", "ACCEPT")
		iptables("-D", "INPUT", "-i", "lo", "-j", "ACCEPT")
		iptables("-D", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	})
	// A new session, made under that policy.
	h2.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	h2.Docker(t, "plugin", "enable", harness.PluginName)
	harness.WaitSessions(t)
	harness.Within(t, 20*time.Second, func() error {
		if m := missingAtRouter(t, h2, blocks); len(m) > 0 {
			return fmt.Errorf("with INPUT policy DROP on %s, the router lacks %v", h2.Name, m)
		}
		return nil
	})
	if rules := iptables("-S", "INPUT"); strings.Contains(rules, "179") {
		t.Errorf("dualstack opened BGP in %s's INPUT chain:\n%s", h2.Name, rules)
	}
}
