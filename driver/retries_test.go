package driver

import (
	"errors"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// TestCreateNetworkRetried: Docker retries a CreateNetwork whose answer a
// crash lost; the network exists as asked, so the retry succeeds and
// changes nothing; a different network under the same ID is refused.
func TestCreateNetworkRetried(t *testing.T) {
	h := newHarness(t)
	const nid = "abcdef0123451111"
	req := h.network(nid, map[string]interface{}{optEnableIPv6: true}, "192.0.2.0/24", "2001:db8:1::/64")
	h.in(func() error { return h.d.CreateNetwork(req) })
	before := h.host.Links(t)
	h.restart() // the crash
	h.in(func() error { return h.d.CreateNetwork(req) })
	if after := h.host.Links(t); len(after) != len(before) {
		t.Fatalf("the retried CreateNetwork changed the links: %d, then %d", len(before), len(after))
	}
	other := *req
	other.Options = map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"icc": "false"}}
	var err error
	h.in(func() error { err = h.d.CreateNetwork(&other); return nil })
	if err == nil || !strings.Contains(err.Error(), "exists already with another definition") {
		t.Fatalf("CreateNetwork of another definition under the same ID: %v", err)
	}
}

// TestNetworkGivenUpOn: a network whose creation Docker gave up on after
// the plugin committed it goes when Docker gives its pools back.
func TestNetworkGivenUpOn(t *testing.T) {
	h := newHarness(t)
	const nid = "abcdef0123452222"
	req := h.network(nid, nil, "192.0.2.0/24")
	h.in(func() error { return h.d.CreateNetwork(req) })
	h.in(func() error { return h.givePoolBack(h.poolID("192.0.2.0/24")) })
	if _, ok := h.d.networks[nid]; ok {
		t.Fatal("the network Docker gave up on is still recorded")
	}
	if _, ok := h.host.Link(t, "ds-"+nid[:12]); ok {
		t.Fatal("the network Docker gave up on left its bridge")
	}
}

// failingDelete is the bridge plane with an endpoint delete that fails.
type failingDelete struct{ bridgePlane }

func (failingDelete) deleteEndpoint(*network, *endpoint) error {
	return errors.New("the kernel refused to delete the veth")
}

// TestDeleteEndpointFailsHalfway: a DeleteEndpoint that fails after it
// revoked the endpoint's ports has recorded that: the next start publishes
// nothing again for an address Docker may give to another container.
func TestDeleteEndpointFailsHalfway(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "abcdef0123453333", "eeeeeeeeeeee4444"
	h.in(func() error { return h.d.CreateNetwork(h.network(nid, nil, "192.0.2.0/24")) })
	h.endpointWith(portmapOption(map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8088}), nid, eid, "02:42:c0:00:02:02", "192.0.2.0/24", "")
	if err := h.joinGateway(nid, eid, netnstest.New(t)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.rules(), "--dport 8088") {
		t.Fatalf("no rule for the published port:\n%s", h.rules())
	}
	h.d.planes[ModeBridge] = failingDelete{}
	var err error
	h.in(func() error {
		err = h.d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid})
		return nil
	})
	if err == nil {
		t.Fatal("DeleteEndpoint succeeded with a failing plane")
	}
	h.restart()
	if r := h.rules(); strings.Contains(r, "--dport 8088") {
		t.Fatalf("the next start published the port again:\n%s", r)
	}
	if !h.bindable("tcp4", "0.0.0.0:8088") {
		t.Fatal("the next start holds the host port again")
	}
}

// TestForgetGoneEndpoints: an endpoint whose container is gone (its veth
// and its namespace), whose delete never arrived, is forgotten at the next
// start, with its addresses.
func TestForgetGoneEndpoints(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "abcdef0123455555", "eeeeeeeeeeee6666"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, "192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"))
	})
	h.endpoint(nid, eid, "02:42:c0:00:02:03", "192.0.2.0/24", "2001:db8:1::/64")
	extra := h.d.endpoints[eid].Extra[0].Addr
	h.host.IP(t, "link", "del", "dsv"+eid[:12]) // the container went, and its veth with it
	h.restart()
	if _, ok := h.d.endpoints[eid]; ok {
		t.Fatal("an endpoint whose container is gone is still recorded")
	}
	if _, held := h.book.Allocations(h.poolID("2001:db8:2::/64"))[extra.Addr()]; held {
		t.Fatalf("the forgotten endpoint's extra address %s is still held", extra)
	}
}

