package macvlan_test

import (
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/driver/macvlan"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// tOwner marks the test's links as dualstack's (links.Mark).
const tOwner = "test"

// host makes a namespace with a veth pair whose end "dstpar" is the
// parent (the kernel here has no dummy links).
func host(t *testing.T) netnstest.NS {
	t.Helper()
	ns := netnstest.New(t)
	ns.IP(t, "link", "add", "dstpar", "type", "veth", "peer", "name", "dstlan")
	ns.IP(t, "link", "set", "dstpar", "up")
	ns.IP(t, "link", "set", "dstlan", "up")
	return ns
}

func in(t *testing.T, ns netnstest.NS, fn func() error) error {
	t.Helper()
	return netns.Do(ns.Path, fn)
}

func TestVLAN(t *testing.T) {
	for in, want := range map[string]string{
		"eth0.10": "eth0/10", "bond0.4094": "bond0/4094", "en.p1.7": "en.p1/7",
		"eth0": "-", "eth0.": "-", ".10": "-", "eth0.0": "-", "eth0.4095": "-", "eth0.x": "-",
	} {
		base, vid, ok := macvlan.VLAN(in)
		got := "-"
		if ok {
			got = base + "/" + strconv.Itoa(vid)
		}
		if got != want {
			t.Errorf("VLAN(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestChildModes creates a child in every mode and checks what ip(8)
// reports: kind, parent, mode, MAC, down; then deletes it, twice.
func TestChildModes(t *testing.T) {
	ns := host(t)
	mac := net.HardwareAddr{0x02, 0x42, 0xc0, 0, 2, 9}
	for _, mode := range []string{"bridge", "private", "vepa", "passthru"} {
		t.Run(mode, func(t *testing.T) {
			if err := in(t, ns, func() error {
				return macvlan.CreateChild(macvlan.ChildConfig{Owner: tOwner, Name: "dstc", Parent: "dstpar", Mode: mode, MAC: mac, MTU: 1400})
			}); err != nil {
				t.Fatal(err)
			}
			l, ok := ns.Link(t, "dstc")
			if !ok {
				t.Fatal("child missing")
			}
			if l.LinkInfo.Kind != "macvlan" || l.Link != "dstpar" || l.LinkInfo.Data.Mode != mode || l.Up() || l.MTU != 1400 {
				t.Errorf("child: kind %s link %s mode %s up %t mtu %d", l.LinkInfo.Kind, l.Link, l.LinkInfo.Data.Mode, l.Up(), l.MTU)
			}
			if mode != "passthru" && l.Address != mac.String() {
				t.Errorf("MAC %s, want %s", l.Address, mac)
			}
			for i := 0; i < 2; i++ {
				if err := in(t, ns, func() error { return macvlan.DeleteChild("dstc", tOwner) }); err != nil {
					t.Fatal(err)
				}
			}
			if _, ok := ns.Link(t, "dstc"); ok {
				t.Fatal("child left after DeleteChild")
			}
		})
	}
}

// TestPassthruTakesTheParent: a second child on a passthru parent is
// refused with a message that says why.
func TestPassthruTakesTheParent(t *testing.T) {
	ns := host(t)
	if err := in(t, ns, func() error {
		return macvlan.CreateChild(macvlan.ChildConfig{Owner: tOwner, Name: "dstc1", Parent: "dstpar", Mode: "passthru"})
	}); err != nil {
		t.Fatal(err)
	}
	err := in(t, ns, func() error {
		return macvlan.CreateChild(macvlan.ChildConfig{Owner: tOwner, Name: "dstc2", Parent: "dstpar", Mode: "passthru"})
	})
	if err == nil || !strings.Contains(err.Error(), "passthru") {
		t.Fatalf("second passthru child: %v", err)
	}
	if _, ok := ns.Link(t, "dstc2"); ok {
		t.Fatal("failed child left behind")
	}
	err = in(t, ns, func() error {
		return macvlan.CreateChild(macvlan.ChildConfig{Owner: tOwner, Name: "dstc3", Parent: "dstmissing", Mode: "bridge"})
	})
	if err == nil || !strings.Contains(err.Error(), "parent dstmissing") {
		t.Fatalf("missing parent: %v", err)
	}
}

// TestShim: addresses as host routes, routes to the subnets, up, accept_ra
// off; again changes nothing; deleted with its routes.
func TestShim(t *testing.T) {
	ns := host(t)
	s := macvlan.Shim{Owner: tOwner, Name: "dsth", Parent: "dstpar",
		Addrs:  []netip.Prefix{netip.MustParsePrefix("192.0.2.5/24"), netip.MustParsePrefix("2001:db8:1::5/64")},
		Routes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("2001:db8:2::/64")}}
	for i := 0; i < 2; i++ {
		if err := in(t, ns, func() error { return macvlan.EnsureShim(s) }); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, a := range ns.Addrs(t, "dsth") {
		if a.Scope == "global" {
			got = append(got, a.Prefix().String())
			if a.Tentative {
				t.Errorf("%s tentative", a.Local)
			}
		}
	}
	if strings.Join(got, " ") != "192.0.2.5/32 2001:db8:1::5/128" {
		t.Errorf("shim addresses %v", got)
	}
	routes := string(ns.IP(t, "route", "show", "dev", "dsth")) + string(ns.IP(t, "-6", "route", "show", "dev", "dsth"))
	for _, r := range []string{"192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64"} {
		if !strings.Contains(routes, r) {
			t.Errorf("no route to %s via the shim:\n%s", r, routes)
		}
	}
	if ra := ns.Sysctl(t, "net/ipv6/conf/dsth/accept_ra"); ra != "0" {
		t.Errorf("shim accept_ra %s", ra)
	}
	for i := 0; i < 2; i++ {
		if err := in(t, ns, func() error { return macvlan.DeleteShim("dsth", tOwner) }); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := ns.Link(t, "dsth"); ok {
		t.Fatal("shim left")
	}
}

// TestCreateVLAN needs the 8021q module, which this CI kernel lacks.
func TestCreateVLAN(t *testing.T) {
	ns := host(t)
	err := in(t, ns, func() error { return macvlan.CreateVLAN("dstpar.10", tOwner) })
	if err != nil && strings.Contains(err.Error(), "8021q") {
		t.Skipf("the kernel has no 802.1q VLAN links (8021q module): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := ns.Link(t, "dstpar.10"); !ok || l.LinkInfo.Kind != "vlan" || !l.Up() {
		t.Fatalf("vlan link: %+v", l)
	}
	for i := 0; i < 2; i++ {
		if err := in(t, ns, func() error { return macvlan.DeleteVLAN("dstpar.10", tOwner) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := in(t, ns, func() error { return macvlan.DeleteVLAN("dstpar", tOwner) }); err == nil {
		t.Fatal("DeleteVLAN deleted a veth")
	}
}
