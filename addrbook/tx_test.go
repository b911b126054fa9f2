package addrbook

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/state"
)

// allocateEach is Tx.AllocateEach alone in its change, as the network
// driver's endpoints do it (with their own record).
func (e *testEnv) allocateEach(pools []string, owner Owner, with func(tx *Tx, addrs []netip.Prefix) error) ([]netip.Prefix, error) {
	var out []netip.Prefix
	err := e.d.Update(func(tx *Tx) error {
		addrs, err := tx.AllocateEach(pools, owner)
		if err != nil || with == nil {
			out = addrs
			return err
		}
		out = addrs
		return with(tx, addrs)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (e *testEnv) releaseEach(addrs map[string][]netip.Addr, with func(tx *Tx) error) error {
	return e.d.Update(func(tx *Tx) error {
		if err := tx.ReleaseEach(addrs); err != nil || with == nil {
			return err
		}
		return with(tx)
	})
}

// TestAllocateEach: one address per pool in one commit, the same ones back
// for the same owner, nothing allocated when one pool is full, and
// ReleaseEach frees them together.
func TestAllocateEach(t *testing.T) {
	e := newEnv(t)
	a := e.pool("2001:db8:a::/64", "", true)
	b := e.pool("2001:db8:b::/64", "", true)
	full := e.pool("192.0.2.0/30", "", false)
	e.mustAddr(full, "", mac(9))
	e.mustAddr(full, "", mac(8))

	got, err := e.allocateEach([]string{a, b}, EndpointOwner("x"), nil)
	if err != nil || len(got) != 2 || got[0].String() != "2001:db8:a::1/64" || got[1].String() != "2001:db8:b::1/64" {
		t.Fatalf("AllocateEach = %v, %v", got, err)
	}
	again, err := e.allocateEach([]string{a, b}, EndpointOwner("x"), nil)
	if err != nil || again[0] != got[0] || again[1] != got[1] {
		t.Fatalf("retry = %v, %v; want %v", again, err, got)
	}
	if _, err := e.allocateEach([]string{a, full}, EndpointOwner("y"), nil); err == nil {
		t.Fatal("allocation in a full pool succeeded")
	}
	if e.d.pools[a].alloc.Allocated(netip.MustParseAddr("2001:db8:a::2")) {
		t.Fatal("the failed batch's address in pool a is still taken in memory")
	}
	e.restart() // what was committed, and only that
	if next := e.mustAddr(a, "", mac(1)); next != "2001:db8:a::2/64" {
		t.Fatalf("after a failed batch the next address is %s, want ::2 (nothing kept of the batch)", next)
	}
	if err := e.releaseEach(map[string][]netip.Addr{a: {got[0].Addr()}, b: {got[1].Addr()}, "gone": {got[0].Addr()}}, nil); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if n := len(e.d.Allocations(b)); n != 0 {
		t.Fatalf("pool b holds %d addresses after ReleaseEach", n)
	}
}

// TestEachWith: the caller's record commits with the addresses or not at
// all, on the way in and on the way out.
func TestEachWith(t *testing.T) {
	e := newEnv(t)
	a := e.pool("2001:db8:a::/64", "", true)
	b := e.pool("2001:db8:b::/64", "", true)
	bucket := []string{"caller"}
	record := func(tx *Tx, v string) error {
		if v == "" {
			return tx.Delete(bucket, []byte("ep"))
		}
		return tx.Put(bucket, []byte("ep"), []byte(v))
	}
	stored := func() string {
		var v string
		_ = e.db.View(func(tx state.Tx) error {
			v = string(tx.Get(bucket, []byte("ep")))
			return nil
		})
		return v
	}
	failing := errors.New("disk full")

	if _, err := e.allocateEach([]string{a, b}, EndpointOwner("x"), func(tx *Tx, _ []netip.Prefix) error {
		_ = record(tx, "half")
		return failing
	}); !errors.Is(err, failing) {
		t.Fatalf("AllocateEach with a failing record = %v, want its error", err)
	}
	if n := len(e.d.Allocations(a)) + len(e.d.Allocations(b)); n != 0 || stored() != "" {
		t.Fatalf("after a failed record: %d addresses held, record %q; want none of either", n, stored())
	}

	var seen []netip.Prefix
	got, err := e.allocateEach([]string{a, b}, EndpointOwner("x"), func(tx *Tx, addrs []netip.Prefix) error {
		seen = addrs
		return record(tx, addrs[0].String()+" "+addrs[1].String())
	})
	if err != nil || len(seen) != 2 || seen[0] != got[0] || seen[1] != got[1] {
		t.Fatalf("AllocateEach = %v, %v; the record saw %v", got, err, seen)
	}
	e.restart()
	if want := "2001:db8:a::1/64 2001:db8:b::1/64"; stored() != want || len(e.d.Allocations(a)) != 1 || len(e.d.Allocations(b)) != 1 {
		t.Fatalf("after a restart: record %q (want %q), %v and %v held", stored(), want, e.d.Allocations(a), e.d.Allocations(b))
	}

	held := map[string][]netip.Addr{a: {got[0].Addr()}, b: {got[1].Addr()}}
	if err := e.releaseEach(held, func(tx *Tx) error {
		_ = record(tx, "")
		return failing
	}); !errors.Is(err, failing) {
		t.Fatalf("ReleaseEach with a failing record = %v, want its error", err)
	}
	e.restart()
	if len(e.d.Allocations(a)) != 1 || len(e.d.Allocations(b)) != 1 || stored() == "" {
		t.Fatalf("a failed release changed something: %v, %v held, record %q", e.d.Allocations(a), e.d.Allocations(b), stored())
	}
	if err := e.releaseEach(held, func(tx *Tx) error { return record(tx, "") }); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if n := len(e.d.Allocations(a)) + len(e.d.Allocations(b)); n != 0 || stored() != "" {
		t.Fatalf("after ReleaseEach: %d addresses held, record %q", n, stored())
	}
	// Nothing left to release: the record still goes.
	_ = e.d.Update(func(tx *Tx) error { return record(tx, "left") })
	if err := e.releaseEach(held, func(tx *Tx) error { return record(tx, "") }); err != nil || stored() != "" {
		t.Fatalf("ReleaseEach of released addresses = %v, record %q; want the record gone", err, stored())
	}
}

// TestAllocateEachLeasesABlock: the extra addresses of an endpoint in a
// cluster pool that holds no block yet (nor a gateway: not routed) lease
// a block within the change, a commit of its own, and the change goes on:
// the endpoint gets its address in the new block, kept after a restart.
func TestAllocateEachLeasesABlock(t *testing.T) {
	s := newFakeStore()
	e, id := clusterHost(t, s, "a", "fd00:c2::/64", "", ClusterPool{Network: "c2", Bits: 120})
	before := len(e.d.Blocks(id))
	done := make(chan error, 1)
	var got []netip.Prefix
	go func() {
		var err error
		got, err = e.allocateEach([]string{id}, EndpointOwner("x"), nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AllocateEach in a cluster pool that leases a block did not return (a commit waiting for another)")
	}
	blocks := e.d.Blocks(id)
	if len(got) != 1 || len(blocks) != before+1 || !blocks[len(blocks)-1].Prefix.Contains(got[0].Addr()) {
		t.Fatalf("allocated %v with blocks %+v (had %d); want one address in a block leased for it", got, blocks, before)
	}
	e.restart()
	if owner := e.d.Allocations(id)[got[0].Addr()]; owner != EndpointOwner("x") {
		t.Fatalf("after a restart %s is held by %+v, want endpoint x", got[0], owner)
	}
}