// TestAddressGivenTwice: an address another live endpoint holds, handed
// out again (by another IPAM, or a bug), is refused before anything is
// made for the second endpoint: no link, no record, no allocation.
func TestAddressGivenTwice(t *testing.T) {
	h := newHarness(t)
	const nid, e1, e2 = "abcdef0123457777", "eeeeeeeeee017777", "eeeeeeeeee027777"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, "192.0.2.0/24", "2001:db8:1::/64"))
	})
	resp := h.endpoint(nid, e1, "02:42:c0:00:02:02", "192.0.2.0/24", "2001:db8:1::/64")
	first := h.d.endpoints[e1]
	if resp == nil || first == nil {
		t.Fatal("the first endpoint was not created")
	}
	before := h.host.Links(t)
	for _, in := range []*api.EndpointInterface{
		{Address: first.IPv4.String(), MacAddress: "02:42:c0:00:02:03"},
		{AddressIPv6: first.IPv6.String(), MacAddress: "02:42:c0:00:02:03"},
	} {
		var err error
		h.in(func() error {
			_, err = h.d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: e2, Interface: in})
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), "is held by endpoint "+e1[:12]) {
			t.Fatalf("CreateEndpoint with %+v, held by %s: %v; want a refusal naming the holder", in, e1[:12], err)
		}
		if _, ok := h.d.endpoints[e2]; ok {
			t.Fatal("the refused endpoint is recorded")
		}
		if after := h.host.Links(t); len(after) != len(before) {
			t.Fatalf("the refused endpoint changed the links: %d, then %d", len(before), len(after))
		}
	}
	h.restart()
	if _, ok := h.d.endpoints[e2]; ok {
		t.Fatal("the refused endpoint is recorded after a restart")
	}
}

// TestEndpointGivenUpOn: an endpoint whose creation Docker gave up on
// after the plugin committed it (the answer lost in a restart) goes when
// Docker gives its address back: its veth, its record and the extra IPv6
// addresses dualstack allocated for it.
func TestEndpointGivenUpOn(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "abcdef0123458888", "eeeeeeeeee018888"
	v4, v6a, v6b := "192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6a, v6b))
	})
	h.endpoint(nid, eid, "02:42:c0:00:02:02", v4, v6a)
	ep := h.d.endpoints[eid]
	if ep == nil || len(ep.Extra) != 1 {
		t.Fatalf("endpoint %+v: want one extra IPv6 address", ep)
	}
	extra := ep.Extra[0]
	if _, ok := h.host.Link(t, ep.HostVeth); !ok {
		t.Fatalf("no veth %s", ep.HostVeth)
	}
	// Docker releases what it gave: the IPv4 address first.
	h.in(func() error {
		return h.giveAddrBack(h.poolID(v4), ep.IPv4.Addr().String())
	})
	if _, ok := h.d.endpoints[eid]; ok {
		t.Fatal("the endpoint Docker gave up on is still recorded")
	}
	if _, ok := h.host.Link(t, ep.HostVeth); ok {
		t.Fatalf("the endpoint Docker gave up on left its veth %s", ep.HostVeth)
	}
	if h.book.Claimed(ep.IPv6.Addr()) || h.book.Claimed(extra.Addr.Addr()) {
		t.Fatal("the endpoint's addresses are still claimed")
	}
	// Its extra address is free again in dualstack's IPAM.
	if owner, held := h.book.Allocations(extra.PoolID)[extra.Addr.Addr()]; held {
		t.Fatalf("the extra address %s is still allocated, to %s", extra.Addr, owner)
	}
}
