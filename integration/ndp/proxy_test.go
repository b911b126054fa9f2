//go:build integration

package ndp

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// Acceptance: 30 containers started at once each answer the router and
// the neighbour at their global address on a published port, and nothing
// else; each reaches the router from its own address; the neighbour's
// address, inside the network's subnet, is never handed out.
func TestThirtyContainersOnTheLink(t *testing.T) {
	b := harness.NewOnLink(t)
	b.ServeSource(t)
	ndpNet(t, "ds-nd", "198.18.60.0/24", harness.OnLinkSubnet)
	start := time.Now()
	servers := harness.StartServers(t, "ds-nd", harness.ServerNames("ds-nd", 0, 30))
	t.Logf("30 containers started in %.1fs", time.Since(start).Seconds())

	wantOnTheLink(t, b, servers)
}

// wantOnTheLink checks what the router, the neighbour and the servers see
// of each other on the link.
func wantOnTheLink(t *testing.T, b *harness.OnLink, servers []server) {
	t.Helper()
	subnet := netip.MustParsePrefix(harness.OnLinkSubnet)
	neighbour := netip.MustParseAddr(harness.OnLinkNeighbour)
	for _, s := range servers {
		if s.Addr == neighbour || !subnet.Contains(s.Addr) {
			t.Errorf("%s got %s: want an address of %s other than the neighbour's %s", s.Name, s.Addr, subnet, neighbour)
		}
	}
	router := harness.HostPort(harness.OnLinkRouter, harness.OnLinkRouterPort)
	eachServer(t, servers, func(s server) error {
		if err := harness.GetBody("the router", b.Router.Path, web(s, "80"), s.Name); err != nil {
			return err
		}
		if err := harness.GetBody("the neighbour", b.Neighbour.Path, web(s, "80"), s.Name); err != nil {
			return err
		}
		// The router sees the container's own address: no NAT.
		return harness.GetBody(s.Name+" to the router", s.NS(), router, s.Addr.String())
	})

	// The neighbour keeps its address, and the router still reaches it
	// there, at the neighbour's MAC address (the host does not answer for
	// it on the link).
	if !slices.Contains(b.NeighbourAddrs(t), harness.OnLinkNeighbour) {
		t.Errorf("the neighbour lost %s: it has %v", harness.OnLinkNeighbour, b.NeighbourAddrs(t))
	}
	b.FlushRouterNeigh(t, harness.OnLinkNeighbour)
	if err := netnstest.Ping(b.Router.Path, neighbour, 2*time.Second); err != nil {
		t.Errorf("the router cannot ping the neighbour at %s: %v", neighbour, err)
	}
	if n := b.RouterNeigh(t, harness.OnLinkNeighbour); n.LLAddr != b.NeighbourMAC {
		t.Errorf("the router's entry for the neighbour's %s: %+v, want the neighbour's MAC %s (the host's is %s)", neighbour, n, b.NeighbourMAC, b.HostMAC)
	}

	// Port 81 is open (the host reaches it) but not published: nothing
	// on the link reaches it, even with the host's FORWARD policy ACCEPT.
	harness.AcceptForwarding(t)
	eachServer(t, servers, func(s server) error {
		if err := harness.Dial(harness.EngineNetns(), web(s, "81"), 2*time.Second); err != nil {
			return fmt.Errorf("the host cannot connect to %s's unpublished port: %v", s.Name, err)
		}
		if err := harness.Blocked("the router", b.Router.Path, web(s, "81")); err != nil {
			return err
		}
		return harness.Blocked("the neighbour", b.Neighbour.Path, web(s, "81"))
	})
}

// Acceptance: a container that goes is unreachable within 1 s (the host
// no longer answers for its address), and the router's entry for a new
// container's address is right before the router sends anything to it
// (the host's unsolicited neighbour advertisement).
func TestContainersComeAndGo(t *testing.T) {
	b := harness.NewOnLink(t)
	ndpNet(t, "ds-nd-go", "198.18.62.0/24", "2001:db8:6e:0:d2::/80")
	s := harness.StartServers(t, "ds-nd-go", []string{"ds-nd-go-a"})[0]
	if err := harness.GetBody("the router", b.Router.Path, web(s, "80"), s.Name); err != nil {
		t.Fatal(err)
	}
	harness.Docker(t, "rm", "-f", s.Name)
	gone := time.Now()
	harness.Within(t, time.Second, func() error {
		if slices.Contains(harness.ProxiedOn(t, harness.OnLinkIF), s.Addr) {
			return fmt.Errorf("%s still has a proxy entry 1s after docker rm -f: %v", s.Addr, harness.ProxyEntries(t))
		}
		return nil
	})
	t.Logf("the proxy entry for %s went %v after docker rm -f returned", s.Addr, time.Since(gone).Round(time.Millisecond))
	b.FlushRouterNeigh(t, s.Addr.String())
	if err := harness.Dial(b.Router.Path, web(s, "80"), time.Second); err == nil {
		t.Errorf("the router still reaches %s after docker rm -f", s.Addr)
	}
	if n := b.RouterNeigh(t, s.Addr.String()); n.LLAddr != "" {
		t.Errorf("a solicitation for %s got an answer after the container went: the router's entry %+v (the host's MAC is %s)", s.Addr, n, b.HostMAC)
	}

	// The router's cache holds a stale entry for the next address, with
	// the MAC of an earlier holder.
	next := "2001:db8:6e:0:d2::99"
	b.SetRouterNeigh(t, next, "02:00:00:00:00:01")
	n := harness.StartServers(t, "ds-nd-go", []string{"ds-nd-go-b"}, "--ip6", next)[0]
	if n.Addr.String() != next {
		t.Fatalf("%s got %s, want %s (--ip6)", n.Name, n.Addr, next)
	}
	harness.Within(t, time.Second, func() error {
		if e := b.RouterNeigh(t, next); e.LLAddr != b.HostMAC {
			return fmt.Errorf("the router's entry for %s 1s after the container started: %+v, want the host's MAC %s (no unsolicited neighbour advertisement?)", next, e, b.HostMAC)
		}
		return nil
	})
	if err := harness.GetBody("the router", b.Router.Path, web(n, "80"), n.Name); err != nil {
		t.Error(err)
	}
}
