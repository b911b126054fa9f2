//go:build integration

package bgp

import (
	"fmt"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// TestBGPBed checks the routed bed itself: the router has a session for
// each host; each host reaches etcd (its plugin registered), the router,
// and through it the other hosts; and nothing more: with no default route,
// what the hosts' containers reach beyond the bed's links is up to the
// routes learned over BGP.
func TestBGPBed(t *testing.T) {
	protos := harness.Bed.BirdProtocols(t)
	t.Logf("router's sessions: host1 %q, host2 %q, host3 %q", protos["host1"], protos["host2"], protos["host3"])
	harness.Within(t, 30*time.Second, func() error {
		live := map[string]bool{}
		for _, n := range harness.ClusterStatus(t).Nodes {
			live[n.Name] = n.Alive
		}
		for _, h := range harness.Bed.Hosts {
			if !live[h.Name] {
				time.Sleep(time.Second)
				return fmt.Errorf("%s is not a live node in the store: its plugin did not reach etcd at %s", h.Name, harness.Bed.Endpoint())
			}
		}
		return nil
	})
	for i, h := range harness.Bed.Hosts {
		if _, ok := protos[h.Name]; !ok {
			t.Errorf("the router has no session %s: %v", h.Name, protos)
		}
		other := harness.Bed.Hosts[(i+1)%len(harness.Bed.Hosts)]
		for _, a := range []netip.Addr{harness.Bed.Router4(h), harness.Bed.Router6(h), other.Addr4, other.Addr6} {
			if out, err := exec.Command("ip", "netns", "exec", h.Engine.Netns, "busybox", "ping", "-c1", "-W2", a.String()).CombinedOutput(); err != nil {
				routes, _ := exec.Command("ip", "-n", h.Engine.Netns, "route", "show", "table", "all").CombinedOutput()
				t.Errorf("%s cannot ping %s: %v\n%s\nits routes:\n%s", h.Name, a, err, out, routes)
			}
		}
		for _, a := range []string{"198.19.77.1", "fd00:77::1"} {
			out, err := exec.Command("ip", "-n", h.Engine.Netns, "route", "get", a).CombinedOutput()
			switch {
			case h.Link.DefaultGateway && err != nil:
				t.Errorf("%s has no route to %s, yet the router is its default gateway: %v %s", h.Name, a, err, out)
			case !h.Link.DefaultGateway && err == nil:
				t.Errorf("%s has a route to %s, beyond the bed's links, with no BGP route learned: %s", h.Name, a, out)
			}
		}
	}
}
