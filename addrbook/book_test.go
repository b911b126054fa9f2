package addrbook

import (
	"fmt"
	"io"
	"math/rand"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/state"
)

// testEnv is a driver over a state file in a temporary directory, which can
// be reopened to simulate a plugin restart.
type testEnv struct {
	t    *testing.T
	dir  string
	db   state.Store
	d    *Book
	host []netip.Prefix
	// leases, when set, is the cluster store of this "host".
	leases Leases
	// clock, when set, is the book's clock; statusDir its StatusDir; log
	// its logger (nil: discarded).
	clock     *time.Time
	statusDir string
	log       *logrus.Logger
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir()}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e
}

func (e *testEnv) open() {
	e.t.Helper()
	db, err := state.Open(e.dir, time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	log := e.log
	if log == nil {
		log = logrus.New()
		log.SetOutput(io.Discard)
	}
	var now func() time.Time
	if e.clock != nil {
		now = func() time.Time { return *e.clock }
	}
	d, err := New(Config{
		DB:           db,
		MachineID:    "0123456789abcdef0123456789abcdef",
		HostPrefixes: func(bool) ([]netip.Prefix, error) { return e.host, nil },
		Log:          log,
		Leases:       e.leases,
		StatusDir:    e.statusDir,
		Now:          now,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.db, e.d = db, d
}

// restart closes the state file and loads it again, as a new plugin
// process would.
func (e *testEnv) restart() {
	e.t.Helper()
	if err := e.db.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *testEnv) pool(pool, sub string, v6 bool) string {
	e.t.Helper()
	r, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, Subnet: pool, Range: sub, V6: v6})
	if err != nil {
		e.t.Fatalf("RequestPool(%s, %s): %v", pool, sub, err)
	}
	return r.ID
}

// addr asks for an address as the IPAM driver does: a gateway the user
// named is Gateway, one to pick AutoGateway.
func (e *testEnv) addr(poolID, preferred string, owner Owner) (string, error) {
	if owner.Kind == Gateway && preferred == "" {
		owner.Kind = AutoGateway
	}
	r, err := e.d.RequestAddress(poolID, preferred, owner)
	if err != nil {
		return "", err
	}
	return r.String(), nil
}

func (e *testEnv) mustAddr(poolID, preferred string, owner Owner) string {
	e.t.Helper()
	a, err := e.addr(poolID, preferred, owner)
	if err != nil {
		e.t.Fatalf("RequestAddress(%s, %q): %v", poolID, preferred, err)
	}
	return a
}

func (e *testEnv) release(poolID, addr string) {
	e.t.Helper()
	a, err := ParseAddr(addr)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.d.Release(poolID, a); err != nil {
		e.t.Fatalf("ReleaseAddress(%s): %v", addr, err)
	}
}

var gw = Owner{Kind: Gateway}

func mac(i int) Owner { return MACOwner(fmt.Sprintf("02:42:00:00:%02x:%02x", i/256, i%256)) }

func TestSequentialAllocation(t *testing.T) {
	cases := []struct {
		name, pool, sub string
		v6              bool
		want            []string // gateway, then three addresses, then the one after releasing the second
	}{
		{"ipv4 /24", "192.0.2.0/24", "", false, []string{"192.0.2.1/24", "192.0.2.2/24", "192.0.2.3/24", "192.0.2.4/24", "192.0.2.5/24"}},
		{"ipv4 /24 with ip-range", "192.0.2.0/24", "192.0.2.128/25", false, []string{"192.0.2.128/24", "192.0.2.129/24", "192.0.2.130/24", "192.0.2.131/24", "192.0.2.132/24"}},
		{"ipv6 /64", "2001:db8:1::/64", "", true, []string{"2001:db8:1::1/64", "2001:db8:1::2/64", "2001:db8:1::3/64", "2001:db8:1::4/64", "2001:db8:1::5/64"}},
		{"ipv6 /48", "2001:db8::/48", "", true, []string{"2001:db8::1/48", "2001:db8::2/48", "2001:db8::3/48", "2001:db8::4/48", "2001:db8::5/48"}},
		{"ipv6 /64 with ip-range", "fd00:1::/64", "fd00:1::ff00/120", true, []string{"fd00:1::ff00/64", "fd00:1::ff01/64", "fd00:1::ff02/64", "fd00:1::ff03/64", "fd00:1::ff04/64"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			id := e.pool(c.pool, c.sub, c.v6)
			got := []string{e.mustAddr(id, "", gw)}
			for i := 0; i < 3; i++ {
				got = append(got, e.mustAddr(id, "", mac(i)))
			}
			e.release(id, got[2])
			got = append(got, e.mustAddr(id, "", mac(9)))
			if strings.Join(got, " ") != strings.Join(c.want, " ") {
				t.Fatalf("got %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestWrapAroundAndExhaustion(t *testing.T) {
	e := newEnv(t)
	id := e.pool("198.51.100.0/29", "", false) // usable .1-.6
	e.mustAddr(id, "", gw)
	for i := 2; i <= 6; i++ {
		if got := e.mustAddr(id, "", mac(i)); got != fmt.Sprintf("198.51.100.%d/29", i) {
			t.Fatalf("address %d: got %s", i, got)
		}
	}
	e.release(id, "198.51.100.4")
	e.release(id, "198.51.100.3")
	if got := e.mustAddr(id, "", mac(20)); got != "198.51.100.3/29" {
		t.Fatalf("after wrap-around got %s, want the lowest freed address .3", got)
	}
	e.mustAddr(id, "", mac(21))
	_, err := e.addr(id, "", mac(22))
	if err == nil || !strings.Contains(err.Error(), "198.51.100.0/29 is exhausted") {
		t.Fatalf("full pool: err = %v", err)
	}
}

func TestTinyPools(t *testing.T) {
	e := newEnv(t)
	id := e.pool("192.0.2.0/30", "", false)
	if got := e.mustAddr(id, "", gw); got != "192.0.2.1/30" {
		t.Fatalf("gateway %s", got)
	}
	if got := e.mustAddr(id, "", mac(1)); got != "192.0.2.2/30" {
		t.Fatalf("first %s", got)
	}
	if _, err := e.addr(id, "", mac(2)); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("/30 after two addresses: err = %v", err)
	}
	// /31 and /32 (RFC 3021) and /128 use every address.
	for _, c := range []struct {
		pool string
		v6   bool
		want string
	}{{"198.51.100.0/31", false, "198.51.100.0/31"}, {"198.51.100.9/32", false, "198.51.100.9/32"}, {"2001:db8:5::7/128", true, "2001:db8:5::7/128"}} {
		id := e.pool(c.pool, "", c.v6)
		if got := e.mustAddr(id, "", mac(3)); got != c.want {
			t.Fatalf("%s: first address %s, want %s", c.pool, got, c.want)
		}
	}
}

func TestPreferredAddresses(t *testing.T) {
	e := newEnv(t)
	id := e.pool("192.0.2.0/24", "192.0.2.128/25", false)
	e.mustAddr(id, "", gw)
	// Anywhere in the pool, also outside the ip-range, in either form.
	if got := e.mustAddr(id, "192.0.2.10", mac(1)); got != "192.0.2.10/24" {
		t.Fatalf("preferred: %s", got)
	}
	if got := e.mustAddr(id, "192.0.2.11/24", mac(2)); got != "192.0.2.11/24" {
		t.Fatalf("preferred in CIDR form: %s", got)
	}
	// A preferred address does not move the sequence.
	if got := e.mustAddr(id, "", mac(3)); got != "192.0.2.129/24" {
		t.Fatalf("sequence after preferred: %s", got)
	}
	bad := []struct{ addr, want string }{
		{"192.0.2.10", "address 192.0.2.10 is already in use in pool 192.0.2.0/24"},
		{"198.51.100.1", "address 198.51.100.1 is outside pool 192.0.2.0/24"},
		{"192.0.2.0", "192.0.2.0 cannot be assigned"},
		{"192.0.2.255", "192.0.2.255 cannot be assigned"},
		{"not-an-ip", `invalid address "not-an-ip"`},
		{"2001:db8::1", "outside pool"},
	}
	for _, b := range bad {
		_, err := e.addr(id, b.addr, mac(50))
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("RequestAddress(%s): err = %v, want %q", b.addr, err, b.want)
		}
	}
	// None of the failures allocated anything.
	if got := e.mustAddr(id, "", mac(4)); got != "192.0.2.130/24" {
		t.Fatalf("after failures: %s, want 192.0.2.130/24", got)
	}
}

func TestRequestPoolValidation(t *testing.T) {
	e := newEnv(t)
	e.pool("192.0.2.0/24", "", false)
	e.pool("2001:db8:1::/64", "", true)
	cases := []struct {
		pool, sub string
		v6        bool
		want      string
	}{
		{"2001:db8::/129", "", true, `invalid subnet "2001:db8::/129"`},
		{"192.0.2.0/33", "", false, `invalid subnet "192.0.2.0/33"`},
		{"banana", "", false, `invalid subnet "banana"`},
		{"198.51.100.0/24", "198.51.101.0/25", false, "ip-range 198.51.101.0/25 is not inside subnet 198.51.100.0/24"},
		{"198.51.100.0/24", "198.51.100.0/23", false, "is not inside subnet"},
		{"198.51.100.0/24", "2001:db8::/64", false, "different address families"},
		{"198.51.100.0/24", "", true, "is not an IPv6 subnet"},
		{"2001:db8:9::/64", "", false, "is not an IPv4 subnet"},
		{"192.0.2.128/25", "", false, "subnet 192.0.2.128/25 overlaps subnet 192.0.2.0/24"},
		{"192.0.0.0/16", "", false, "overlaps subnet 192.0.2.0/24"},
		{"2001:db8:1::/64", "", true, "overlaps subnet 2001:db8:1::/64"},
		{"", "192.0.2.0/25", false, "given without a subnet"},
		// The catalogue's subnets (validate.Subnet), refused by the IPAM
		// before any pool exists.
		{"255.255.255.255/32", "", false, "limited broadcast"},
		{"240.0.0.0/8", "", false, "240.0.0.0/4, reserved"},
		{"0.1.0.0/16", "", false, `0.0.0.0/8, "this network"`},
		{"::/128", "", true, "::/96"},
		{"127.0.0.0/8", "", false, "loopback"},
	}
	for _, c := range cases {
		_, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, Subnet: c.pool, Range: c.sub, V6: c.v6})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RequestPool(%q, %q): err = %v, want %q", c.pool, c.sub, err, c.want)
		}
	}
	if n := len(e.d.pools); n != 2 {
		t.Fatalf("failed requests left %d pools, want 2", n)
	}
	// Another address space may reuse the subnet.
	if _, err := e.d.RequestPool(PoolRequest{Space: GlobalAddressSpace, Subnet: "192.0.2.0/24"}); err != nil {
		t.Fatalf("same subnet in the global space: %v", err)
	}
}

// TestRetriedRequestsAreIdempotent covers requests Docker sends twice: a
// retry after a plugin crash lost the answer, and a replay of known
// addresses. The same address comes back, and nothing is allocated twice.
func TestRetriedRequestsAreIdempotent(t *testing.T) {
	e := newEnv(t)
	id := e.pool("2001:db8:7::/64", "", true)
	g := e.mustAddr(id, "", gw)
	a := e.mustAddr(id, "", mac(1))
	e.restart()
	if again := e.mustAddr(id, "", gw); again != g {
		t.Fatalf("retried gateway request got %s, want %s", again, g)
	}
	if again := e.mustAddr(id, "", mac(1)); again != a {
		t.Fatalf("retried request got %s, want %s", again, a)
	}
	if again := e.mustAddr(id, "2001:db8:7::1", gw); again != g {
		t.Fatalf("replayed gateway got %s, want %s", again, g)
	}
	if _, err := e.addr(id, "2001:db8:7::2", mac(2)); err == nil {
		t.Fatal("another endpoint got an address that is in use")
	}
	if next := e.mustAddr(id, "", mac(2)); next != "2001:db8:7::3/64" {
		t.Fatalf("next after retries: %s, want ::3 (no double allocation)", next)
	}
	// After release the MAC no longer holds an address.
	e.release(id, "2001:db8:7::2")
	if next := e.mustAddr(id, "", mac(1)); next != "2001:db8:7::4/64" {
		t.Fatalf("after release: %s, want ::4", next)
	}
}

// TestOneMACTwoEndpoints: two endpoints given one MAC address (docker run
// --mac-address twice) get two addresses, never one address twice; a
// retry after a restart still gets its address back, unless an endpoint
// holds it already.
func TestOneMACTwoEndpoints(t *testing.T) {
	e := newEnv(t)
	id := e.pool("198.51.100.0/24", "", false)
	a := e.mustAddr(id, "", mac(7))
	b := e.mustAddr(id, "", mac(7))
	if a == b {
		t.Fatalf("two requests from one MAC in one process got one address, %s", a)
	}
	if _, err := e.addr(id, strings.TrimSuffix(b, "/24"), mac(7)); err == nil {
		t.Fatalf("a third endpoint with the MAC got %s, which the second holds", b)
	}
	// After a restart: the MAC holds b (the index keeps the latest); no
	// endpoint has claimed it yet, so a request is a retry.
	e.restart()
	if again := e.mustAddr(id, "", mac(7)); again != b {
		t.Fatalf("retry after a restart got %s, want %s", again, b)
	}
	// Once an endpoint holds the address, the same MAC gets another one,
	// also on the first request after a restart.
	e.restart()
	held := netip.MustParsePrefix(b).Addr()
	e.d.Claim(Claim{Endpoint: "x", Network: "n", Addrs: []netip.Addr{held}})
	if c := e.mustAddr(id, "", mac(7)); c == a || c == b {
		t.Fatalf("a MAC whose address an endpoint holds got %s again (a %s, b %s)", c, a, b)
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	v4 := e.pool("192.0.2.0/24", "", false)
	v6 := e.pool("2001:db8:1::/64", "", true)
	for _, id := range []string{v4, v6} {
		e.mustAddr(id, "", gw)
		e.mustAddr(id, "", mac(1))
		e.mustAddr(id, "", mac(2))
		e.mustAddr(id, "", mac(3))
	}
	e.release(v4, "192.0.2.3")
	e.restart()
	if got := e.mustAddr(v4, "", mac(4)); got != "192.0.2.5/24" {
		t.Fatalf("after restart the sequence continues at .5, got %s", got)
	}
	if got := e.mustAddr(v6, "", mac(4)); got != "2001:db8:1::5/64" {
		t.Fatalf("after restart the IPv6 sequence continues at ::5, got %s", got)
	}
	for _, a := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.4"} {
		if _, err := e.addr(v4, a, mac(60)); err == nil || !strings.Contains(err.Error(), "already in use") {
			t.Fatalf("%s was lost across the restart: err = %v", a, err)
		}
	}
	if got := e.mustAddr(v4, "192.0.2.3", mac(61)); got != "192.0.2.3/24" {
		t.Fatalf("released address not free after restart: %s", got)
	}
	if _, err := e.d.RequestPool(PoolRequest{Subnet: "192.0.2.0/25"}); err == nil {
		t.Fatal("held pool forgotten across the restart")
	}
}

func TestReleaseIsIdempotent(t *testing.T) {
	e := newEnv(t)
	id := e.pool("192.0.2.0/24", "", false)
	a := e.mustAddr(id, "", mac(1))
	e.release(id, a)
	e.release(id, a)
	e.release(id, "192.0.2.200")
	e.release("local/no-such-pool", "192.0.2.1")
	if _, err := ParseAddr("junk"); err == nil {
		t.Fatal("an unparsable address should say so")
	}
	for i := 0; i < 2; i++ {
		if err := e.d.ReleasePool(id); err != nil {
			t.Fatalf("ReleasePool #%d: %v", i+1, err)
		}
	}
	// Releasing the pool freed its addresses: the subnet starts afresh.
	id = e.pool("192.0.2.0/24", "", false)
	if got := e.mustAddr(id, "", gw); got != "192.0.2.1/24" {
		t.Fatalf("gateway after pool release: %s", got)
	}
	if got := e.mustAddr(id, "", mac(1)); got != "192.0.2.2/24" {
		t.Fatalf("first address after pool release: %s", got)
	}
	e.restart()
	if got := e.mustAddr(id, "", mac(2)); got != "192.0.2.3/24" {
		t.Fatalf("after restart: %s", got)
	}
}

func TestDefaultPools(t *testing.T) {
	e := newEnv(t)
	e.host = []netip.Prefix{netip.MustParsePrefix("10.201.0.0/24"), netip.MustParsePrefix("10.201.2.0/23")}
	e.pool("10.201.1.0/24", "", false) // held explicitly
	var got []string
	for i := 0; i < 3; i++ {
		r, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Prefix.String())
	}
	if want := "10.201.4.0/24 10.201.5.0/24 10.201.6.0/24"; strings.Join(got, " ") != want {
		t.Fatalf("default IPv4 pools %v, want %s (skipping host routes and held pools)", got, want)
	}
	var v6 []netip.Prefix
	for i := 0; i < 2; i++ {
		r, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, V6: true})
		if err != nil {
			t.Fatal(err)
		}
		v6 = append(v6, r.Prefix)
	}
	ula := ULAPrefix("0123456789abcdef0123456789abcdef")
	for _, p := range v6 {
		if p.Bits() != 64 || !ula.Contains(p.Addr()) {
			t.Fatalf("IPv6 default %s is not a /64 of %s", p, ula)
		}
	}
	if v6[0] == v6[1] {
		t.Fatalf("two networks got the same /64 %s", v6[0])
	}
	e.restart()
	r, err := e.d.RequestPool(PoolRequest{Space: LocalAddressSpace, V6: true})
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Prefix; p == v6[0] || p == v6[1] || !ula.Contains(p.Addr()) {
		t.Fatalf("after restart got %s, held %v", p, v6)
	}
	r, err = e.d.RequestPool(PoolRequest{Space: LocalAddressSpace})
	if err != nil || r.Prefix.String() != "10.201.7.0/24" {
		t.Fatalf("after restart IPv4 default = %v, %v; want 10.201.7.0/24", r, err)
	}
}

