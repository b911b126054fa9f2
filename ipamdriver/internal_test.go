package ipamdriver

import (
	"net/netip"
	"testing"
)

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

	got, err := e.d.AllocateEach([]string{a, b}, "endpoint:x")
	if err != nil || len(got) != 2 || got[0].String() != "2001:db8:a::1/64" || got[1].String() != "2001:db8:b::1/64" {
		t.Fatalf("AllocateEach = %v, %v", got, err)
	}
	again, err := e.d.AllocateEach([]string{a, b}, "endpoint:x")
	if err != nil || again[0] != got[0] || again[1] != got[1] {
		t.Fatalf("retry = %v, %v; want %v", again, err, got)
	}
	if _, err := e.d.AllocateEach([]string{a, full}, "endpoint:y"); err == nil {
		t.Fatal("allocation in a full pool succeeded")
	}
	if e.d.pools[a].alloc.Allocated(netip.MustParseAddr("2001:db8:a::2")) {
		t.Fatal("the failed batch's address in pool a is still taken in memory")
	}
	e.restart() // what was committed, and only that
	if next := e.mustAddr(a, "", mac(1)); next != "2001:db8:a::2/64" {
		t.Fatalf("after a failed batch the next address is %s, want ::2 (nothing kept of the batch)", next)
	}
	if err := e.d.ReleaseEach(map[string][]netip.Addr{a: {got[0].Addr()}, b: {got[1].Addr()}, "gone": {got[0].Addr()}}); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if n := len(e.d.Allocations(b)); n != 0 {
		t.Fatalf("pool b holds %d addresses after ReleaseEach", n)
	}
}
