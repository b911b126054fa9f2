package driver

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/state"
)

// switchable is the real firewall, or one that refuses every change.
type switchable struct {
	real   Firewall
	broken bool
}

func (s *switchable) Apply(st firewall.State) error {
	if s.broken {
		return errors.New("the packet filter refused the rules")
	}
	return s.real.Apply(st)
}

func (s *switchable) Repair(st firewall.State) ([]firewall.Family, error) {
	if s.broken {
		return nil, errors.New("the packet filter refused the rules")
	}
	return s.real.Repair(st)
}

func (s *switchable) Follow(ctx context.Context, every time.Duration, sync func() error, watchFailed func(error)) {
	s.real.Follow(ctx, every, sync, watchFailed)
}

// policy is the FORWARD policy of family cmd (iptables-nft or
// ip6tables-nft) in the harness's host.
func (h *harness) policy(cmd string) string {
	h.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", h.host.Name, cmd+"-save", "-t", "filter").CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s-save: %v: %s", cmd, err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == ":FORWARD" {
			return f[1]
		}
	}
	return ""
}

// TestFailClosed: forwarding and route_localnet come only after the rules
// that guard them. A network whose rules cannot be applied is refused and
// leaves nothing (no bridge, forwarding still off); a start whose firewall
// fails keeps forwarding and route_localnet off until the periodic check
// succeeds; forwarding that dualstack turns on comes with FORWARD policy
// DROP in that family. The harness's host starts with forwarding off
// (newHarness), as after a boot, whatever the machine's own settings.
func TestFailClosed(t *testing.T) {
	h := newHarness(t)
	fw := &switchable{real: h.d.cfg.Firewall}
	h.d.cfg.Firewall = fw
	for _, k := range []string{forwardKey4, forwardKey6} {
		if got := h.host.Sysctl(t, k); got != "0" {
			t.Fatalf("%s is %s where the harness turned it off", k, got)
		}
	}
	const nid = "fcfcfcfcfcfc1111"
	req := h.network(nid, map[string]interface{}{optEnableIPv6: true}, "192.0.2.0/24", "2001:db8:1::/64")
	fw.broken = true
	var err error
	h.in(func() error { err = h.d.CreateNetwork(req); return nil })
	if err == nil || !strings.Contains(err.Error(), "refused the rules") {
		t.Fatalf("CreateNetwork with a firewall that refuses: %v", err)
	}
	if _, ok := h.host.Link(t, "ds-fcfcfcfcfcfc"); ok {
		t.Fatal("the refused network's bridge is left")
	}
	for _, k := range []string{forwardKey4, forwardKey6} {
		if got := h.host.Sysctl(t, k); got != "0" {
			t.Fatalf("%s turned on for a network the firewall does not guard", k)
		}
	}

	fw.broken = false
	h.in(func() error { return h.d.CreateNetwork(req) })
	br := "ds-fcfcfcfcfcfc"
	for _, want := range [][2]string{{forwardKey4, "1"}, {forwardKey6, "1"}, {"net/ipv4/conf/" + br + "/route_localnet", "1"}} {
		if got := h.host.Sysctl(t, want[0]); got != want[1] {
			t.Fatalf("%s = %s after CreateNetwork, want %s", want[0], got, want[1])
		}
	}
	for _, cmd := range []string{"iptables-nft", "ip6tables-nft"} {
		if p := h.policy(cmd); p != "DROP" {
			t.Fatalf("%s FORWARD policy %s after dualstack turned forwarding on, want DROP", cmd, p)
		}
	}

	// A reboot, as far as forwarding and route_localnet go, and a start
	// whose firewall fails.
	h.host.IP(t, "link", "del", br)
	for _, k := range []string{forwardKey4, forwardKey6} {
		nsRun(t, h.host, "sh", "-c", "echo 0 > /proc/sys/"+k)
	}
	fw.broken = true
	h.d.Close()
	h.db.Close()
	db, err := state.Open(h.dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	h.db = db
	cfg := h.d.cfg
	cfg.DB = db
	h.in(func() error { h.d, err = New(cfg); return err })
	for _, k := range []string{forwardKey4, forwardKey6, "net/ipv4/conf/" + br + "/route_localnet"} {
		if got := h.host.Sysctl(t, k); got != "0" {
			t.Fatalf("%s = %s after a start whose firewall failed", k, got)
		}
	}
	fw.broken = false
	h.in(func() error { return h.d.SyncFirewall() })
	for _, k := range []string{forwardKey4, forwardKey6, "net/ipv4/conf/" + br + "/route_localnet"} {
		if got := h.host.Sysctl(t, k); got != "1" {
			t.Fatalf("%s = %s once the periodic check put the firewall in place", k, got)
		}
	}
}

// TestForwardDropOptOut: FORWARD_DROP=false leaves the policy alone.
func TestForwardDropOptOut(t *testing.T) {
	h := newHarness(t)
	h.d.cfg.ForwardDrop = false
	req := h.network("fdfdfdfdfdfd2222", map[string]interface{}{optEnableIPv6: true}, "192.0.2.0/24", "2001:db8:1::/64")
	h.in(func() error { return h.d.CreateNetwork(req) })
	if h.host.Sysctl(t, forwardKey6) != "1" {
		t.Fatal("forwarding not turned on")
	}
	for _, cmd := range []string{"iptables-nft", "ip6tables-nft"} {
		if p := h.policy(cmd); p != "ACCEPT" {
			t.Fatalf("%s FORWARD policy %s with FORWARD_DROP=false", cmd, p)
		}
	}
	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: "fdfdfdfdfdfd2222"}) })
}

// nsRun runs a command in ns and returns its output.
func nsRun(t *testing.T, ns netnstest.NS, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestChooseFirewall: the backend is chosen once and recorded; when the
// host's rules move to the other backend, dualstack's rules in the old one
// are removed.
func TestChooseFirewall(t *testing.T) {
	host := netnstest.New(t)
	db, err := state.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	choose := func() *firewall.Firewall {
		var fw *firewall.Firewall
		if err := netns.Do(host.Path, func() (err error) { fw, err = ChooseFirewall(db, "", quiet()); return err }); err != nil {
			t.Fatal(err)
		}
		return fw
	}
	// The host's rules are in legacy: chosen, and kept while they are.
	nsRun(t, host, "iptables-legacy", "-A", "INPUT", "-j", "ACCEPT")
	if fw := choose(); fw.Backend() != firewall.BackendLegacy {
		t.Fatalf("first start next to legacy rules: %s", fw.Backend())
	}
	s := firewall.State{Networks: []firewall.Network{{Bridge: "ds-x", ICC: true}}}
	if err := netns.Do(host.Path, func() error { return firewall.New(firewall.BackendLegacy).Apply(s) }); err != nil {
		t.Fatal(err)
	}
	if fw := choose(); fw.Backend() != firewall.BackendLegacy {
		t.Fatalf("second start: %s", fw.Backend())
	}
	// The host moves to nft.
	nsRun(t, host, "iptables-legacy", "-D", "INPUT", "-j", "ACCEPT")
	nsRun(t, host, "iptables-nft", "-A", "INPUT", "-j", "ACCEPT")
	nsRun(t, host, "iptables-nft", "-A", "INPUT", "-j", "ACCEPT")
	if fw := choose(); fw.Backend() != firewall.BackendNFT {
		t.Fatalf("after the host moved to nft: %s", fw.Backend())
	}
	for _, cmd := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		if out := nsRun(t, host, cmd); strings.Contains(out, "DUALSTACK") {
			t.Fatalf("dualstack's rules left in the old backend:\n%s", out)
		}
	}
}
