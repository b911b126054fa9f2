package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestSubnet64(t *testing.T) {
	cases := []struct {
		prefix string
		id     uint64
		want   string // "" when it does not fit
	}{
		{"2001:db8:100::/56", 1, "2001:db8:100:1::/64"},
		{"2001:db8:100::/56", 0x1a, "2001:db8:100:1a::/64"},
		{"2001:db8:100::/56", 255, "2001:db8:100:ff::/64"},
		{"2001:db8:100::/56", 256, ""},
		{"2001:db8:1230::/44", 0xabcde, "2001:db8:123a:bcde::/64"},
		{"2001:db8:100:5::/64", 0, "2001:db8:100:5::/64"},
		{"2001:db8:100:5::/64", 1, ""},
		{"2001:db8:100:5::/72", 0, ""},
		{"2001:db8:100:ff::/56", 2, "2001:db8:100:2::/64"}, // host bits of the prefix ignored
	}
	for _, c := range cases {
		got, ok := subnet64(netip.MustParsePrefix(c.prefix), c.id)
		if c.want == "" {
			if ok {
				t.Errorf("subnet64(%s, %d) = %s, want none", c.prefix, c.id, got)
			}
			continue
		}
		if !ok || got.String() != c.want {
			t.Errorf("subnet64(%s, %d) = %s %v, want %s", c.prefix, c.id, got, ok, c.want)
		}
	}
}

func TestWithHost(t *testing.T) {
	got := withHost(netip.MustParsePrefix("2001:db8:100:1::/64"), netip.MustParseAddr("fd00:24::a:0:0:2"))
	if got.String() != "2001:db8:100:1:a::2/64" {
		t.Fatalf("withHost = %s, want 2001:db8:100:1:a::2/64", got)
	}
}

func TestDelegatedOptions(t *testing.T) {
	opts := func(kv ...string) map[string]interface{} {
		g := map[string]interface{}{}
		for i := 0; i < len(kv); i += 2 {
			g[kv[i]] = kv[i+1]
		}
		return map[string]interface{}{optEnableIPv6: true, optGeneric: g}
	}
	o, err := parseOptions("aaaaaaaaaaaa", opts("delegated_prefix", "eth0", "delegated_subnet", "0x1a"))
	if err != nil || o.Delegated != "eth0" || o.DelegatedSubnet != "26" {
		t.Fatalf("parse = %+v, %v; want delegated eth0, subnet 26", o, err)
	}
	refused := []struct {
		opts map[string]interface{}
		want string
	}{
		{opts("delegated_subnet", "1"), "add -o delegated_prefix=IF"},
		{opts("delegated_prefix", "eth0", "delegated_subnet", "x"), "want a subnet ID"},
		{opts("delegated_prefix", "eth0", "ipv6_mode", "nat"), "ipv6_mode=nat hides"},
		{opts("delegated_prefix", "eth0", "ndp_proxy", "eth0"), "drop one"},
		{opts("delegated_prefix", "eth0", "announce", "true"), "announce=true"},
		{opts("delegated_prefix", "eth0", "mode", "macvlan", "parent", "eth0"), "not for mode=macvlan"},
		{map[string]interface{}{optGeneric: map[string]interface{}{"delegated_prefix": "eth0"}}, "needs IPv6"},
	}
	for _, c := range refused {
		_, err := parseOptions("aaaaaaaaaaaa", c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("options %v: error %v, want one saying %q", c.opts, err, c.want)
		}
	}
}

// fakeDelegations hands out the lease a test sets.
type fakeDelegations struct {
	mu      sync.Mutex
	lease   delegation.Lease
	holders map[string]bool
	dropped []string
}

func (f *fakeDelegations) Hold(uplink, holder string) (delegation.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holders[holder] = true
	l := f.lease
	l.Uplink = uplink
	return l, nil
}

func (f *fakeDelegations) Drop(uplink, holder string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.holders, holder)
	f.dropped = append(f.dropped, holder)
	return nil
}

func (f *fakeDelegations) Lease(uplink string) (delegation.Lease, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.lease
	l.Uplink = uplink
	return l, true
}

func (f *fakeDelegations) set(l delegation.Lease) {
	f.mu.Lock()
	f.lease = l
	f.mu.Unlock()
}

