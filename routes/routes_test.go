package routes

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"golang.org/x/sys/unix"

	kern "github.com/dualstack-net/dualstack/kernel"
)

// fakeKernel is a routing table in memory: enough of the kernel's rules
// (longest match, NLM_F_EXCL on one prefix per table) for the Table's
// logic, with counts of what was asked of it.
type fakeKernel struct {
	routes []kroute
	addrs_ []kern.HostAddr
	links  map[string]int
	fail   error // the next add fails with it
	// byPrefix indexes routes; nil when routes changed.
	byPrefix map[key]kroute
	calls    map[string]int
}

func newFake() *fakeKernel {
	k := &fakeKernel{links: map[string]int{"lo": 1, "uplink": 2, "br0": 3}, calls: map[string]int{}}
	// The host: 198.51.100.18/28 and fd00:fab:1::2/64 on uplink, the
	// router .17 its gateway; a container bridge br0 on 198.18.5.0/24.
	k.addr("127.0.0.1/8", "lo")
	k.addr("198.51.100.18/28", "uplink")
	k.addr("fd00:fab:1::2/64", "uplink")
	k.addr("198.18.5.1/24", "br0")
	k.routes = append(k.routes,
		kroute{Prefix: pfx("0.0.0.0/0"), Via: ip("198.51.100.17"), link: 2, proto: unix.RTPROT_STATIC, table: unix.RT_TABLE_MAIN, typ: unix.RTN_UNICAST},
		kroute{Prefix: pfx("203.0.113.0/24"), Via: ip("198.51.100.17"), link: 2, proto: unix.RTPROT_STATIC, table: unix.RT_TABLE_MAIN, typ: unix.RTN_UNICAST},
		kroute{Prefix: pfx("198.19.9.0/24"), link: 2, proto: unix.RTPROT_BOOT, table: unix.RT_TABLE_MAIN, typ: unix.RTN_UNICAST},
	)
	return k
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// addr puts an address on a link, with its connected and local routes.
func (k *fakeKernel) addr(s, link string) {
	a := pfx(s)
	k.byPrefix = nil
	k.addrs_ = append(k.addrs_, kern.HostAddr{Prefix: a, Iface: link})
	k.routes = append(k.routes,
		kroute{Prefix: a.Masked(), link: k.links[link], dev: link, proto: unix.RTPROT_KERNEL, table: unix.RT_TABLE_MAIN, typ: unix.RTN_UNICAST},
		kroute{Prefix: netip.PrefixFrom(a.Addr(), a.Addr().BitLen()), link: k.links[link], proto: unix.RTPROT_KERNEL, table: unix.RT_TABLE_LOCAL, typ: unix.RTN_LOCAL, local: true})
}

func (k *fakeKernel) list(proto Protocol) ([]kroute, error) {
	k.calls["list"]++
	var out []kroute
	for _, r := range k.routes {
		if r.proto == int(proto) && r.table == unix.RT_TABLE_MAIN {
			out = append(out, r)
		}
	}
	return out, nil
}

func (k *fakeKernel) lookup(a netip.Addr) (kroute, bool, error) {
	k.calls["lookup"]++
	k.index()
	if r, ok := k.byPrefix[key{netip.PrefixFrom(a, a.BitLen()), unix.RT_TABLE_LOCAL}]; ok {
		return r, true, nil
	}
	for bits := a.BitLen(); bits >= 0; bits-- {
		p, _ := a.Prefix(bits)
		if r, ok := k.byPrefix[key{p, unix.RT_TABLE_MAIN}]; ok {
			return r, true, nil
		}
	}
	return kroute{}, false, nil
}

// key is a route's place in the fake's index: one route per prefix and
// table, as with NLM_F_EXCL.
type key struct {
	p     netip.Prefix
	table int
}

// index makes byPrefix from routes, when they changed.
func (k *fakeKernel) index() {
	if k.byPrefix != nil {
		return
	}
	k.byPrefix = map[key]kroute{}
	for _, r := range k.routes {
		if _, ok := k.byPrefix[key{r.Prefix, r.table}]; !ok {
			k.byPrefix[key{r.Prefix, r.table}] = r
		}
	}
}

func (k *fakeKernel) add(proto Protocol, p netip.Prefix, h Hop, link int) error {
	k.calls["add"]++
	if err := k.fail; err != nil {
		k.fail = nil
		return err
	}
	k.index()
	if _, ok := k.byPrefix[key{p, unix.RT_TABLE_MAIN}]; ok {
		return fmt.Errorf("add route %s: %w", p, unix.EEXIST)
	}
	r := kroute{Prefix: p, Via: h.Via, link: link, proto: int(proto), table: unix.RT_TABLE_MAIN, typ: unix.RTN_UNICAST}
	k.routes = append(k.routes, r)
	k.byPrefix[key{p, unix.RT_TABLE_MAIN}] = r
	return nil
}

func (k *fakeKernel) del(proto Protocol, p netip.Prefix, via netip.Addr) error {
	k.calls["del"]++
	k.byPrefix = nil
	k.routes = slices.DeleteFunc(k.routes, func(r kroute) bool {
		return r.Prefix == p && r.proto == int(proto) && r.Via == via && r.table == unix.RT_TABLE_MAIN
	})
	return nil
}

func (k *fakeKernel) addrs() ([]kern.HostAddr, map[string]int, error) {
	k.calls["addrs"]++
	return k.addrs_, k.links, nil
}

// dump is the table as text, sorted: what a user would compare.
func (k *fakeKernel) dump() string {
	var out []string
	for _, r := range k.routes {
		out = append(out, r.String())
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func (k *fakeKernel) reset() { k.calls = map[string]int{} }

func newTable(k *fakeKernel) (*Table, *test.Hook) {
	log, hook := test.NewNullLogger()
	return New(Options{Log: log, kernel: k, ContainerNets: func() []netip.Prefix { return []netip.Prefix{pfx("198.18.5.0/24"), pfx("198.18.6.0/24")} }}), hook
}

func hops(kv ...string) map[netip.Prefix]Hop {
	m := map[netip.Prefix]Hop{}
	for i := 0; i < len(kv); i += 2 {
		m[pfx(kv[i])] = Hop{Via: ip(kv[i+1]), Network: "net1"}
	}
	return m
}

// TestSyncChangesOnly: the kernel is read once, at the first sync; a sync
// of the same set touches nothing; a change touches its prefix only.
func TestSyncChangesOnly(t *testing.T) {
	k := newFake()
	tb, _ := newTable(k)
	if err := tb.Sync(HostGW, hops("198.18.0.64/26", "198.51.100.19", "198.18.0.128/26", "198.51.100.20")); err != nil {
		t.Fatal(err)
	}
	if k.calls["list"] != 1 || k.calls["add"] != 2 {
		t.Fatalf("first sync: %v, want the kernel listed once and 2 routes added", k.calls)
	}
	k.reset()
	if err := tb.Sync(HostGW, hops("198.18.0.64/26", "198.51.100.19", "198.18.0.128/26", "198.51.100.20")); err != nil {
		t.Fatal(err)
	}
	if len(k.calls) != 0 {
		t.Fatalf("the same set again asked the kernel %v, want nothing", k.calls)
	}
	if err := tb.Sync(HostGW, hops("198.18.0.64/26", "198.51.100.21")); err != nil {
		t.Fatal(err)
	}
	if k.calls["del"] != 2 || k.calls["add"] != 1 || k.calls["list"] != 0 {
		t.Fatalf("a block moved and another gone: %v, want 2 removed, 1 added, no listing", k.calls)
	}
	if !strings.Contains(k.dump(), "route 198.18.0.64/26 via 198.51.100.21 proto 213") || strings.Contains(k.dump(), "198.18.0.128/26") {
		t.Fatalf("table:\n%s", k.dump())
	}
}

// TestRefusesWhatIsNotItsOwn: a prefix the host routes (static, boot,
// kernel, dualstack's other protocol) or one overlapping its networks is
// refused, logged once with its fields, and the table stays as it was;
// withdrawing it removes nothing.
func TestRefusesWhatIsNotItsOwn(t *testing.T) {
	k := newFake()
	tb, hook := newTable(k)
	if err := tb.Sync(HostGW, hops("198.18.0.64/26", "198.51.100.19")); err != nil {
		t.Fatal(err)
	}
	before := k.dump()
	hostile := hops(
		"203.0.113.0/24", "198.51.100.19", // the admin's static route
		"198.19.9.0/24", "198.51.100.19", // proto boot
		"198.51.100.16/28", "198.51.100.19", // the LAN (proto kernel)
		"198.51.100.18/32", "198.51.100.19", // inside the LAN
		"0.0.0.0/0", "198.51.100.19", // the default route
		"0.0.0.0/1", "198.51.100.19", // around the LAN
		"198.18.5.7/32", "198.51.100.19", // inside a container network
		"198.18.6.0/23", "198.51.100.19", // around one
		"198.18.0.64/26", "198.51.100.19", // host-gw's
	)
	for range 2 {
		if err := tb.Sync(Learned, hostile); err != nil {
			t.Fatal(err)
		}
	}
	if after := k.dump(); after != before {
		t.Fatalf("hostile routes changed the table:\n%s\nwant\n%s", after, before)
	}
	refused := tb.Refused(Learned)
	if len(refused) != len(hostile) {
		t.Fatalf("refused %v, want all %d", refused, len(hostile))
	}
	for p, want := range map[string]string{
		"203.0.113.0/24": "proto static", "198.19.9.0/24": "proto boot", "0.0.0.0/0": "proto static",
		"198.51.100.16/28": "dev uplink proto kernel", "198.51.100.18/32": "local route 198.51.100.18/32 table local proto kernel", "0.0.0.0/1": "a network of this host's (interface", "198.18.5.7/32": "local container network 198.18.5.0/24",
		"198.18.6.0/23": "local container network 198.18.6.0/24", "198.18.0.64/26": "a host-gw route of dualstack's",
	} {
		if !strings.Contains(refused[pfx(p)], want) {
			t.Errorf("%s refused with %q, want it to say %q", p, refused[pfx(p)], want)
		}
	}
	var warned int
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warned++
			for _, f := range []string{"network", "prefix", "via", "reason"} {
				if _, ok := e.Data[f]; !ok {
					t.Errorf("conflict logged without field %s: %v", f, e.Data)
				}
			}
		}
	}
	if warned != len(hostile) {
		t.Errorf("%d conflicts logged for %d refused prefixes synced twice, want one each", warned, len(hostile))
	}
	if err := tb.Sync(Learned, nil); err != nil {
		t.Fatal(err)
	}
	if after := k.dump(); after != before || len(tb.Refused(Learned)) != 0 {
		t.Fatalf("withdrawing changed the table:\n%s\nwant\n%s", after, before)
	}
}

// TestNextHopChecks: off-link, unreachable, local, container and
// wrong-family next hops are refused before the kernel is asked to add.
func TestNextHopChecks(t *testing.T) {
	k := newFake()
	tb, _ := newTable(k)
	for via, why := range map[string]string{
		"198.51.100.99": "not on a network this host reaches directly: the host routes it by route 0.0.0.0/0 via 198.51.100.17",
		"198.51.100.18": "an address of this host (interface uplink)",
		"198.18.5.9":    "inside local container network 198.18.5.0/24",
		"fd00:fab:1::1": "not of the prefix's family",
		"127.0.0.1":     "not a unicast address a route can go through",
		"0.0.0.0":       "not a unicast address",
	} {
		k.reset()
		if err := tb.Update(Learned, hops("198.18.1.0/26", via), nil); err != nil {
			t.Fatal(err)
		}
		if got := tb.Refused(Learned)[pfx("198.18.1.0/26")]; !strings.Contains(got, why) {
			t.Errorf("next hop %s refused with %q, want %q", via, got, why)
		}
		if k.calls["add"] != 0 {
			t.Errorf("next hop %s: the kernel was asked to add a route", via)
		}
	}
	// No route at all (no default route in this family).
	if err := tb.Update(Learned, hops("fd00:b1::/64", "fd00:99::1"), nil); err != nil {
		t.Fatal(err)
	}
	if got := tb.Refused(Learned)[pfx("fd00:b1::/64")]; !strings.Contains(got, "no route to it") {
		t.Errorf("an unreachable next hop refused with %q", got)
	}
	// A wrong interface.
	if err := tb.Update(HostGW, map[netip.Prefix]Hop{pfx("198.18.2.0/26"): {Via: ip("198.51.100.19"), Dev: "br0"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := tb.Refused(HostGW)[pfx("198.18.2.0/26")]; !strings.Contains(got, "not on interface br0") {
		t.Errorf("a next hop on another interface refused with %q", got)
	}
	// The right one.
	if err := tb.Update(HostGW, map[netip.Prefix]Hop{pfx("198.18.2.0/26"): {Via: ip("198.51.100.19"), Dev: "uplink"}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.Installed(HostGW)[pfx("198.18.2.0/26")]; !ok {
		t.Errorf("a next hop on the given interface refused: %v", tb.Refused(HostGW))
	}
}

// TestUpdateCost: with 10,000 routes installed, one update asks the
// kernel for that prefix only and lists nothing.
func TestUpdateCost(t *testing.T) {
	k := newFake()
	tb, _ := newTable(k)
	if err := tb.Sync(Learned, manyRoutes(10000)); err != nil {
		t.Fatal(err)
	}
	if n := len(tb.Installed(Learned)); n != 10000 {
		t.Fatalf("%d routes installed, want 10000 (refused: %d)", n, len(tb.Refused(Learned)))
	}
	k.reset()
	if err := tb.Update(Learned, hops("198.20.0.0/26", "198.51.100.20"), []netip.Prefix{pfx("198.19.0.0/32")}); err != nil {
		t.Fatal(err)
	}
	if k.calls["add"] != 1 || k.calls["del"] != 1 || k.calls["list"] != 0 || k.calls["lookup"] > 2 {
		t.Fatalf("one update asked the kernel %v, want 1 add, 1 del, no listing, at most 2 lookups", k.calls)
	}
}

// TestUpdateAfterErrorReconciles: after a failed add, the next update
// reads the kernel again and retries every wanted route, not only its own.
func TestUpdateAfterErrorReconciles(t *testing.T) {
	k := newFake()
	tb, _ := newTable(k)
	if err := tb.Sync(Learned, nil); err != nil {
		t.Fatal(err)
	}
	k.fail = unix.ENOBUFS
	if err := tb.Update(Learned, hops("198.18.0.64/26", "198.51.100.19"), nil); err == nil {
		t.Fatal("a failed add is no error")
	}
	if err := tb.Update(Learned, hops("198.18.0.128/26", "198.51.100.19"), nil); err != nil {
		t.Fatal(err)
	}
	if got := tb.Installed(Learned); len(got) != 2 {
		t.Fatalf("after the error, installed %v: want both routes", got)
	}
}

// TestReadsKernelAfterError: a failed add makes the next change read the
// kernel's table again.
func TestReadsKernelAfterError(t *testing.T) {
	k := newFake()
	tb, _ := newTable(k)
	k.fail = unix.ENOBUFS
	if err := tb.Sync(HostGW, hops("198.18.0.64/26", "198.51.100.19")); err == nil || !strings.Contains(err.Error(), "198.18.0.64/26") {
		t.Fatalf("a failed add: %v, want an error naming the prefix", err)
	}
	k.reset()
	if err := tb.Sync(HostGW, hops("198.18.0.64/26", "198.51.100.19")); err != nil {
		t.Fatal(err)
	}
	if k.calls["list"] != 1 || k.calls["add"] != 1 {
		t.Fatalf("after an error: %v, want the kernel listed again and the route added", k.calls)
	}
}

// manyRoutes is n /32 routes in 198.19.0.0/16 via the router.
func manyRoutes(n int) map[netip.Prefix]Hop {
	m := make(map[netip.Prefix]Hop, n)
	a := ip("198.19.0.0")
	for range n {
		m[netip.PrefixFrom(a, 32)] = Hop{Via: ip("198.51.100.17")}
		a = a.Next()
	}
	return m
}
