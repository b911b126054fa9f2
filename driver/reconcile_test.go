package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// TestRestartFinishesJoin: a plugin killed between Join and the
// container side of it (here: its configuration never succeeds) leaves the
// container without its extra address; the next start puts it there.
func TestRestartFinishesJoin(t *testing.T) {
	h := newHarness(t)
	const nid, eid, mac = "eeeeeeeeeeee6666", "abababababab7777", "02:42:c0:00:02:08"
	v4, v6a, v6b := "192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6a, v6b))
	})
	h.endpoint(nid, eid, mac, v4, v6a)
	h.d.joins.configure = func(string, sandbox.InterfaceMatch, []netip.Prefix, sandbox.RA) error {
		return errors.New("the plugin was killed")
	}
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	h.moveIn(sb, "dscabababababab", "eth0", "192.0.2.2/24", "2001:db8:1::2/64")
	has := func() bool {
		for _, a := range sb.Addrs(t, "eth0") {
			if a.Local == "2001:db8:2::2" {
				return true
			}
		}
		return false
	}
	time.Sleep(100 * time.Millisecond)
	if has() {
		t.Fatal("the extra address arrived although configuration failed")
	}
	h.d.joins.cancel(eid)
	h.restart()
	for i := 0; i < 100 && !has(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !has() {
		t.Fatalf("after a restart the container still lacks 2001:db8:2::2: %+v", sb.Addrs(t, "eth0"))
	}
}

// TestCollectStale: an address Docker requested for a container whose
// endpoint never came (the plugin was down when Docker gave it back) is
// released after the grace period; gateways and endpoints' addresses stay.
func TestCollectStale(t *testing.T) {
	h := newHarness(t)
	const nid = "cdcdcdcdcdcd8888"
	v4, v6 := "192.0.2.0/24", "2001:db8:1::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6))
	})
	h.endpoint(nid, "efefefefefef9999", "02:42:c0:00:02:02", v4, v6)
	// The lost container: addresses requested, no endpoint.
	for _, s := range []string{v4, v6} {
		if _, err := h.book.RequestAddress(h.poolID(s), "", addrbook.MACOwner("02:42:c0:00:02:03")); err != nil {
			t.Fatal(err)
		}
	}
	h.restart()
	h.book.CollectStale(50 * time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	for _, s := range []string{v4, v6} {
		var owners []string
		for _, o := range h.book.Allocations(h.poolID(s)) {
			owners = append(owners, o.String())
		}
		sort.Strings(owners)
		if got := strings.Join(owners, " "); got != "02:42:c0:00:02:02 gateway:auto" {
			t.Errorf("%s allocations after collection: %s", s, got)
		}
	}
}

// TestResumeNotHeldUp: at a restart, joined endpoints whose interface is
// not in their container (it left the network while the plugin was down)
// must not keep the others' resumed joins waiting: here two of them take
// both of the resumed joins' tokens first, and the third container, whose
// namespace appears a moment later (Engine 20.10 starting it), still gets
// its extra address within seconds, not after the join timeout.
func TestResumeNotHeldUp(t *testing.T) {
	h := newHarness(t)
	const nid = "acacacacacac1111"
	v4, v6a, v6b := "192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6a, v6b))
	})
	join := func(eid, mac, key string) {
		h.endpoint(nid, eid, mac, v4, v6a)
		h.in(func() error {
			_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: key})
			return err
		})
		h.d.joins.cancel(eid) // the plugin dies before the container side
	}
	for i, eid := range []string{"a1a1a1a1a1a11111", "a2a2a2a2a2a22222"} {
		join(eid, fmt.Sprintf("02:42:c0:00:02:%02x", 10+i), netnstest.New(t).Path)
	}
	// The third container's namespace is mounted at its key only after the
	// restart, as Engine 20.10 does when it starts a container.
	sb := netnstest.New(t)
	key := filepath.Join(t.TempDir(), "c3")
	const eid = "a3a3a3a3a3a33333"
	join(eid, "02:42:c0:00:02:20", key)
	h.moveIn(sb, "dsca3a3a3a3a3a3", "eth0", "192.0.2.4/24", "2001:db8:1::4/64")

	h.restart()
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(key, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(sb.Path, key, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(key, unix.MNT_DETACH) })
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		for _, a := range sb.Addrs(t, "eth0") {
			if a.Local == "2001:db8:2::4" {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after 5 s the third container still lacks 2001:db8:2::4: %+v", sb.Addrs(t, "eth0"))
}
