package routes

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// kernelHost is a throwaway namespace set up as a host: a LAN on dstlan
// (198.51.100.18/28, fd00:fab:1::2/64, the router .17 and ::1 its
// gateway), a container bridge dstbr (198.18.5.1/24), and routes of the
// administrator's: 198.18.1.0/26 proto static, 198.18.2.0/26 proto
// kernel, fd00:b1:0:1::/64 proto static.
func kernelHost(t *testing.T) netnstest.NS {
	ns := netnstest.New(t)
	for _, args := range [][]string{
		{"link", "add", "dstlan", "type", "bridge"},
		{"link", "set", "dstlan", "up"},
		{"addr", "add", "198.51.100.18/28", "dev", "dstlan"},
		{"addr", "add", "fd00:fab:1::2/64", "dev", "dstlan", "nodad"},
		{"link", "add", "dstbr", "type", "bridge"},
		{"link", "set", "dstbr", "up"},
		{"addr", "add", "198.18.5.1/24", "dev", "dstbr"},
		{"route", "add", "default", "via", "198.51.100.17"},
		{"-6", "route", "add", "default", "via", "fd00:fab:1::1"},
		{"route", "add", "198.18.1.0/26", "via", "198.51.100.17", "proto", "static"},
		{"route", "add", "198.18.2.0/26", "dev", "dstlan", "proto", "kernel"},
		{"-6", "route", "add", "fd00:b1:0:1::/64", "via", "fd00:fab:1::1", "proto", "static"},
	} {
		ns.IP(t, args...)
	}
	return ns
}

// tableAll is the namespace's whole routing table, both families, every
// table.
func tableAll(t *testing.T, ns netnstest.NS) string {
	t.Helper()
	return string(ns.IP(t, "-4", "route", "show", "table", "all")) + string(ns.IP(t, "-6", "route", "show", "table", "all"))
}

// inNS returns a Table working in ns, and a sync of proto in it; hook has
// what it logged.
func inNS(t *testing.T, ns netnstest.NS) (*Table, func(Protocol, map[netip.Prefix]Hop)) {
	tb, sync, _ := inNSLogged(t, ns)
	return tb, sync
}

func inNSLogged(t *testing.T, ns netnstest.NS) (*Table, func(Protocol, map[netip.Prefix]Hop), *test.Hook) {
	log, hook := test.NewNullLogger()
	tb := New(Options{Log: log, ContainerNets: func() []netip.Prefix { return []netip.Prefix{pfx("198.18.5.0/24")} }})
	return tb, func(proto Protocol, want map[netip.Prefix]Hop) {
		t.Helper()
		if err := netns.Do(ns.Path, func() error { return tb.Sync(proto, want) }); err != nil {
			t.Fatal(err)
		}
	}, hook
}

// TestKernelLeavesForeignRoutes: the administrator's routes (proto
// static, proto kernel) to a prefix dualstack is asked to route, and
// routes with an off-link, local or container next hop, leave the whole
// table as it was; withdrawing them leaves it too.
func TestKernelLeavesForeignRoutes(t *testing.T) {
	ns := kernelHost(t)
	before := tableAll(t, ns)
	tb, sync := inNS(t, ns)
	hostile := hops(
		"198.18.1.0/26", "198.51.100.19", // the admin's, proto static
		"198.18.2.0/26", "198.51.100.19", // the admin's, proto kernel
		"fd00:b1:0:1::/64", "fd00:fab:1::3", // the admin's, IPv6
		"0.0.0.0/0", "198.51.100.19", // the default route
		"198.51.100.18/32", "198.51.100.19", // the host's own address
		"198.18.5.0/25", "198.51.100.19", // inside the container bridge
		"198.18.3.0/26", "198.51.100.99", // next hop off-link
		"198.18.4.0/26", "198.51.100.18", // next hop the host
		"198.18.6.0/26", "198.18.5.9", // next hop a container
		"fd00:b1:0:2::/64", "2001:db8::1", // next hop off-link, IPv6
	)
	for _, proto := range []Protocol{Learned, HostGW} {
		sync(proto, hostile)
		if after := tableAll(t, ns); after != before {
			t.Fatalf("%s: hostile routes changed the table:\n%s\nwant\n%s", proto, after, before)
		}
		if got := tb.Refused(proto); len(got) != len(hostile) {
			t.Fatalf("%s: refused %d prefixes, want %d: %v", proto, len(got), len(hostile), got)
		}
		sync(proto, nil)
		if after := tableAll(t, ns); after != before {
			t.Fatalf("%s: withdrawing changed the table:\n%s\nwant\n%s", proto, after, before)
		}
	}
	for p, want := range map[string]string{
		"198.18.1.0/26": "proto static", "198.18.2.0/26": "proto kernel", "fd00:b1:0:1::/64": "proto static",
		"198.18.3.0/26": "not on a network this host reaches directly", "198.18.4.0/26": "an address of this host",
		"198.18.6.0/26": "inside local container network", "fd00:b1:0:2::/64": "not on a network this host reaches directly",
	} {
		sync(Learned, hops(p, hostile[pfx(p)].Via.String()))
		if got := tb.Refused(Learned)[pfx(p)]; !strings.Contains(got, want) {
			t.Errorf("%s refused with %q, want %q", p, got, want)
		}
	}
}

