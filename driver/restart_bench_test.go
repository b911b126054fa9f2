package driver

import (
	"fmt"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// BenchmarkRestart500 measures what a plugin start costs with 500 joined
// endpoints (two bridge networks of 250 containers, one IPv4 and three
// IPv6 subnets each, every container in its own namespace): from opening
// the state to serving (ns/op), and until every resumed join has checked
// its container again (resumed-ms).
func BenchmarkRestart500(b *testing.B) {
	const perNetwork = 250
	h := newHarness(b)
	for k, v4 := range []string{"192.0.2.0/24", "198.51.100.0/24"} {
		nid := fmt.Sprintf("%012x", 0xbe0000+k)
		v6 := []string{fmt.Sprintf("2001:db8:%d:1::/64", k), fmt.Sprintf("2001:db8:%d:2::/64", k), fmt.Sprintf("2001:db8:%d:3::/64", k)}
		h.in(func() error {
			return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, append([]string{v4}, v6...)...))
		})
		for i := 0; i < perNetwork; i++ {
			eid := fmt.Sprintf("%06x%06x", 0xe00000+k, i)
			mac := fmt.Sprintf("02:42:%02x:00:%02x:%02x", k, i>>8, i&0xff)
			h.endpoint(nid, eid, mac, v4, v6[0])
			sb := netnstest.New(b)
			h.in(func() error {
				_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
				return err
			})
			moveInFast(b, h, sb, peerVethPrefix+eid)
		}
	}
	h.waitJoins()
	b.ResetTimer()
	var resumed time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		h.restart()
		b.StopTimer()
		h.waitJoins()
		resumed += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(resumed.Milliseconds())/float64(b.N), "resumed-ms")
}

// waitJoins waits until no join watcher runs.
func (h *harness) waitJoins() {
	h.t.Helper()
	if err := h.d.JoinsSettled(); err != nil {
		h.t.Fatal(err)
	}
}

// moveInFast is harness.moveIn through netlink, for the hundreds of
// containers of a benchmark: the interface moves into the sandbox, becomes
// eth0 and comes up (the watcher needs no more than that).
func moveInFast(t testing.TB, h *harness, sb netnstest.NS, peer string) {
	t.Helper()
	target, err := vnetns.GetFromPath(sb.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	h.in(func() error {
		l, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(target))
	})
	nh, err := netlink.NewHandleAt(target)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(peer)
	if err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetName(l, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := nh.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}
