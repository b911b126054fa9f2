package driver

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// joinNetwork makes a network with two IPv6 subnets and an endpoint on it,
// ready to join, and returns their IDs.
func joinNetwork(h *harness) (nid, eid string) {
	nid, eid = "5656565656561111", "7878787878782222"
	req := h.network(nid, map[string]interface{}{optEnableIPv6: true}, "2001:db8:a::/64", "2001:db8:b::/64")
	h.in(func() error { return h.d.CreateNetwork(req) })
	h.endpoint(nid, eid, "02:42:00:00:00:0a", "", "2001:db8:a::/64")
	return nid, eid
}

// TestExternalConnectivityBounded: on current engines the container's
// process starts after ProgramExternalConnectivity; if its interface
// cannot be configured, the call fails within the bound, saying what it
// waited for, instead of holding the container's start.
func TestExternalConnectivityBounded(t *testing.T) {
	h := newHarness(t)
	nid, eid := joinNetwork(h)
	h.d.joins.connectivity = 300 * time.Millisecond
	stuck := make(chan struct{})
	defer close(stuck)
	h.d.joins.configure = func(string, sandbox.InterfaceMatch, []netip.Prefix, sandbox.RA) error {
		<-stuck
		return nil
	}
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	h.moveIn(sb, "dsc787878787878", "eth0", "2001:db8:a::2/64")
	start := time.Now()
	err := h.d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "configuring the container's interface") || !strings.Contains(err.Error(), sb.Path) {
		t.Fatalf("ProgramExternalConnectivity with a configuration that never ends: %v", err)
	}
	if took > 2*time.Second {
		t.Fatalf("ProgramExternalConnectivity took %s with a bound of 300ms", took)
	}
}

// TestJoinReportsAbsentNamespace: a container whose namespace is not there
// a moment after Join (Engine 20.10 mounts it while the container starts)
// is reported at error level, by endpoint, with why it may be missing; the
// join goes on waiting, and finishes when the namespace comes after all.
func TestJoinReportsAbsentNamespace(t *testing.T) {
	h := newHarness(t)
	nid, eid := joinNetwork(h)
	logger, hook := logtest.NewNullLogger()
	h.d.log = logger
	h.d.joins.grace = 200 * time.Millisecond
	key := filepath.Join(t.TempDir(), "sandbox")
	if err := os.WriteFile(key, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: key})
		return err
	})
	joined := time.Now()
	var line *logrus.Entry
	for line == nil && time.Since(joined) < 5*time.Second {
		for _, e := range hook.AllEntries() {
			if e.Level == logrus.ErrorLevel {
				line = e
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if line == nil {
		t.Fatal("no error line 5 s after a Join whose namespace is not there")
	}
	if line.Data["endpoint"] != eid[:12] || line.Data["sandbox"] != key || !strings.Contains(line.Message, "has not started yet") {
		t.Fatalf("error line %q %v: want the endpoint, the sandbox key and a cause", line.Message, line.Data)
	}
	// The namespace comes late: the join finishes.
	sb := netnstest.New(t)
	h.moveIn(sb, "dsc787878787878", "eth0", "2001:db8:a::2/64")
	if err := unix.Mount(sb.Path, key, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(key, unix.MNT_DETACH) })
	deadline := time.Now().Add(5 * time.Second)
	for !hasAddr(sb.Addrs(t, "eth0"), "2001:db8:b::2") {
		if time.Now().After(deadline) {
			t.Fatalf("the late namespace did not get its extra address: %+v", sb.Addrs(t, "eth0"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hasAddr(addrs []netnstest.Addr, a string) bool {
	for _, x := range addrs {
		if x.Local == a {
			return true
		}
	}
	return false
}

// TestJoinRefusedWhenUnreachable: where the plugin knows at start that it
// cannot reach the namespaces Docker creates (here: asked to look through
// a run mount that is no mount point), Join fails at once with the cause
// and the remedy, and records nothing.
func TestJoinRefusedWhenUnreachable(t *testing.T) {
	h := newHarness(t)
	nid, eid := joinNetwork(h)
	h.d.sandboxes = sandboxkey.New(sandboxkey.Config{Want: sandboxkey.Mount, HostRun: "/run", RunMount: t.TempDir()})
	sb := netnstest.New(t)
	start := time.Now()
	var err error
	h.in(func() error {
		_, err = h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), eid[:12]) || !strings.Contains(err.Error(), sandboxkey.Remedy) || time.Since(start) > time.Second {
		t.Fatalf("Join with unreachable namespaces: %v after %s", err, time.Since(start))
	}
	if ep := h.d.endpoints[eid]; ep.Sandbox != "" || len(h.d.joins.pending) != 0 {
		t.Fatalf("a refused Join left a record: sandbox %q, %d pending", ep.Sandbox, len(h.d.joins.pending))
	}
}

// TestJoinsSettled: JoinsSettled returns once the container side of every
// join is done, at Join (its configuration slowed down here) and after a
// restart for the joins ResumeJoins resumed; a join that failed is its
// error, naming the endpoint.
func TestJoinsSettled(t *testing.T) {
	h := newHarness(t)
	nid, eid := joinNetwork(h)
	configure := h.d.joins.configure
	h.d.joins.configure = func(ns string, m sandbox.InterfaceMatch, addrs []netip.Prefix, ra sandbox.RA) error {
		time.Sleep(200 * time.Millisecond)
		return configure(ns, m, addrs, ra)
	}
	sb := netnstest.New(t)
	join := func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	}
	h.in(join)
	h.moveIn(sb, "dsc787878787878", "eth0", "2001:db8:a::2/64")
	settled := func(when string) {
		t.Helper()
		if err := h.d.JoinsSettled(); err != nil {
			t.Fatalf("JoinsSettled %s: %v", when, err)
		}
		if !hasAddr(sb.Addrs(t, "eth0"), "2001:db8:b::2") {
			t.Fatalf("JoinsSettled %s returned before the extra address was there: %+v", when, sb.Addrs(t, "eth0"))
		}
	}
	settled("after Join")

	// The extra address lost while the plugin was down: the resumed join
	// puts it back.
	sb.IP(t, "addr", "del", "2001:db8:b::2/64", "dev", "eth0")
	h.restart()
	settled("after a restart")

	h.d.joins.configure = func(string, sandbox.InterfaceMatch, []netip.Prefix, sandbox.RA) error {
		return errors.New("refused by the test")
	}
	h.in(join)
	if err := h.d.JoinsSettled(); err == nil || !strings.Contains(err.Error(), eid[:12]) || !strings.Contains(err.Error(), "refused by the test") {
		t.Fatalf("JoinsSettled after a join that failed: %v", err)
	}
}
