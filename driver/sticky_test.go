package driver

import (
	"net/netip"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/addrbook"
)

// TestStickyNetworkKeepsEveryAddress: in a sticky network, a container
// that goes and comes back under its name gets its addresses again in
// every subnet, the extra IPv6 subnet included, from another endpoint
// and MAC; a container of another name started meanwhile gets others.
func TestStickyNetworkKeepsEveryAddress(t *testing.T) {
	h := newHarness(t)
	const nid = "571c4y0000000000000000000000000000000000000000000000000000000001"
	subnets := []string{"198.51.100.0/24", "2001:db8:51::/64", "2001:db8:52::/64"}
	req := h.network(nid, map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"sticky_addresses": "true", "sticky_hold": "2h"}}, subnets...)
	h.in(func() error { return h.d.CreateNetwork(req) })
	// Docker asks for the IPv4 and the first IPv6 subnet's addresses,
	// with the container's name.
	create := func(eid, mac, name string) string {
		t.Helper()
		in := &api.EndpointInterface{MacAddress: mac}
		for _, s := range subnets[:2] {
			r, err := h.book.RequestNamedAddress(h.poolID(s), "", addrbook.MACOwner(mac), name)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(s, ":") {
				in.AddressIPv6 = r.String()
			} else {
				in.Address = r.String()
			}
		}
		h.in(func() error {
			_, err := h.d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: in})
			return err
		})
		info, err := h.d.EndpointInfo(&api.InfoRequest{NetworkID: nid, EndpointID: eid})
		if err != nil {
			t.Fatal(err)
		}
		return info.Value["addresses"]
	}
	remove := func(eid string) {
		t.Helper()
		addrs := h.d.endpoints[eid].addresses()
		h.in(func() error { return h.d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}) })
		for _, a := range addrs[:2] { // Docker's, given back
			for _, s := range subnets {
				if netip.MustParsePrefix(s).Contains(a.Addr()) {
					if err := h.giveAddrBack(h.poolID(s), a.Addr().String()); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	web := create("e1e1e1e1e1e1e1e1", "02:42:c6:33:64:01", "web")
	if n := len(strings.Split(web, ",")); n != 3 {
		t.Fatalf("web's addresses %s: want one in each of the 3 subnets", web)
	}
	remove("e1e1e1e1e1e1e1e1")
	h.restart() // the reservations survive it
	other := create("e2e2e2e2e2e2e2e2", "02:42:c6:33:64:02", "other")
	for _, a := range strings.Split(other, ",") {
		if strings.Contains(web, strings.Split(a, "/")[0]+"/") {
			t.Fatalf("another container got %s, kept for web (%s)", a, web)
		}
	}
	if again := create("e3e3e3e3e3e3e3e3", "02:42:c6:33:64:03", "web"); again != web {
		t.Fatalf("web came back with %s, want %s", again, web)
	}
}
