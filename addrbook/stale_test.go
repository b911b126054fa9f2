package addrbook

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestCollectStale: of a network's allocations, those that no gateway,
// host link or address of the network, or endpoint of it (by ID, or by the
// MAC Docker asked with, in any case) explains are released after the
// grace period, unless explained by then; other networks' owners do not
// explain them.
func TestCollectStale(t *testing.T) {
	e := newEnv(t)
	id := e.pool("198.51.100.0/24", "", false)
	for _, o := range []Owner{{Kind: Gateway}, MACOwner("02:42:c6:33:64:02"), MACOwner("02:42:c6:33:64:03"), EndpointOwner("e1"), EndpointOwner("e9"), HostLinkOwner("n1"), HostLinkOwner("n2"), MACOwner("02:42:c6:33:64:04")} {
		e.mustAddr(id, "", o)
	}
	e.d.Attach("n1", []string{id})
	e.d.Claim(Claim{Endpoint: "e1", Network: "n1", MAC: "02:42:C6:33:64:02"})
	e.d.Claim(Claim{Endpoint: "e2", Network: "n2", MAC: "02:42:c6:33:64:03"})
	e.d.CollectStale(20 * time.Millisecond)
	// An endpoint that comes within the grace period explains its address.
	e.d.Claim(Claim{Endpoint: "e4", Network: "n1", MAC: "02:42:c6:33:64:04"})
	time.Sleep(200 * time.Millisecond)
	var left []string
	for _, o := range e.d.Allocations(id) {
		left = append(left, o.String())
	}
	slices.Sort(left)
	want := []string{"02:42:c6:33:64:02", "02:42:c6:33:64:04", "endpoint:e1", "gateway:auto", "host-link:n1"}
	if !slices.Equal(left, want) {
		t.Fatalf("left after collection: %q, want %q", left, want)
	}
	// A pool no network holds is left alone.
	other := e.pool("203.0.113.0/24", "", false)
	e.mustAddr(other, "", MACOwner("02:42:cb:00:71:05"))
	e.d.CollectStale(time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	if _, held := e.d.Allocations(other)[netip.MustParseAddr("203.0.113.1")]; !held {
		t.Fatal("an allocation in a pool no network holds was collected")
	}
}
