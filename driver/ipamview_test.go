package driver

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/ipamcheck"
)

// TestIPAMViewAndRelease: the view lists the network, its endpoint, the
// pool's allocations and the links that look like dualstack's (not the
// host's own); a release refuses, changing nothing, a link an endpoint
// uses, a link that is not dualstack's and an address an endpoint holds,
// and releases exactly a leaked address and a left link, once.
func TestIPAMViewAndRelease(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "c0c0c0c0c0c04444", "e2e2e2e2e2e25555"
	h.in(func() error { return h.d.CreateNetwork(h.network(nid, nil, "198.51.100.0/24")) })
	h.endpoint(nid, eid, "02:42:c6:33:64:02", "198.51.100.0/24", "")
	pool := h.poolID("198.51.100.0/24")
	leak, err := h.book.RequestAddress(pool, "198.51.100.200", addrbook.MACOwner("02:42:c6:33:64:99"))
	if err != nil {
		t.Fatal(err)
	}
	h.host.IP(t, "link", "add", "dsv0123456789ab", "type", "veth", "peer", "name", "left0")
	h.host.IP(t, "link", "add", "ds-lan", "type", "bridge")
	h.host.IP(t, "route", "add", "198.18.9.0/24", "dev", "ds-c0c0c0c0c0c0", "proto", "213")
	h.host.IP(t, "route", "add", "198.18.10.0/24", "dev", "ds-c0c0c0c0c0c0", "proto", "static")
	leftRoute := ipamcheck.RouteSpec{Dst: netip.MustParsePrefix("198.18.9.0/24"), Protocol: 213}

	var v *ipamcheck.PluginView
	h.in(func() error { v = h.d.IPAMView(); return nil })
	var names []string
	for _, l := range v.Links {
		names = append(names, l.Name)
	}
	if want := []string{"ds-c0c0c0c0c0c0", "dsce2e2e2e2e2e2", "dsv0123456789ab", "dsve2e2e2e2e2e2"}; !slices.Equal(names, want) {
		t.Fatalf("links %q, want %q", names, want)
	}
	if len(v.Routes) != 1 || v.Routes[0].Dst != leftRoute.Dst || v.Routes[0].Wanted {
		t.Fatalf("routes %+v, want only 198.18.9.0/24 of protocol 213, not kept", v.Routes)
	}
	if len(v.Errors) != 0 || len(v.Networks) != 1 || len(v.Endpoints) != 1 || v.Endpoints[0].HostLink != "dsve2e2e2e2e2e2" || len(v.Pools) != 1 || len(v.Pools[0].Allocations) != 3 {
		t.Fatalf("view: %+v", v)
	}

	held := netip.MustParseAddr("198.51.100.2")
	for _, bad := range []ipamcheck.Release{
		{Links: []string{"dsv0123456789ab", "dsve2e2e2e2e2e2"}},
		{Links: []string{"dsv0123456789ab", "ds-lan"}},
		{Links: []string{"dsv0123456789ab"}, Addresses: []ipamcheck.PoolAddress{{Pool: pool, Address: leak.Addr()}, {Pool: pool, Address: held}}},
		{Links: []string{"dsv0123456789ab"}, Routes: []ipamcheck.RouteSpec{leftRoute, {Dst: netip.MustParsePrefix("198.18.10.0/24"), Protocol: 4}}},
	} {
		var refused *ipamcheck.RefusedError
		h.in(func() error { _, err = h.d.IPAMRelease(bad); return nil })
		if !errors.As(err, &refused) {
			t.Fatalf("release %+v: %v, want a refusal", bad, err)
		}
		if _, ok := h.host.Link(t, "dsv0123456789ab"); !ok || len(h.book.Allocations(pool)) != 3 {
			t.Fatalf("a refused release %+v changed something", bad)
		}
	}
	good := ipamcheck.Release{Links: []string{"dsv0123456789ab"}, Addresses: []ipamcheck.PoolAddress{{Pool: pool, Address: leak.Addr()}}, Routes: []ipamcheck.RouteSpec{leftRoute}}
	var out *ipamcheck.Released
	h.in(func() error { out, err = h.d.IPAMRelease(good); return err })
	if len(out.Links) != 1 || len(out.Addresses) != 1 || len(out.Routes) != 1 || len(out.Gone) != 0 {
		t.Fatalf("release: %+v", out)
	}
	if _, ok := h.host.Link(t, "dsv0123456789ab"); ok {
		t.Fatal("the left link is still there")
	}
	if _, ok := h.book.Allocations(pool)[leak.Addr()]; ok || len(h.book.Allocations(pool)) != 2 {
		t.Fatalf("allocations after the release: %v", h.book.Allocations(pool))
	}
	h.in(func() error { out, err = h.d.IPAMRelease(good); return err })
	if len(out.Links)+len(out.Addresses)+len(out.Routes) != 0 || len(out.Gone) != 3 {
		t.Fatalf("the same release again: %+v, want all three gone", out)
	}
	if routes := string(h.host.IP(t, "route", "show", "proto", "static")); !strings.Contains(routes, "198.18.10.0/24") {
		t.Fatalf("the static route went too:\n%s", routes)
	}
}