// TestDelegatedRenumbering: a delegated_prefix network's bridge and
// container get the /64 of the delegated prefix with the host parts of
// their ULA addresses and the prefix's lifetimes, and the unreachable
// route of the prefix; a new prefix is added at once and the old one
// deprecated with its valid lifetime kept; the network's removal drops
// the client and the route.
func TestDelegatedRenumbering(t *testing.T) {
	now := time.Now()
	first := delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:100::/56"), Preferred: now.Add(30 * time.Second), Valid: now.Add(60 * time.Second)}
	fake := &fakeDelegations{holders: map[string]bool{}, lease: delegation.Lease{State: "bound", Current: &first}}
	dir := t.TempDir()
	h := newHarnessWith(t, func(c *Config) { c.Delegations = fake; c.StateDir = dir })
	h.host.IP(t, "link", "add", "dspd0", "type", "veth", "peer", "name", "dspd1")
	const nid = "aaaaaaaaaaaa2424"
	opts := map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"delegated_prefix": "dspd0"}}
	h.in(func() error { return h.d.CreateNetwork(h.network(nid, opts, "198.51.100.0/24", "fd00:24::/64")) })
	if !fake.holders[nid] {
		t.Fatal("the network holds no client of dspd0")
	}
	br := "ds-aaaaaaaaaaaa"
	if a := findAddr(h.host.Addrs(t, br), "2001:db8:100:1::1/64"); a == nil || !a.NoDAD || a.Deprecated || a.Valid > 60 || a.Valid < 55 {
		t.Fatalf("bridge %s: global gateway 2001:db8:100:1::1/64 = %+v, want it nodad, preferred, valid for at most 60 s", br, a)
	}
	if out := string(h.host.IP(t, "-6", "route", "show", "proto", "216")); !strings.Contains(out, "unreachable 2001:db8:100::/56") {
		t.Fatalf("routes of protocol 216 = %q, want unreachable 2001:db8:100::/56", out)
	}

	const eid, mac = "bbbbbbbbbbbb2424", "02:42:c0:00:24:02"
	h.endpoint(nid, eid, mac, "198.51.100.0/24", "fd00:24::/64")
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	h.moveIn(sb, "dscbbbbbbbbbbbb", "eth0", "198.51.100.2/24", "fd00:24::2/64")
	h.in(func() error {
		return h.d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
	})
	if a := findAddr(sb.Addrs(t, "eth0"), "2001:db8:100:1::2/64"); a == nil || !a.NoDAD || a.Deprecated {
		t.Fatalf("container: global address 2001:db8:100:1::2/64 = %+v (has %v), want it nodad and preferred", a, sb.Addrs(t, "eth0"))
	}

	// The prefix changes: the old one goes stale, its valid lifetime kept.
	second := delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:200::/56"), Preferred: now.Add(30 * time.Second), Valid: now.Add(60 * time.Second)}
	stale := first
	stale.Preferred = time.Now()
	fake.set(delegation.Lease{State: "bound", Current: &second, Stale: []delegation.Prefix{stale}})
	h.d.PrefixChanged(delegation.Lease{Uplink: "dspd0"})
	// The driver takes the change up on a goroutine of its own and writes
	// the status file last, once addresses, routes and firewall follow.
	var st PrefixStatus
	eventually(t, 3*time.Second, "the status file shows the network's /64 of 2001:db8:200::/56", func() bool {
		data, err := os.ReadFile(filepath.Join(dir, PrefixStatusFile))
		return err == nil && json.Unmarshal(data, &st) == nil && len(st.Networks) == 1 &&
			st.Networks[0].Current != nil && st.Networks[0].Current.Prefix.String() == "2001:db8:200:1::/64"
	})
	if len(st.Networks[0].Deprecated) != 1 || st.Networks[0].Deprecated[0].Prefix.String() != "2001:db8:100:1::/64" {
		t.Fatalf("status file networks = %+v, want 2001:db8:100:1::/64 deprecated", st.Networks)
	}
	addrs := sb.Addrs(t, "eth0")
	if a := findAddr(addrs, "2001:db8:200:1::2/64"); a == nil || a.Deprecated {
		t.Fatalf("container after the change: %v, want 2001:db8:200:1::2/64 preferred", addrs)
	}
	if a := findAddr(addrs, "2001:db8:100:1::2/64"); a == nil || !a.Deprecated || a.Valid < 50 {
		t.Fatalf("container after the change: old address %+v, want it deprecated and still valid for its lifetime", a)
	}
	if a := findAddr(h.host.Addrs(t, br), "2001:db8:100:1::1/64"); a == nil || !a.Deprecated {
		t.Fatalf("bridge after the change: old gateway %+v, want it deprecated", a)
	}
	out := string(h.host.IP(t, "-6", "route", "show", "proto", "216"))
	if !strings.Contains(out, "unreachable 2001:db8:200::/56") || !strings.Contains(out, "unreachable 2001:db8:100::/56") {
		t.Fatalf("routes of protocol 216 after the change = %q, want both prefixes while both are valid", out)
	}

	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
	if !slices.Contains(fake.dropped, nid) {
		t.Error("the network's removal did not drop its client")
	}
	if out := string(h.host.IP(t, "-6", "route", "show", "proto", "216")); out != "" {
		t.Errorf("routes of protocol 216 after the network went: %q", out)
	}
}

