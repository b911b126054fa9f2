package addrbook

import (
	"net/netip"
	"strings"
	"testing"
)

// fakeScreen says the addresses in taken are held on the link.
type fakeScreen map[netip.Addr]bool

func (fakeScreen) Interface() string         { return "eth0" }
func (s fakeScreen) Taken(a netip.Addr) bool { return s[a] }

// TestOnLinkPools: a pool carved from an on-link /64 is its first free
// /80 after the first, holding none of the addresses to avoid; its
// sequence passes over what the link holds, which stays held for the link
// across a restart; the pool remembers its interface.
func TestOnLinkPools(t *testing.T) {
	e := newEnv(t)
	req := OnLinkRequest{Interface: "eth0", Within: netip.MustParsePrefix("2001:db8:5::/64"), Size: 80,
		Avoid: []netip.Addr{netip.MustParseAddr("2001:db8:5:0:1::9")}}
	first, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, V6: true, OnLink: &req})
	if err != nil {
		t.Fatal(err)
	}
	if want := netip.MustParsePrefix("2001:db8:5:0:2::/80"); first.Prefix != want {
		t.Fatalf("carved %s, want %s (not the first /80, not the one holding the address to avoid)", first.Prefix, want)
	}
	second, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, V6: true, OnLink: &req})
	if err != nil || second.Prefix != netip.MustParsePrefix("2001:db8:5:0:3::/80") {
		t.Fatalf("second carve = %v, %v; want 2001:db8:5:0:3::/80", second.Prefix, err)
	}
	if got := e.d.OnLinkOf(first.ID); got != "eth0" {
		t.Errorf("OnLinkOf = %q, want eth0", got)
	}
	bad := req
	bad.Size = 64
	if _, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, V6: true, OnLink: &bad}); err == nil || !strings.Contains(err.Error(), "ndp_proxy_size") {
		t.Errorf("a /64 of a /64: err = %v, want one naming ndp_proxy_size", err)
	}

	held := netip.MustParseAddr("2001:db8:5:0:2::3")
	if err := e.d.SetScreen(first.ID, fakeScreen{held: true}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, mac := range []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"} {
		a, err := e.d.RequestAddress(first.ID, "", MACOwner(mac))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a.Addr().String())
	}
	if want := "2001:db8:5:0:2::1 2001:db8:5:0:2::2 2001:db8:5:0:2::4"; strings.Join(got, " ") != want {
		t.Errorf("handed out %v, want %s (passing over %s)", got, want, held)
	}
	e.restart()
	if o := e.d.Allocations(first.ID)[held]; o != OnLinkOwner("eth0") {
		t.Errorf("after a restart %s is held by %v, want %v", held, o, OnLinkOwner("eth0"))
	}
	if got := e.d.OnLinkOf(first.ID); got != "eth0" {
		t.Errorf("OnLinkOf after a restart = %q, want eth0", got)
	}
}
