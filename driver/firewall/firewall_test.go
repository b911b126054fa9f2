package firewall

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/driver/netns"
	"github.com/dualstack-net/dualstack/driver/netns/netnstest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the rules programmed now")

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

var backends = []Backend{BackendNFT, BackendLegacy}

// in runs fn with a Firewall of backend inside ns.
func in(t *testing.T, ns netnstest.NS, b Backend, fn func(fw *Firewall) error) {
	t.Helper()
	if err := netns.Do(ns.Path, func() error {
		fw, err := New(b)
		if err != nil {
			return err
		}
		return fn(fw)
	}); err != nil {
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

// save returns what iptables-save and ip6tables-save of b print in ns for
// the tables dualstack uses, without comments and with zeroed counters:
// what a user would look at.
func save(t *testing.T, ns netnstest.NS, b Backend) string {
	t.Helper()
	var out []string
	for _, f := range []Family{IPv4, IPv6} {
		tables := []string{"filter", "nat"}
		if f == IPv4 {
			tables = append(tables, "raw")
		}
		out = append(out, "# "+strings.TrimSuffix(b.command(f), "-"+string(b))+"-save")
		for _, table := range tables {
			for _, l := range strings.Split(sh(t, ns, b.command(f)+"-save", "-t", table), "\n") {
				if l == "" || strings.HasPrefix(l, "#") {
					continue
				}
				out = append(out, counters.ReplaceAllString(l, "[0:0]"))
			}
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("rules differ from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

var (
	subnet4  = netip.MustParsePrefix("192.0.2.0/24")
	subnet6a = netip.MustParsePrefix("fd00:1::/64")
	subnet6b = netip.MustParsePrefix("fd00:2::/64")
	c4       = netip.MustParseAddr("192.0.2.2")
	c6       = netip.MustParseAddr("fd00:1::2")
)

// publish is what `docker run -p 8080:80 -p 127.0.0.1:8081:80 -p
// [::]:8082:80 -p 5353:53/udp` publishes for a container with c4 and c6.
func publish(bridge string) []Port {
	return []Port{
		{Bridge: bridge, Proto: "tcp", HostPort: 8080, Container: c4, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostPort: 8080, Container: c6, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8081, Container: c4, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostIP: netip.IPv6Unspecified(), HostPort: 8082, Container: c6, ContainerPort: 80},
		{Bridge: bridge, Proto: "udp", HostPort: 5353, Container: c4, ContainerPort: 53},
		{Bridge: bridge, Proto: "udp", HostPort: 5353, Container: c6, ContainerPort: 53},
	}
}

// TestGolden programs every combination of ipv6_mode, icc, ip_masquerade,
// internal and published ports in a fresh namespace, with each backend,
// and compares both families' rules with one golden file per combination:
// the two backends must give the same rules.
func TestGolden(t *testing.T) {
	netnstest.Skip(t)
	for _, nat6 := range []bool{false, true} {
		for _, icc := range []bool{true, false} {
			for _, masq := range []bool{true, false} {
				for _, internal := range []bool{false, true} {
					for _, ports := range []bool{false, true} {
						n := Network{Bridge: "ds-golden", Subnets: []netip.Prefix{subnet4, subnet6a, subnet6b}, Internal: internal, ICC: icc, Masquerade4: masq, NAT6: nat6}
						name := fmt.Sprintf("ipv6_mode=%s,icc=%t,ip_masquerade=%t,internal=%t,ports=%t", map[bool]string{false: "routed", true: "nat"}[nat6], icc, masq, internal, ports)
						t.Run(name, func(t *testing.T) {
							for _, b := range backends {
								ns := netnstest.New(t)
								in(t, ns, b, func(fw *Firewall) error {
									if err := fw.AddNetwork(n); err != nil {
										return err
									}
									if ports && !internal {
										return fw.AddPorts(publish(n.Bridge))
									}
									return nil
								})
								got := save(t, ns, b)
								// Written with nft, compared with both.
								if *update && b == BackendLegacy {
									continue
								}
								golden(t, name+".golden", got)
							}
						})
					}
				}
			}
		}
	}
}

// TestLifecycle checks, with each backend, what a host sees over time:
// hooks ahead of Docker's rules and kept when Docker re-creates its own,
// restarts (Reset) that neither duplicate nor lose a rule and repair drift,
// revoking one network's or one container's rules only, and nothing left
// after Cleanup.
func TestLifecycle(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := netnstest.New(t)
			ipt := func(args ...string) { sh(t, ns, append([]string{b.command(IPv4)}, args...)...) }
			// Docker's hooks and policy, as dockerd leaves them.
			ipt("-N", "DOCKER-USER")
			ipt("-A", "FORWARD", "-j", "DOCKER-USER")
			ipt("-P", "FORWARD", "DROP")
			a := Network{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Masquerade4: true}
			other := Network{Bridge: "ds-b", Subnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Internal: true}
			ports := publish(a.Bridge)
			in(t, ns, b, func(fw *Firewall) error {
				if err := fw.AddNetwork(a); err != nil {
					return err
				}
				if err := fw.AddNetwork(other); err != nil {
					return err
				}
				return fw.AddPorts(ports)
			})
			want := save(t, ns, b)
			if !strings.Contains(want, "-A FORWARD -j DUALSTACK-FORWARD\n-A FORWARD -j DOCKER-USER\n") {
				t.Fatalf("the FORWARD hook is not ahead of Docker's:\n%s", want)
			}

			// Adding again changes nothing.
			in(t, ns, b, func(fw *Firewall) error {
				if err := fw.AddNetwork(a); err != nil {
					return err
				}
				return fw.AddPorts(ports)
			})
			if got := save(t, ns, b); got != want {
				t.Fatalf("adding again changed the rules:\n%s", got)
			}

			// In place, as one iptables-save shows: a restart needs no more.
			in(t, ns, b, func(fw *Firewall) error {
				rss := fw.snapshot()
				for _, f := range []Family{IPv4, IPv6} {
					rs := rss[f]
					if rs.clean(f) {
						t.Errorf("%s: dualstack's chains count as absent", b.command(f))
					}
					if !rs.holds(f, wanted(f, []Network{a, other}, ports)) {
						t.Errorf("%s: the rules in place do not count as in place:\n%s", b.command(f), want)
					}
					if rs.holds(f, wanted(f, []Network{a}, ports)) {
						t.Errorf("%s: the rules of a removed network count as in place", b.command(f))
					}
				}
				return nil
			})

			// Ten restarts.
			for i := 0; i < 10; i++ {
				in(t, ns, b, func(fw *Firewall) error { return fw.Reset([]Network{a, other}, ports) })
			}
			if got := save(t, ns, b); got != want {
				t.Fatalf("after 10 resets:\n%s\nwant:\n%s", got, want)
			}

			// Drift: a stale rule, a duplicate, a lost rule, Docker putting
			// its hook back on top and a firewall manager flushing nat.
			ipt("-A", ChainAllow, "-o", "ds-gone", "-j", "ACCEPT")
			ipt("-A", ChainDrop, "-o", "ds-a", "-j", "DROP")
			ipt("-D", ChainForward, "-i", "ds-a", "!", "-o", "ds-a", "-j", "ACCEPT")
			ipt("-D", "FORWARD", "-j", "DOCKER-USER")
			ipt("-I", "FORWARD", "-j", "DOCKER-USER")
			ipt("-t", "nat", "-F", "PREROUTING")
			in(t, ns, b, func(fw *Firewall) error { return fw.EnsureHooks() })
			got := save(t, ns, b)
			if !strings.Contains(got, "-A FORWARD -j DOCKER-USER\n-A FORWARD -j DUALSTACK-FORWARD\n") || strings.Count(got, "-j DUALSTACK-FORWARD") != 2 {
				t.Fatalf("EnsureHooks moved or duplicated the FORWARD hook:\n%s", got)
			}
			if !strings.Contains(got, "-A PREROUTING -m addrtype --dst-type LOCAL -j DUALSTACK-DNAT") {
				t.Fatalf("EnsureHooks did not restore the flushed nat hook:\n%s", got)
			}
			in(t, ns, b, func(fw *Firewall) error { return fw.Reset([]Network{a, other}, ports) })
			got = save(t, ns, b)
			fixed := strings.Replace(want, "-A FORWARD -j DUALSTACK-FORWARD\n-A FORWARD -j DOCKER-USER\n", "-A FORWARD -j DOCKER-USER\n-A FORWARD -j DUALSTACK-FORWARD\n", 1)
			if got != fixed {
				t.Fatalf("Reset did not repair the drift:\n%s\nwant:\n%s", got, fixed)
			}

			// Revoking a container's ports, then a network, leaves the rest.
			in(t, ns, b, func(fw *Firewall) error { return fw.RemovePorts(ports) })
			got = save(t, ns, b)
			if strings.Contains(got, "--dport") {
				t.Fatalf("port rules left after RemovePorts:\n%s", got)
			}
			in(t, ns, b, func(fw *Firewall) error { return fw.RemoveNetwork(a) })
			got = save(t, ns, b)
			if strings.Contains(got, "ds-a") || !strings.Contains(got, "-A DUALSTACK-DROP -i ds-b -j DROP") {
				t.Fatalf("after removing ds-a:\n%s", got)
			}

			// The last network gone: no chain, no hook; Docker's rules stay.
			in(t, ns, b, func(fw *Firewall) error { return fw.Reset(nil, nil) })
			got = save(t, ns, b)
			if strings.Contains(got, "DUALSTACK") || !strings.Contains(got, "-A FORWARD -j DOCKER-USER") || !strings.Contains(got, ":FORWARD DROP") {
				t.Fatalf("after cleanup:\n%s", got)
			}
			in(t, ns, b, func(fw *Firewall) error {
				rss := fw.snapshot()
				if len(rss) != 2 {
					t.Errorf("iptables-save of %s failed for a family: %v", b, rss)
				}
				for f, rs := range rss {
					if !rs.clean(f) {
						t.Errorf("%s: a clean host does not count as clean:\n%s", b.command(f), got)
					}
				}
				return nil
			})
		})
	}
}

// TestDetectBackend checks that the backend holding the host's rules wins.
func TestDetectBackend(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			ns := netnstest.New(t)
			sh(t, ns, b.command(IPv6), "-A", "FORWARD", "-j", "ACCEPT")
			var got Backend
			if err := netns.Do(ns.Path, func() error { got = DetectBackend(); return nil }); err != nil {
				t.Fatal(err)
			}
			if got != b {
				t.Fatalf("DetectBackend() = %s with a rule in %s", got, b.command(IPv6))
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
