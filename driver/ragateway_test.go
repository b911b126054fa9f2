package driver

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/mdlayher/ndp"

	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// advertiseFrom has a router namespace send router advertisements on dev
// from its link-local address every 200 ms until the test ends, and
// returns that address.
func advertiseFrom(t *testing.T, router netnstest.NS, dev string) netip.Addr {
	t.Helper()
	var c *ndp.Conn
	var ll netip.Addr
	if err := netns.Do(router.Path, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		ifi.Name = strconv.Itoa(ifi.Index)
		c, ll, err = ndp.Listen(ifi, ndp.LinkLocal)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(stop); <-done; c.Close() })
	go func() {
		defer close(done)
		for {
			_ = c.WriteTo(&ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 1800 * time.Second}, nil, netip.IPv6LinkLocalAllNodes())
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return ll.WithZone("")
}

// TestMacvlanRouterGateway: a macvlan network whose IPv6 subnet has no
// gateway and whose containers accept router advertisements gives Docker
// the parent's advertising router as the container's IPv6 gateway; the
// default route Docker adds for it and the advertised one both stay.
// Without accept_ra, or without a router on the parent, Join names none,
// and only the first join waits for one.
func TestMacvlanRouterGateway(t *testing.T) {
	h := newHarness(t)
	router := netnstest.New(t)
	h.host.IP(t, "link", "add", "dstpar", "type", "veth", "peer", "name", "dstlan", "netns", router.Name)
	h.host.IP(t, "link", "add", "dstquiet", "type", "veth", "peer", "name", "dstquiet1")
	router.SetSysctl(t, "net/ipv6/conf/dstlan/accept_dad", "0")
	router.IP(t, "link", "set", "dstlan", "up")
	for _, l := range []string{"dstpar", "dstquiet", "dstquiet1"} {
		h.host.IP(t, "link", "set", l, "up")
	}
	ll := advertiseFrom(t, router, "dstlan")

	join := func(nid, parent, acceptRA, subnet, eid, mac string) (*api.JoinResponse, time.Duration, netnstest.NS) {
		t.Helper()
		opts := map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"mode": "macvlan", "parent": parent, "accept_ra": acceptRA}}
		req := h.network(nid, opts, subnet)
		h.in(func() error { return h.d.CreateNetwork(req) })
		h.endpoint(nid, eid, mac, "", subnet)
		sb := netnstest.New(t)
		var resp *api.JoinResponse
		start := time.Now()
		h.in(func() (err error) {
			resp, err = h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
			return err
		})
		return resp, time.Since(start), sb
	}

	resp, _, sb := join("aaaa0000000000a1", "dstpar", "1", "2001:db8:1::/64", "ee01000000000000", "02:42:c0:00:02:11")
	if resp.GatewayIPv6 != ll.String() || resp.Gateway != "" {
		t.Fatalf("Join's gateways %q %q, want the router's link-local %s for IPv6 only", resp.Gateway, resp.GatewayIPv6, ll)
	}
	// Docker's part: the interface in the container, up, and a default
	// route through the gateway Join named.
	h.moveIn(sb, "dscee0100000000", "eth0")
	sb.IP(t, "-6", "route", "add", "default", "via", resp.GatewayIPv6, "dev", "eth0")
	var routes string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if routes = string(sb.IP(t, "-6", "route", "show", "default")); strings.Contains(routes, "proto ra") {
			break
		}
	}
	if !strings.Contains(routes, "metric 1024") || !strings.Contains(routes, "proto ra metric "+strconv.Itoa(sandbox.RADefaultMetric)) {
		t.Errorf("container default routes:\n%s\nwant Docker's (metric 1024) and the advertised one below it", routes)
	}

	resp, _, _ = join("aaaa0000000000a2", "dstpar", "0", "2001:db8:2::/64", "ee02000000000000", "02:42:c0:00:02:12")
	if resp.GatewayIPv6 != "" {
		t.Errorf("accept_ra=0: Join's IPv6 gateway %q, want none", resp.GatewayIPv6)
	}
	resp, took, _ := join("aaaa0000000000a3", "dstquiet", "1", "2001:db8:3::/64", "ee03000000000000", "02:42:c0:00:02:13")
	if resp.GatewayIPv6 != "" || took > 2*raGatewayWait {
		t.Errorf("no router on the parent: Join's IPv6 gateway %q after %s, want none within %s", resp.GatewayIPv6, took, raGatewayWait)
	}
	h.endpoint("aaaa0000000000a3", "ee04000000000000", "02:42:c0:00:02:14", "", "2001:db8:3::/64")
	start := time.Now()
	h.in(func() (err error) {
		resp, err = h.d.Join(&api.JoinRequest{NetworkID: "aaaa0000000000a3", EndpointID: "ee04000000000000", SandboxKey: netnstest.New(t).Path})
		return err
	})
	if took := time.Since(start); resp.GatewayIPv6 != "" || took > raGatewayWait/2 {
		t.Errorf("no router on the parent, second join: IPv6 gateway %q after %s, want none at once", resp.GatewayIPv6, took)
	}

	// A restarted plugin follows the routers again.
	h.restart()
	h.endpoint("aaaa0000000000a1", "ee05000000000000", "02:42:c0:00:02:15", "", "2001:db8:1::/64")
	h.in(func() (err error) {
		resp, err = h.d.Join(&api.JoinRequest{NetworkID: "aaaa0000000000a1", EndpointID: "ee05000000000000", SandboxKey: netnstest.New(t).Path})
		return err
	})
	if resp.GatewayIPv6 != ll.String() {
		t.Errorf("after a restart: Join's IPv6 gateway %q, want %s", resp.GatewayIPv6, ll)
	}
}
