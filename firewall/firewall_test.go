package firewall

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

var backends = []Backend{BackendNFT, BackendLegacy}

// in runs fn with a Firewall of backend inside ns.
func in(t *testing.T, ns netnstest.NS, b Backend, fn func(fw *Firewall) error) {
	t.Helper()
	if err := netns.Do(ns.Path, func() error { return fn(New(b)) }); err != nil {
		t.Fatal(err)
	}
}

// sh runs a command in ns.
func sh(t *testing.T, ns netnstest.NS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// save returns what iptables-save and ip6tables-save of b print in ns,
// without comments, with zeroed counters and without tables that hold
// nothing (built-in chains with policy ACCEPT only: a table is there once
// anyone used it): what a user would look at.
func save(t *testing.T, ns netnstest.NS, b Backend) string {
	t.Helper()
	var out []string
	for _, f := range Families {
		out = append(out, "# "+b.command(f)+"-save")
		var table []string
		empty := true
		for _, l := range strings.Split(sh(t, ns, b.command(f)+"-save"), "\n") {
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			l = counters.ReplaceAllString(l, "[0:0]")
			table = append(table, l)
			if !strings.HasPrefix(l, "*") && l != "COMMIT" && !(strings.HasPrefix(l, ":") && strings.HasSuffix(l, " ACCEPT [0:0]")) {
				empty = false
			}
			if l == "COMMIT" {
				if !empty {
					out = append(out, table...)
				}
				table, empty = nil, true
			}
		}
	}
	return strings.Join(out, "\n") + "\n"
}

func holds(t *testing.T, ns netnstest.NS, b Backend, s State) bool {
	t.Helper()
	var ok bool
	in(t, ns, b, func(fw *Firewall) (err error) { ok, err = fw.Holds(s); return err })
	return ok
}

// TestGoldenApplies feeds every golden combination to each backend: the
// kernel then holds exactly the rules Rules computes (iptables-save prints
// them as they are written, so the next Apply finds nothing to do), a
// second Apply changes nothing, and removing the last network leaves no
// trace.
func TestGoldenApplies(t *testing.T) {
	netnstest.Skip(t)
	for _, c := range append(combinations(), gatewayModeStates()...) {
		t.Run(c.name, func(t *testing.T) { appliesAsWritten(t, c.state) })
	}
}

// appliesAsWritten applies s with each backend in a namespace of its own:
// the kernel holds the rules as Rules writes them, a second Apply changes
// nothing, and removing the last network leaves what was there.
func appliesAsWritten(t *testing.T, s State) {
	t.Helper()
	for _, b := range backends {
		ns := netnstest.New(t)
		clean := save(t, ns, b)
		in(t, ns, b, func(fw *Firewall) error { return fw.Apply(s) })
		if !holds(t, ns, b, s) {
			t.Fatalf("%s: after Apply the kernel does not hold the rules as written:\n%s", b, save(t, ns, b))
		}
		applied := save(t, ns, b)
		in(t, ns, b, func(fw *Firewall) error { return fw.Apply(s) })
		if again := save(t, ns, b); again != applied {
			t.Fatalf("%s: a second Apply changed the rules:\n%s\nwas:\n%s", b, again, applied)
		}
		in(t, ns, b, func(fw *Firewall) error { return fw.Apply(State{}) })
		if got := save(t, ns, b); got != clean {
			t.Fatalf("%s: after the last network went:\n%s\nwant:\n%s", b, got, clean)
		}
	}
}

// TestApplyNextToDocker checks, with each backend, what a host with Docker
// sees over time: dualstack's hook right after DOCKER-USER, and back there
// when Docker puts its jump on top again; the IPv6 FORWARD policy set to
// DROP when dualstack turns IPv6 forwarding on, without flushing FORWARD;
// drift repaired (a stale rule, a lost hook), Docker's own rules untouched
// throughout, and nothing of dualstack's left at the end.
func TestApplyNextToDocker(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := netnstest.New(t)
			for _, f := range Families {
				ipt := func(args ...string) { sh(t, ns, append([]string{b.command(f)}, args...)...) }
				ipt("-N", "DOCKER-USER")
				ipt("-N", "DOCKER")
				ipt("-N", "DOCKER-ISOLATION-STAGE-2")
				ipt("-A", "DOCKER-USER", "-j", "RETURN")
				ipt("-A", "FORWARD", "-j", "DOCKER-USER")
				ipt("-A", "FORWARD", "-o", "docker0", "-j", "DOCKER")
				ipt("-A", "DOCKER-ISOLATION-STAGE-2", "-o", "docker0", "-j", "DROP")
			}
			docker := save(t, ns, b)
			a := Network{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Masquerade4: true}
			other := Network{Bridge: "ds-b", Subnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Internal: true}
			s := State{Networks: []Network{a, other}, Ports: publish(a.Bridge), ForwardDrop: map[Family]bool{IPv6: true}}
			in(t, ns, b, func(fw *Firewall) error { return fw.Apply(s) })
			got := save(t, ns, b)
			for _, want := range []string{
				"-A FORWARD -j DOCKER-USER\n-A FORWARD -j DUALSTACK-FORWARD\n-A FORWARD -o docker0 -j DOCKER\n",
				"-A DUALSTACK-DROP -i ds-a -o docker0 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n",
			} {
				if strings.Count(got, want) != 2 {
					t.Fatalf("want in both families %q:\n%s", want, got)
				}
			}
			v4, v6, _ := strings.Cut(got, "# "+b.command(IPv6))
			if !strings.Contains(v4, ":FORWARD ACCEPT") || !strings.Contains(v6, ":FORWARD DROP") {
				t.Fatalf("FORWARD policy: want IPv4 ACCEPT (left alone), IPv6 DROP:\n%s", got)
			}
			s.ForwardDrop = nil
			if !holds(t, ns, b, s) {
				t.Fatalf("the applied rules do not count as in place:\n%s", got)
			}

			// Docker puts its jump back on top; a firewall manager flushes
			// nat PREROUTING; someone adds a rule to dualstack's chain.
			ipt := func(args ...string) { sh(t, ns, append([]string{b.command(IPv4)}, args...)...) }
			ipt("-D", "FORWARD", "-j", "DOCKER-USER")
			ipt("-I", "FORWARD", "-j", "DOCKER-USER")
			ipt("-t", "nat", "-F", "PREROUTING")
			ipt("-A", ChainAllow, "-o", "ds-gone", "-j", "ACCEPT")
			if holds(t, ns, b, s) {
				t.Fatal("drift counts as in place")
			}
			in(t, ns, b, func(fw *Firewall) error { return fw.Apply(s) })
			if fixed := save(t, ns, b); fixed != got {
				t.Fatalf("Apply did not repair the drift:\n%s\nwant:\n%s", fixed, got)
			}

			// The last network gone: Docker's rules as they were, and the
			// policy dualstack set stays (as Docker leaves its own).
			in(t, ns, b, func(fw *Firewall) error { return fw.Apply(State{}) })
			want := strings.Replace(docker, "# "+b.command(IPv6)+"-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT", "# "+b.command(IPv6)+"-save\n*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP", 1)
			if got := save(t, ns, b); strings.Contains(got, "DUALSTACK") || !strings.Contains(got, "-A FORWARD -j DOCKER-USER\n-A FORWARD -o docker0 -j DOCKER") || got != want {
				t.Fatalf("after the last network went:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestDetect checks that the backend holding the host's rules wins, and
// that dualstack's own rules do not count.
func TestDetect(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := netnstest.New(t)
			var got Backend
			detectIn := func() {
				if err := netns.Do(ns.Path, func() error { got = detect(); return nil }); err != nil {
					t.Fatal(err)
				}
			}
			in(t, ns, b, func(fw *Firewall) error {
				return fw.Apply(State{Networks: []Network{{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4}}}})
			})
			if detectIn(); got != "" {
				t.Fatalf("detect() = %q with only dualstack's rules in %s", got, b)
			}
			sh(t, ns, b.command(IPv6), "-A", "FORWARD", "-j", "ACCEPT")
			if detectIn(); got != b {
				t.Fatalf("detect() = %q with a rule in %s", got, b.command(IPv6))
			}
		})
	}
	for in, want := range map[string]Backend{"": "", "auto": "", "NFT": BackendNFT, "legacy": BackendLegacy} {
		if got, err := ParseBackend(in); err != nil || got != want {
			t.Errorf("ParseBackend(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseBackend("iptables"); err == nil || !strings.Contains(err.Error(), "auto, nft or legacy") {
		t.Errorf("ParseBackend(iptables): %v", err)
	}
}

// TestApplyRefused: a restore the kernel refuses changes nothing of its
// family, and the error names the family and the line; when one family's
// restore fails and the other's succeeds, both hold the last good rules
// again (a port whose IPv4 half the kernel takes and whose IPv6 half it
// refuses leaves no IPv4 rule behind), and the error says so.
func TestApplyRefused(t *testing.T) {
	good := State{Networks: []Network{{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Masquerade4: true}}}
	for _, c := range []struct {
		name  string
		ports []Port
		words []string
	}{
		{"IPv4 refused", []Port{{Bridge: "ds-a", Proto: "nosuchproto", HostPort: 8080, Container: c4, ContainerPort: 80}},
			[]string{"IPv4", "nosuchproto"}},
		{"IPv4 taken, IPv6 refused", []Port{
			{Bridge: "ds-a", Proto: "tcp", HostPort: 8080, Container: c4, ContainerPort: 80},
			{Bridge: "ds-a", Proto: "nosuchproto", HostPort: 8080, Container: c6, ContainerPort: 80},
		}, []string{"IPv6", "nosuchproto", "hold the rules they had before"}},
	} {
		for _, b := range backends {
			t.Run(c.name+"/"+string(b), func(t *testing.T) {
				ns := netnstest.New(t)
				fw := New(b)
				if err := netns.Do(ns.Path, func() error { return fw.Apply(good) }); err != nil {
					t.Fatal(err)
				}
				before := save(t, ns, b)
				bad := good
				bad.Ports = c.ports
				var err error
				if e := netns.Do(ns.Path, func() error { err = fw.Apply(bad); return nil }); e != nil {
					t.Fatal(e)
				}
				for _, w := range c.words {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Fatalf("Apply of a rule the kernel refuses: %v; want it to say %q", err, w)
					}
				}
				if after := save(t, ns, b); after != before {
					t.Fatalf("a refused restore changed the rules:\n%s\nwas:\n%s", after, before)
				}
			})
		}
	}
}

// TestFollow: a change of the host's rules by another hand (a rule
// inserted on top of FORWARD, as dockerd does when it starts) has Follow
// sync within a second; with the nft backend, the Firewall's own applies
// do not.
func TestFollow(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := netnstest.New(t)
			fw := New(b)
			s := State{Networks: []Network{{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true}}}
			if err := netns.Do(ns.Path, func() error { return fw.Apply(s) }); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			changes := make(chan struct{}, 100)
			done := make(chan error, 1)
			go func() {
				done <- netns.Do(ns.Path, func() error {
					var failed error
					fw.Follow(ctx, time.Hour, func() error { changes <- struct{}{}; return nil }, func(err error) { failed = err })
					return failed
				})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Follow could not listen: %v", err)
				}
			}()
			time.Sleep(2 * legacyPoll) // the first read of the legacy rules
			if b == BackendNFT {
				s.Ports = publish("ds-a")[:2]
				if err := netns.Do(ns.Path, func() error { return fw.Apply(s) }); err != nil {
					t.Fatal(err)
				}
				select {
				case <-changes:
					t.Fatal("the Firewall's own apply was reported as another's change")
				case <-time.After(300 * time.Millisecond):
				}
			}
			for len(changes) > 0 {
				<-changes
			}
			start := time.Now()
			sh(t, ns, b.command(IPv4), "-I", "FORWARD", "-j", "ACCEPT")
			select {
			case <-changes:
				t.Logf("reported after %s", time.Since(start).Round(time.Millisecond))
			case <-time.After(time.Second):
				t.Fatal("a rule inserted on top of FORWARD was not reported within 1s")
			}
			if ok := holds(t, ns, b, s); ok {
				t.Fatal("the hook is no longer first, yet the rules count as in place")
			}
		})
	}
}