func TestDefaultPoolsExhausted(t *testing.T) {
	e := newEnv(t)
	pools, err := ParseDefaultPools("10.9.0.0/29:30")
	if err != nil {
		t.Fatal(err)
	}
	e.d.defaultV4 = pools
	e.d.RequestPool(PoolRequest{})
	e.d.RequestPool(PoolRequest{})
	if _, err := e.d.RequestPool(PoolRequest{}); err == nil || !strings.Contains(err.Error(), "DEFAULT_POOLS_V4") {
		t.Fatalf("exhausted defaults: err = %v", err)
	}
}

func TestULAIsStable(t *testing.T) {
	a, b := ULAPrefix("3d1219c7c4c5404aaa1f6d2a48adfda4"), ULAPrefix("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
	if a != b || a.Bits() != 48 || a.Addr().As16()[0] != 0xfd {
		t.Fatalf("ULA %s / %s", a, b)
	}
	if ULAPrefix("another machine") == a {
		t.Fatal("different machines share a ULA prefix")
	}
}

func TestHostIDFallback(t *testing.T) {
	dir := t.TempDir()
	open := func() netip.Prefix {
		db, err := state.Open(dir, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		log := logrus.New()
		log.SetOutput(io.Discard)
		d, err := New(Config{DB: db, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		return d.ULA()
	}
	if a, b := open(), open(); a != b {
		t.Fatalf("without a machine ID the ULA changed across restarts: %s then %s", a, b)
	}
}

func TestParseDefaultPools(t *testing.T) {
	good, err := ParseDefaultPools(" 10.201.0.0/16:24 , 10.99.0.0/24")
	if err != nil || len(good) != 2 || good[0].Size != 24 || good[1].Size != 24 || good[1].Base.String() != "10.99.0.0/24" {
		t.Fatalf("got %v, %v", good, err)
	}
	for _, bad := range []string{"", "10.0.0.0/8:4", "10.0.0.0/8:31", "2001:db8::/48:64", "x", "10.0.0.0/8:24x", "0.0.0.0/0:30", "192.0.2.0/31", "192.0.2.1/32", "192.0.2.0/31:31",
		"240.0.0.0/8:24", "0.1.0.0/16:24", "127.0.0.0/8:24", "224.0.0.0/8:24", "169.254.0.0/16:24", "10.0.0.0/7:24"} {
		if _, err := ParseDefaultPools(bad); err == nil || !strings.Contains(err.Error(), "DEFAULT_POOLS_V4") {
			t.Errorf("ParseDefaultPools(%q): err = %v", bad, err)
		}
	}
}

func TestNthSubnet(t *testing.T) {
	cases := []struct {
		base string
		size int
		n    uint64
		want string
	}{
		{"10.201.0.0/16", 24, 0, "10.201.0.0/24"},
		{"10.201.0.0/16", 24, 255, "10.201.255.0/24"},
		{"fd12:3456:789a::/48", 64, 0, "fd12:3456:789a::/64"},
		{"fd12:3456:789a::/48", 64, 0xffff, "fd12:3456:789a:ffff::/64"},
		{"2001:db8::/32", 96, 1, "2001:db8::1:0:0/96"},
		{"2001:db8::/32", 63, 3, "2001:db8:0:6::/63"},
		{"2001:db8::/64", 120, 0x1ff, "2001:db8::1:ff00/120"},
	}
	for _, c := range cases {
		if got := nthSubnet(netip.MustParsePrefix(c.base), c.size, c.n).String(); got != c.want {
			t.Errorf("nthSubnet(%s, %d, %d) = %s, want %s", c.base, c.size, c.n, got, c.want)
		}
	}
}

// TestConcurrentRequests runs requests for several pools from many
// goroutines (go test -race): every address is handed out once.
func TestConcurrentRequests(t *testing.T) {
	e := newEnv(t)
	ids := []string{e.pool("192.0.2.0/24", "", false), e.pool("2001:db8:1::/64", "", true), e.pool("fd00:2::/48", "", true)}
	const workers, each = 8, 25
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*len(ids))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < each; i++ {
				for _, k := range r.Perm(len(ids)) {
					a, err := e.addr(ids[k], "", mac(w*each+i))
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if seen[a] {
						errs <- fmt.Errorf("%s handed out twice", a)
					}
					seen[a] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(seen) != workers*each*len(ids) {
		t.Fatalf("%d addresses, want %d", len(seen), workers*each*len(ids))
	}
	// Sequential: each pool holds exactly the first workers*each addresses.
	e.restart()
	for _, id := range ids {
		p := e.d.pools[id]
		if p.alloc.Runs() != 1 {
			t.Fatalf("pool %s: %d runs after sequential allocation, want 1", id, p.alloc.Runs())
		}
	}
}

// TestPoolOrderDoesNotMatter requests the same pools in every order: each
// pool's ID and addresses depend only on the pool.
func TestPoolOrderDoesNotMatter(t *testing.T) {
	pools := []string{"2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64"}
	var first map[string]string
	for _, perm := range [][]int{{0, 1, 2}, {2, 0, 1}, {1, 2, 0}} {
		e := newEnv(t)
		got := map[string]string{}
		for _, i := range perm {
			id := e.pool(pools[i], "", true)
			got[id] = e.mustAddr(id, "", gw) + " " + e.mustAddr(id, "", mac(1))
		}
		if first == nil {
			first = got
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("order %v gave %v, order 0,1,2 gave %v", perm, got, first)
		}
	}
}

func TestUnknownPool(t *testing.T) {
	e := newEnv(t)
	if _, err := e.addr("local/10.0.0.0/8", "", Owner{}); err == nil || !strings.Contains(err.Error(), `no pool "local/10.0.0.0/8"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestStateFileIsLocked(t *testing.T) {
	e := newEnv(t)
	if _, err := state.Open(e.dir, 100*time.Millisecond); err == nil || !strings.Contains(err.Error(), "another dualstack process") {
		t.Fatalf("second open of %s: err = %v", filepath.Join(e.dir, state.FileName), err)
	}
}

func TestInternalAllocation(t *testing.T) {
	e := newEnv(t)
	id := e.pool("2001:db8:2::/64", "", true)
	e.mustAddr(id, "", gw)
	got, ok := e.d.PoolFor("", netip.MustParsePrefix("2001:db8:2::/64"))
	if !ok || got != id {
		t.Fatalf("PoolFor = %q, %v", got, ok)
	}
	if _, ok := e.d.PoolFor(LocalAddressSpace, netip.MustParsePrefix("2001:db8:3::/64")); ok {
		t.Fatal("PoolFor found a pool that is not held")
	}
	a, err := e.d.Allocate(id, EndpointOwner("1"))
	if err != nil || a.String() != "2001:db8:2::2/64" {
		t.Fatalf("Allocate = %s, %v", a, err)
	}
	if again, _ := e.d.Allocate(id, EndpointOwner("1")); again != a {
		t.Fatalf("second Allocate for the same owner = %s, want %s", again, a)
	}
	if b, _ := e.d.Allocate(id, EndpointOwner("2")); b.String() != "2001:db8:2::3/64" {
		t.Fatalf("next owner got %s", b)
	}
	if _, err := e.d.Allocate(id, Owner{}); err == nil {
		t.Fatal("allocation without owner accepted")
	}
	if err := e.d.Release(id, a.Addr()); err != nil {
		t.Fatal(err)
	}
	if c, _ := e.d.Allocate(id, EndpointOwner("1")); c.String() != "2001:db8:2::4/64" {
		t.Fatalf("after release, owner got %s, want the next address", c)
	}
}

// FuzzParse feeds arbitrary strings to the parsers of pools, addresses and
// DEFAULT_POOLS_V4: they never panic, and what they accept is valid.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"192.0.2.0/24", "2001:db8::/129", "fe80::1%eth0/64", "::ffff:1.2.3.4/120", "10.201.0.0/16:24,10.202.0.0/16", " ", "1.2.3.4/33:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := parsePrefix("subnet", s); err == nil {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("parsePrefix(%q) accepted %s", s, p)
			}
			if first, last := usableRange(p); first.IsValid() && last.Less(first) {
				t.Fatalf("usableRange(%s) = %s-%s", p, first, last)
			}
		}
		if a, err := ParseAddr(s); err == nil && !a.IsValid() {
			t.Fatalf("ParseAddr(%q) accepted an invalid address", s)
		}
		if pools, err := ParseDefaultPools(s); err == nil {
			for _, p := range pools {
				if p.Size < p.Base.Bits() || p.Size > 30 || !p.Base.Addr().Is4() {
					t.Fatalf("ParseDefaultPools(%q) accepted %+v", s, p)
				}
			}
		}
	})
}