// TestKernelOwnRoutes: dualstack's routes are added, marked with their
// protocol; a prefix one protocol holds is refused to the other; a route
// the administrator put in place of one of dualstack's stays when it is
// withdrawn; a new Table (a restart) takes over the routes it finds.
func TestKernelOwnRoutes(t *testing.T) {
	ns := kernelHost(t)
	before := tableAll(t, ns)
	tb, sync := inNS(t, ns)
	sync(HostGW, hops("198.18.7.0/26", "198.51.100.19", "fd00:c1:0:1::/64", "fd00:fab:1::3"))
	got := string(ns.IP(t, "-4", "route", "show", "proto", "213")) + string(ns.IP(t, "-6", "route", "show", "proto", "213"))
	if !strings.Contains(got, "198.18.7.0/26 via 198.51.100.19 dev dstlan") || !strings.Contains(got, "fd00:c1:0:1::/64 via fd00:fab:1::3 dev dstlan") {
		t.Fatalf("host-gw routes:\n%s", got)
	}
	sync(Learned, hops("198.18.7.0/26", "198.51.100.20"))
	if why := tb.Refused(Learned)[pfx("198.18.7.0/26")]; !strings.Contains(why, "host-gw route of dualstack's") {
		t.Fatalf("a prefix of host-gw's learned: refused with %q", why)
	}
	// A restart: the new table finds its routes and changes nothing.
	tb2, sync2, hook := inNSLogged(t, ns)
	withRoutes := tableAll(t, ns)
	sync2(HostGW, hops("198.18.7.0/26", "198.51.100.19", "fd00:c1:0:1::/64", "fd00:fab:1::3"))
	if after := tableAll(t, ns); after != withRoutes || len(tb2.Installed(HostGW)) != 2 {
		t.Fatalf("a restart changed the table:\n%s\nwant\n%s", after, withRoutes)
	}
	for _, e := range hook.AllEntries() {
		t.Errorf("a restart touched a route it found in place: %s %v", e.Message, e.Data)
	}
	// The admin takes the prefix over; the withdrawal leaves it.
	ns.IP(t, "route", "replace", "198.18.7.0/26", "via", "198.51.100.20", "proto", "static")
	sync2(HostGW, nil)
	if out := string(ns.IP(t, "route", "show", "198.18.7.0/26")); !strings.Contains(out, "via 198.51.100.20") || !strings.Contains(out, "proto static") {
		t.Fatalf("the admin's route went with dualstack's withdrawal: %q", out)
	}
	ns.IP(t, "route", "del", "198.18.7.0/26", "proto", "static")
	if after := tableAll(t, ns); after != before {
		t.Fatalf("after the withdrawal:\n%s\nwant\n%s", after, before)
	}
}

// TestKernelHostGWFollowsBlocks: the routes to other hosts' blocks are
// exactly those asked for, marked 213, in both families; a block that
// moved follows its host, one gone goes; the host's other routes stay; a
// next hop the host cannot reach is refused, saying why, and changes
// nothing.
func TestKernelHostGWFollowsBlocks(t *testing.T) {
	ns := kernelHost(t)
	tb, sync := inNS(t, ns)
	routes := func() string {
		v4 := strings.TrimSpace(string(ns.IP(t, "-4", "route", "show", "proto", "213")))
		v6 := strings.TrimSpace(string(ns.IP(t, "-6", "route", "show", "proto", "213")))
		return strings.Join(strings.Fields(v4+" | "+v6), " ")
	}
	a4, a6 := pfx("198.18.0.64/26"), pfx("fd00:c1::1:0:0:0/80")
	sync(HostGW, map[netip.Prefix]Hop{a4: {Via: ip("198.51.100.19")}, a6: {Via: ip("fd00:fab:1::3")}})
	want := "198.18.0.64/26 via 198.51.100.19 dev dstlan | fd00:c1:0:0:1::/80 via fd00:fab:1::3 dev dstlan metric 1024 pref medium"
	if got := routes(); got != want {
		t.Fatalf("routes to blocks:\n got %s\nwant %s", got, want)
	}
	sync(HostGW, map[netip.Prefix]Hop{a4: {Via: ip("198.51.100.20")}})
	if got, want := routes(), "198.18.0.64/26 via 198.51.100.20 dev dstlan |"; got != want {
		t.Fatalf("after the change:\n got %s\nwant %s", got, want)
	}
	if !strings.Contains(string(ns.IP(t, "route", "show", "198.18.1.0/26")), "via 198.51.100.17") {
		t.Fatal("a route that is not dualstack's went")
	}
	before := tableAll(t, ns)
	sync(HostGW, map[netip.Prefix]Hop{a4: {Via: ip("198.51.100.20")}, pfx("198.18.0.128/26"): {Via: ip("10.99.0.1")}})
	if why := tb.Refused(HostGW)[pfx("198.18.0.128/26")]; !strings.Contains(why, "10.99.0.1 is not on a network this host reaches directly") {
		t.Fatalf("a next hop off the host's networks: refused with %q", why)
	}
	if after := tableAll(t, ns); after != before {
		t.Fatalf("a refused block changed the table:\n%s\nwant\n%s", after, before)
	}
	if sync(HostGW, nil); routes() != "|" {
		t.Fatalf("no block left: routes %q", routes())
	}
}
