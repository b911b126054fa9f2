package firewall

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/driver/netns"
	"github.com/dualstack-net/dualstack/driver/netns/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// save returns iptables-save (or ip6tables-save) of the filter table in ns.
func save(t *testing.T, ns netnstest.NS, cmd string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, cmd, "-t", "filter").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-A ") || strings.HasPrefix(l, ":DUALSTACK") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func TestRules(t *testing.T) {
	ns := netnstest.New(t)
	in := func(fn func(r *Rules) error) {
		t.Helper()
		if err := netns.Do(ns.Path, func() error {
			r, err := New()
			if err != nil {
				return err
			}
			return fn(r)
		}); err != nil {
			t.Fatal(err)
		}
	}
	// A rule of someone else's comes first in FORWARD, as Docker's would.
	if out, err := exec.Command("ip", "netns", "exec", ns.Name, "iptables", "-A", "FORWARD", "-j", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	a, b := Network{Bridge: "ds-a"}, Network{Bridge: "ds-b", Internal: true}
	in(func(r *Rules) error { return r.Add(a) })
	in(func(r *Rules) error { return r.Add(a) }) // idempotent
	in(func(r *Rules) error { return r.Add(b) })
	want4 := strings.Join([]string{
		":DUALSTACK-FORWARD - [0:0]",
		"-A FORWARD -j DUALSTACK-FORWARD",
		"-A FORWARD -j DROP",
		"-A DUALSTACK-FORWARD -i ds-a -o ds-a -j ACCEPT",
		"-A DUALSTACK-FORWARD -i ds-a ! -o ds-a -j ACCEPT",
		"-A DUALSTACK-FORWARD -o ds-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A DUALSTACK-FORWARD -i ds-b -o ds-b -j ACCEPT",
	}, "\n")
	if got := save(t, ns, "iptables-save"); got != want4 {
		t.Fatalf("iptables-save:\n%s\nwant:\n%s", got, want4)
	}
	if got := save(t, ns, "ip6tables-save"); !strings.Contains(got, "-A DUALSTACK-FORWARD -i ds-b -o ds-b -j ACCEPT") || !strings.HasPrefix(strings.SplitN(got, "\n", 2)[1], "-A FORWARD -j DUALSTACK-FORWARD") {
		t.Fatalf("ip6tables-save:\n%s", got)
	}
	// Restarts rebuild the chain without duplicates.
	for i := 0; i < 3; i++ {
		in(func(r *Rules) error { return r.Reset([]Network{a, b}) })
	}
	if got := save(t, ns, "iptables-save"); got != want4 {
		t.Fatalf("after resets:\n%s", got)
	}
	in(func(r *Rules) error { return r.Remove(a) })
	in(func(r *Rules) error { return r.Remove(a) })
	if got := save(t, ns, "iptables-save"); strings.Contains(got, "ds-a") || !strings.Contains(got, "ds-b") {
		t.Fatalf("after remove:\n%s", got)
	}
}
