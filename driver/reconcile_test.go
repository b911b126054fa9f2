package driver

import (
	"errors"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/driver/netns/netnstest"
	"github.com/dualstack-net/dualstack/driver/sandbox"
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
		if _, err := h.ipam.RequestAddress(&ipam.RequestAddressRequest{PoolID: h.poolID(s), Options: map[string]string{"com.docker.network.endpoint.macaddress": "02:42:c0:00:02:03"}}); err != nil {
			t.Fatal(err)
		}
	}
	h.restart()
	h.d.CollectStale(50 * time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	for _, s := range []string{v4, v6} {
		var owners []string
		for _, o := range h.ipam.Allocations(h.poolID(s)) {
			owners = append(owners, o)
		}
		sort.Strings(owners)
		if got := strings.Join(owners, " "); got != "02:42:c0:00:02:02 gateway:auto" {
			t.Errorf("%s allocations after collection: %s", s, got)
		}
	}
}