func findAddr(addrs []netnstest.Addr, p string) *netnstest.Addr {
	for i := range addrs {
		if addrs[i].Prefix().String() == p {
			return &addrs[i]
		}
	}
	return nil
}

func TestSamePrefixes(t *testing.T) {
	now := time.Now()
	p := delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:100::/56"), Preferred: now.Add(time.Minute), Valid: now.Add(2 * time.Minute)}
	renewed := p
	renewed.Valid = p.Valid.Add(time.Minute)
	bound := delegation.Lease{State: "bound", Current: &p}
	if !samePrefixes(bound, delegation.Lease{State: "renewing", Error: "no answer", Current: &p}) {
		t.Error("a lease whose state and error alone changed has other prefixes")
	}
	if samePrefixes(bound, delegation.Lease{Current: &renewed}) {
		t.Error("a renewed lease (new lifetimes) has the same prefixes")
	}
	if samePrefixes(bound, delegation.Lease{Stale: []delegation.Prefix{p}}) {
		t.Error("a lost lease has the same prefixes")
	}
}

// TestNoPrefixWarnsOnce: the first problem of an uplink's client (no
// server answers) is said at warning, once, without renumbering.
func TestNoPrefixWarnsOnce(t *testing.T) {
	log, hook := logtest.NewNullLogger()
	fake := &fakeDelegations{holders: map[string]bool{}, lease: delegation.Lease{State: "soliciting", Error: "no server answered 1 Solicits since 12:00:00"}}
	d := &Driver{cfg: Config{Delegations: fake}, log: log, leases: map[string]delegation.Lease{"eth9": {State: "soliciting"}},
		networks: map[string]*network{"n1": {ID: "n1", Options: netOptions{Delegated: "eth9"}}}}
	d.takeLease("eth9")
	fake.set(delegation.Lease{State: "soliciting", Error: "no server answered 2 Solicits since 12:00:00"})
	d.takeLease("eth9")
	var warned []string
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warned = append(warned, e.Message)
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "no delegated prefix on the uplink for now") {
		t.Fatalf("warnings = %q, want one saying no prefix comes for now", warned)
	}
}

// TestDelegatedSubnetIDs: with a /64 delegated, a network asking for
// subnet ID 0 takes the whole /64; one taking the default (1) is refused,
// naming why, and leaves no bridge, as is one asking for an ID another
// network holds.
func TestDelegatedSubnetIDs(t *testing.T) {
	now := time.Now()
	p := delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:300:5::/64"), Preferred: now.Add(time.Minute), Valid: now.Add(2 * time.Minute)}
	fake := &fakeDelegations{holders: map[string]bool{}, lease: delegation.Lease{State: "bound", Current: &p}}
	h := newHarnessWith(t, func(c *Config) { c.Delegations = fake })
	h.host.IP(t, "link", "add", "dspd0", "type", "veth", "peer", "name", "dspd1")
	opts := func(kv ...string) map[string]interface{} {
		g := map[string]interface{}{"delegated_prefix": "dspd0"}
		for i := 0; i < len(kv); i += 2 {
			g[kv[i]] = kv[i+1]
		}
		return map[string]interface{}{optEnableIPv6: true, optGeneric: g}
	}
	h.in(func() error {
		return h.d.CreateNetwork(h.network("a1aaaaaaaaaa0001", opts("delegated_subnet", "0"), "fd00:31::/64"))
	})
	if a := findAddr(h.host.Addrs(t, "ds-a1aaaaaaaaaa"), "2001:db8:300:5::1/64"); a == nil {
		t.Fatalf("the first network's bridge: %v, want 2001:db8:300:5::1/64 (subnet ID 0 of the /64)", h.host.Addrs(t, "ds-a1aaaaaaaaaa"))
	}
	refused := []struct {
		id   string
		opts map[string]interface{}
		want string
	}{
		{"a2aaaaaaaaaa0002", opts(), "subnet ID 1 does not fit in the prefix 2001:db8:300:5::/64 delegated now, which has subnet ID 0 alone"},
		{"a3aaaaaaaaaa0003", opts("delegated_subnet", "0"), "network a1aaaaaaaaaa on dspd0 has subnet ID 0 already"},
	}
	for i, c := range refused {
		var err error
		h.in(func() error {
			err = h.d.CreateNetwork(h.network(c.id, c.opts, fmt.Sprintf("fd00:3%d::/64", i+2)))
			return nil
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("network %s: error %v, want one saying %q", c.id, err, c.want)
		}
		if out := string(h.host.IP(t, "link", "show")); strings.Contains(out, "ds-"+c.id[:12]) {
			t.Errorf("refused network %s left its bridge", c.id)
		}
	}
}

// eventually waits up to d for cond, and fails the test, saying what
// was awaited, if it never holds.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v in vain: %s", d, what)
		}
	}
}
