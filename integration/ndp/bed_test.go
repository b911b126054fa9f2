//go:build integration

package ndp

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// The test bed itself, before any network: the host, the router and the
// neighbour reach each other on the link, the router has no route to the
// host's sub-prefixes, and the host proxies nothing.
func TestOnLinkBed(t *testing.T) {
	b := harness.NewOnLink(t)
	for _, p := range []struct {
		from, fromNS, to string
	}{
		{"the router", b.Router.Path, harness.OnLinkHost},
		{"the router", b.Router.Path, harness.OnLinkNeighbour},
		{"the neighbour", b.Neighbour.Path, harness.OnLinkRouter},
		{"the host", harness.EngineNetns(), harness.OnLinkRouter},
	} {
		if err := netnstest.Ping(p.fromNS, netip.MustParseAddr(p.to), 2*time.Second); err != nil {
			t.Errorf("%s cannot ping %s: %v", p.from, p.to, err)
		}
	}
	if n := b.RouterNeigh(t, harness.OnLinkNeighbour); n.LLAddr != b.NeighbourMAC {
		t.Errorf("the router's entry for the neighbour %s: %+v, want the neighbour's MAC %s", harness.OnLinkNeighbour, n, b.NeighbourMAC)
	}
	// On-link: straight out of the link, no gateway.
	out, err := exec.Command("ip", "-n", b.Router.Name, "-6", "route", "get", "2001:db8:6e:0:d0::2").CombinedOutput()
	if err != nil || strings.Contains(string(out), " via ") {
		t.Errorf("the router's route to the host's sub-prefix: %v: %s: want the /64 on-link", err, out)
	}
	if e := harness.ProxiedOn(t, harness.OnLinkIF); len(e) != 0 {
		t.Errorf("proxy entries on %s before any network: %v", harness.OnLinkIF, e)
	}
	want := []string{"net.ipv6.conf.dsnd0.proxy_ndp=0", "net.ipv6.neigh.dsnd0.proxy_delay=" + harness.OnLinkProxyDelay}
	if got := harness.NDPSysctls(t, harness.OnLinkIF); !slices.Equal(got, want) {
		t.Errorf("sysctls of %s before any network: %v, want %v", harness.OnLinkIF, got, want)
	}
}
