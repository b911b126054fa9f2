package driver

import (
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/driver/netapi"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// TestInterfaceName follows `docker run --network
// name=N,driver-opt=com.docker.network.endpoint.ifname=wan0` (compose
// interface_name): Join answers the name as the interface's DstName, the
// interface renamed so gets every address (the extra IPv6 one too), and a
// second network asking the container for the same name is refused before
// anything is recorded for the join.
func TestInterfaceName(t *testing.T) {
	h := newHarness(t)
	const nid, nid2 = "1f1f1f1f1f1f1111", "2f2f2f2f2f2f2222"
	const eid, eid2 = "3e3e3e3e3e3e3333", "4e4e4e4e4e4e4444"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, "198.51.100.0/24", "2001:db8:c::/64", "2001:db8:d::/64"))
	})
	h.in(func() error { return h.d.CreateNetwork(h.network(nid2, nil, "203.0.113.0/24")) })
	wan0 := map[string]interface{}{optIfname: "wan0"}
	h.endpointWith(wan0, nid, eid, "02:42:c6:33:64:0b", "198.51.100.0/24", "2001:db8:c::/64")
	h.endpointWith(wan0, nid2, eid2, "02:42:cb:00:71:0b", "203.0.113.0/24", "")
	if got := h.d.endpoints[eid].Ifname; got != "wan0" {
		t.Fatalf("endpoint records interface name %q, want wan0", got)
	}
	sb := netnstest.New(t)
	join := func(nid, eid string) (resp *netapi.JoinResponse, err error) {
		h.in(func() error {
			resp, err = h.d.JoinFrom(0, &api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
			return nil
		})
		return resp, err
	}
	resp, err := join(nid, eid)
	if err != nil {
		t.Fatal(err)
	}
	want := netapi.InterfaceName{SrcName: peerVethPrefix + short(eid), DstPrefix: "eth", DstName: "wan0"}
	if resp.InterfaceName != want {
		t.Fatalf("Join answers interface %+v, want %+v", resp.InterfaceName, want)
	}
	h.moveIn(sb, peerVethPrefix+short(eid), "wan0")
	if err := h.program(nid, eid); err != nil {
		t.Fatal(err)
	}
	extra := h.d.endpoints[eid].Extra[0].Addr
	found := false
	for _, a := range sb.Addrs(t, "wan0") {
		found = found || a.Prefix() == extra
	}
	if !found {
		t.Fatalf("wan0 lacks the extra address %s: %v", extra, sb.Addrs(t, "wan0"))
	}
	// Docker retrying the Join: wan0 is the endpoint's own interface.
	if _, err := join(nid, eid); err != nil {
		t.Fatalf("retried Join: %v", err)
	}

	_, err = join(nid2, eid2)
	if err == nil || !strings.Contains(err.Error(), "already has an interface named wan0") || !strings.Contains(err.Error(), optIfname) {
		t.Fatalf("second network asking for wan0: %v", err)
	}
	if c := JoinCauseOf(err); c != CauseInterfaceName {
		t.Fatalf("the refused Join's cause is %s, want %s", c, CauseInterfaceName)
	}
	if h.d.endpoints[eid2].Sandbox != "" {
		t.Fatal("the refused Join recorded the container")
	}
}

// TestInterfaceNameRefused: a name Linux or the firewall cannot take, or
// the loopback's, is refused at CreateEndpoint with the option's name, and
// nothing is left: no record, no link.
func TestInterfaceNameRefused(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "5f5f5f5f5f5f5555", "6e6e6e6e6e6e6666"
	h.in(func() error { return h.d.CreateNetwork(h.network(nid, nil, "198.51.100.0/24")) })
	for _, name := range []interface{}{"bad/name", "sixteen-chars-xx", "lo", "wan+", "-x", 7} {
		var err error
		h.in(func() error {
			_, err = h.d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid,
				Interface: &api.EndpointInterface{MacAddress: "02:42:c6:33:64:0c", Address: "198.51.100.12/24"},
				Options:   map[string]interface{}{optIfname: name}})
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), optIfname) {
			t.Errorf("interface name %v: %v", name, err)
		}
		if _, ok := h.d.endpoints[eid]; ok {
			t.Fatalf("interface name %v: the refused endpoint is recorded", name)
		}
		if _, ok := h.host.Link(t, peerVethPrefix+short(eid)); ok {
			t.Fatalf("interface name %v: the refused endpoint left its veth", name)
		}
	}
}
