package addrbook

import (
	"errors"
	"net/netip"
	"testing"
)

// TestReleaseLeaked: an operator's release frees exactly the leaked
// addresses it names, all or none: it refuses, changing nothing, an
// address an endpoint holds, one its network explains and a gateway;
// asked again, it finds them gone.
func TestReleaseLeaked(t *testing.T) {
	e := newEnv(t)
	id := e.pool("198.51.100.0/24", "", false)
	gw := e.mustAddr(id, "", Owner{Kind: Gateway})
	held := e.mustAddr(id, "", MACOwner("02:42:c6:33:64:02"))
	explained := e.mustAddr(id, "", HostLinkOwner("n1"))
	leak1 := e.mustAddr(id, "", MACOwner("02:42:c6:33:64:09"))
	leak2 := e.mustAddr(id, "", HostLinkOwner("gone"))
	e.d.Attach("n1", []string{id})
	a := func(s string) netip.Addr { return netip.MustParsePrefix(s).Addr() }
	e.d.Claim(Claim{Endpoint: "e1", Network: "n1", MAC: "02:42:c6:33:64:02", Addrs: []netip.Addr{a(held)}})

	for _, refused := range []string{gw, held, explained} {
		_, _, err := e.d.ReleaseLeaked(map[string][]netip.Addr{id: {a(leak1), a(refused)}})
		if !errors.Is(err, ErrNotLeaked) {
			t.Fatalf("release of %s with a leak: %v, want a refusal", refused, err)
		}
		if len(e.d.Allocations(id)) != 5 {
			t.Fatalf("a refused release changed the pool: %v", e.d.Allocations(id))
		}
	}
	released, gone, err := e.d.ReleaseLeaked(map[string][]netip.Addr{id: {a(leak1), a(leak2)}, "local/203.0.113.0/24": {a("203.0.113.9/24")}})
	if err != nil || len(released[id]) != 2 || len(gone["local/203.0.113.0/24"]) != 1 {
		t.Fatalf("release of the leaks: released %v, gone %v, %v", released, gone, err)
	}
	left := e.d.Allocations(id)
	if _, ok := left[a(leak1)]; ok || len(left) != 3 {
		t.Fatalf("left after the release: %v, want the gateway, the endpoint's and the host link's", left)
	}
	released, gone, err = e.d.ReleaseLeaked(map[string][]netip.Addr{id: {a(leak1), a(leak2)}})
	if err != nil || len(released) != 0 || len(gone[id]) != 2 {
		t.Fatalf("the same release again: released %v, gone %v, %v; want both gone", released, gone, err)
	}
}

// TestPoolsInfo lists each pool with its network and allocations.
func TestPoolsInfo(t *testing.T) {
	e := newEnv(t)
	id := e.pool("198.51.100.0/24", "198.51.100.128/25", false)
	e.mustAddr(id, "", MACOwner("02:42:c6:33:64:02"))
	e.d.Attach("n1", []string{id})
	info := e.d.PoolsInfo()
	if len(info) != 1 || info[0].ID != id || info[0].Network != "n1" || info[0].Range.String() != "198.51.100.128/25" || len(info[0].Allocations) != 1 {
		t.Fatalf("PoolsInfo = %+v", info)
	}
	for _, o := range info[0].Allocations {
		if o.Kind.String() != "mac" {
			t.Fatalf("owner kind %q, want mac", o.Kind)
		}
	}
}
