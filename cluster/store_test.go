package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dualstack-net/dualstack/cluster/clustertest"
)

// testLog discards logs unless DUALSTACK_TEST_LOG is set.
func testLog() logrus.FieldLogger {
	l := logrus.New()
	l.Out = io.Discard
	if os.Getenv("DUALSTACK_TEST_LOG") != "" {
		l.Out = os.Stderr
		l.Level = logrus.DebugLevel
	}
	return l
}

func openStore(t testing.TB, endpoints []string, node string, change ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{
		Endpoints: endpoints,
		Node:      node,
		TTL:       2 * time.Second,
		Timeout:   5 * time.Second,
		Log:       testLog().WithField("test", t.Name()),
	}
	for _, c := range change {
		c(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", node, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rawClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// smallDef is a network with a /24 (four /26 blocks) and a /112
// (256 /120 blocks).
// twoHosts starts an etcd for t and opens the store of two hosts on it,
// host-a and host-b.
func twoHosts(t testing.TB) (endpoints []string, a, b *Store) {
	t.Helper()
	endpoints, _, _ = clustertest.Etcd(t)
	return endpoints, openStore(t, endpoints, "host-a"), openStore(t, endpoints, "host-b")
}

func smallDef() Definition {
	return Definition{
		Mode:       ModeBridge,
		Subnets:    []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24"), netip.MustParsePrefix("fd00:1::/112")},
		HostBlock4: 26,
		HostBlock6: 120,
		Routes:     RoutesHostGW,
	}
}

func mustDefine(t testing.TB, s *Store, name string, def Definition) {
	t.Helper()
	if _, err := s.Define(context.Background(), name, def); err != nil {
		t.Fatalf("Define(%s): %v", name, err)
	}
}

func mustLease(t testing.TB, s *Store, name, within string, bits int) netip.Prefix {
	t.Helper()
	p, err := s.LeaseBlock(context.Background(), name, netip.MustParsePrefix(within), bits, nil)
	if err != nil {
		t.Fatalf("LeaseBlock(%s, %s, /%d) for %s: %v", name, within, bits, s.Node(), err)
	}
	return p
}

func TestOpenValidates(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Endpoints: []string{"http://127.0.0.1:2379"}}, `node name ""`},
		{Config{Endpoints: []string{"http://127.0.0.1:2379"}, Node: "a/b"}, `node name "a/b"`},
		{Config{Endpoints: []string{"http://127.0.0.1:2379"}, Node: strings.Repeat("a", 64)}, "1 to 63 characters"},
		{Config{Node: "a"}, "no endpoint"},
		{Config{Endpoints: []string{"127.0.0.1:2379"}, Node: "a"}, "is not a URL"},
		{Config{Endpoints: []string{"http://127.0.0.1:2379"}, Node: "a", Addresses: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}}, "more than one cluster address of one family"},
	} {
		s, err := Open(tc.cfg)
		if err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded, want an error containing %q", tc.cfg, tc.want)
		} else if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

func TestDefine(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	ctx := context.Background()

	def := smallDef()
	got, err := a.Define(ctx, "web", def)
	if err != nil {
		t.Fatalf("first Define: %v", err)
	}
	if got.DefinedBy != "host-a" || !got.Equal(def) {
		t.Errorf("first Define returned %+v", got)
	}
	// The same definition, written differently, from another host.
	same := smallDef()
	slices.Reverse(same.Subnets)
	same.Subnets[0] = netip.MustParsePrefix("fd00:1::9/112")
	got, err = b.Define(ctx, "web", same)
	if err != nil {
		t.Fatalf("Define of the same definition: %v", err)
	}
	if got.DefinedBy != "host-a" {
		t.Errorf("stored definition names %q as its author, want host-a", got.DefinedBy)
	}
	if _, err := a.Define(ctx, "web", def); err != nil {
		t.Fatalf("Define again (idempotent): %v", err)
	}

	other := smallDef()
	other.HostBlock4 = 28
	other.Subnets = append(other.Subnets, netip.MustParsePrefix("fd00:2::/64"))
	other.HostBlock6 = 120
	_, err = b.Define(ctx, "web", other)
	var mm *MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("Define of a different definition = %v, want a *MismatchError", err)
	}
	want := []string{"subnet fd00:2::/64: here but not in the cluster", "host_block4: 28 here, 26 in the cluster"}
	if !slices.Equal(mm.Differences, want) || mm.DefinedBy != "host-a" || mm.Network != "web" {
		t.Errorf("MismatchError = %+v, want differences %q by host-a", mm, want)
	}
	for _, w := range append(want, `cluster network "web" is defined differently in the cluster store (first defined by node host-a)`, "use another cluster name") {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}

	bad := smallDef()
	bad.Mode = "ipvlan"
	if _, err := a.Define(ctx, "other", bad); err == nil || !strings.Contains(err.Error(), "invalid definition") {
		t.Errorf("Define of an invalid definition = %v", err)
	}
}

func TestUndefine(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a")
	raw := rawClient(t, endpoints)
	ctx := context.Background()
	exists := func() bool {
		r, err := raw.Get(ctx, DefaultPrefix+"networks/web/definition")
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Kvs) == 1
	}
	mustDefine(t, a, "web", smallDef())
	b := mustLease(t, a, "web", "10.1.0.0/24", 26)
	if err := a.Undefine(ctx, "web"); err != nil || !exists() {
		t.Fatalf("Undefine with a block left: %v, definition exists %v; want it kept", err, exists())
	}
	if err := a.ReleaseBlock(ctx, "web", b); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx, "web", netip.MustParseAddr("10.1.0.5"), 26); err != nil {
		t.Fatal(err)
	}
	if err := a.Undefine(ctx, "web"); err != nil || !exists() {
		t.Fatalf("Undefine with a claim left: %v, definition exists %v; want it kept", err, exists())
	}
	if err := a.Unclaim(ctx, "web", netip.MustParseAddr("10.1.0.5")); err != nil {
		t.Fatal(err)
	}
	if err := a.Undefine(ctx, "web"); err != nil || exists() {
		t.Fatalf("Undefine with nothing left: %v, definition exists %v; want it gone", err, exists())
	}
	// Undefine also made a forget the definition: no lease without Define.
	_, err := a.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil)
	if err == nil || !strings.Contains(err.Error(), "has no definition in the cluster store") {
		t.Errorf("LeaseBlock without a definition = %v", err)
	}
}

func TestLeaseBlockPutsBackRememberedDefinition(t *testing.T) {
	t.Parallel()
	endpoints, a, b := twoHosts(t)
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	mustDefine(t, b, "web", smallDef())
	// b deletes its network while nobody holds anything: the definition
	// goes, but a still has the network and knows its definition.
	if err := b.Undefine(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if got := mustLease(t, a, "web", "10.1.0.0/24", 26); got != netip.MustParsePrefix("10.1.0.0/26") {
		t.Errorf("lease after the definition was put back = %s", got)
	}
	if _, err := b.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil); err != nil {
		t.Errorf("b leases once the definition is back: %v", err)
	}
	// A host with another definition cannot sneak in either.
	c := openStore(t, endpoints, "host-c")
	def := smallDef()
	def.HostBlock4 = 28
	if _, err := c.Define(ctx, "web", def); err == nil {
		t.Errorf("Define with /28 blocks succeeded over /26 blocks")
	}

	// Once the definition is gone and c records its own, a's remembered
	// one is not put back over it, and a's requests are checked against
	// c's definition.
	mustDefine(t, a, "db", smallDef())
	if err := b.Undefine(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	mustDefine(t, c, "db", def)
	_, err := a.LeaseBlock(ctx, "db", netip.MustParsePrefix("10.1.0.0/24"), 26, nil)
	if err == nil || !strings.Contains(err.Error(), "cuts 10.1.0.0/24 into /28 host blocks, not /26") {
		t.Errorf("lease with /26 blocks in a network now defined with /28 ones = %v", err)
	}
	// The transaction itself refuses a definition replaced after it was
	// read (the create revision differs).
	r, err := a.client.Get(ctx, a.defKey("db"))
	if err != nil {
		t.Fatal(err)
	}
	staleRev := r.Kvs[0].CreateRevision
	if err := c.Undefine(ctx, "db"); err != nil {
		t.Fatal(err)
	}
	mustDefine(t, c, "db", def)
	lease, err := a.registered(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.leaseTxn(ctx, "db", netip.MustParsePrefix("10.1.0.0/28"), nil, lease, staleRev, 0)
	if err != nil || resp.Succeeded {
		t.Errorf("lease transaction against a replaced definition: succeeded %v, %v", resp != nil && resp.Succeeded, err)
	}
}

func TestLeaseBlockSequential(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	mustDefine(t, a, "web", smallDef())
	for i, tc := range []struct {
		s      *Store
		within string
		bits   int
		want   string
	}{
		{a, "10.1.0.0/24", 26, "10.1.0.0/26"},
		{b, "10.1.0.0/24", 26, "10.1.0.64/26"},
		{a, "10.1.0.0/24", 26, "10.1.0.128/26"},
		{a, "fd00:1::/112", 120, "fd00:1::/120"},
		{b, "fd00:1::/112", 120, "fd00:1::100/120"},
		{a, "10.1.0.0/24", 26, "10.1.0.192/26"},
		{b, "fd00:1::/112", 120, "fd00:1::200/120"},
	} {
		if got := mustLease(t, tc.s, "web", tc.within, tc.bits); got.String() != tc.want {
			t.Errorf("lease %d (%s): got %s, want %s", i, tc.s.Node(), got, tc.want)
		}
	}
	// A released block is the first free one again.
	if err := b.ReleaseBlock(context.Background(), "web", netip.MustParsePrefix("10.1.0.64/26")); err != nil {
		t.Fatal(err)
	}
	if got := mustLease(t, a, "web", "10.1.0.0/24", 26); got.String() != "10.1.0.64/26" {
		t.Errorf("lease after a release: got %s, want 10.1.0.64/26", got)
	}
	// Each host lists its own blocks only.
	held, err := b.HeldBlocks(context.Background(), "web", nil)
	if err != nil || fmt.Sprint(held) != "[fd00:1::100/120 fd00:1::200/120]" {
		t.Errorf("host-b's blocks = %v, %v; want fd00:1::100/120 and fd00:1::200/120", held, err)
	}
	blocks, err := a.Blocks(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, bl := range blocks {
		got = append(got, bl.Prefix.String()+"="+bl.Node)
	}
	want := []string{"10.1.0.0/26=host-a", "10.1.0.64/26=host-a", "10.1.0.128/26=host-a", "10.1.0.192/26=host-a",
		"fd00:1::/120=host-a", "fd00:1::100/120=host-b", "fd00:1::200/120=host-b"}
	if !slices.Equal(got, want) {
		t.Errorf("Blocks = %v, want %v", got, want)
	}
}

func TestRequestsCheckedAgainstDefinition(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a")
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	for _, tc := range []struct {
		within string
		bits   int
		want   string
	}{
		{"10.1.0.0/24", 28, "cluster network web cuts 10.1.0.0/24 into /26 host blocks, not /28"},
		{"10.2.0.0/24", 26, "block range 10.2.0.0/24 is outside every subnet of cluster network web (10.1.0.0/24, fd00:1::/112)"},
		{"10.1.0.0/23", 26, "is outside every subnet"},
		{"fd00:1::/112", 26, "into /120 host blocks, not /26"},
	} {
		_, err := a.LeaseBlock(ctx, "web", netip.MustParsePrefix(tc.within), tc.bits, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("LeaseBlock(%s, /%d) = %v, want an error containing %q", tc.within, tc.bits, err, tc.want)
		}
	}
	for _, tc := range []struct {
		addr string
		bits int
		want string
	}{
		{"10.1.0.5", 24, "into /26 host blocks, not /24"},
		{"10.9.0.5", 26, "address 10.9.0.5 is outside every subnet of cluster network web"},
		{"fd00:2::5", 120, "outside every subnet"},
	} {
		err := a.Claim(ctx, "web", netip.MustParseAddr(tc.addr), tc.bits)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Claim(%s, /%d) = %v, want an error containing %q", tc.addr, tc.bits, err, tc.want)
		}
	}
	if bl, _ := a.Blocks(ctx, ""); len(bl) != 0 {
		t.Errorf("refused requests left blocks: %v", bl)
	}
}

func TestLeaseBlockExhausted(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a")
	mustDefine(t, a, "web", smallDef())
	for range 4 {
		mustLease(t, a, "web", "10.1.0.0/24", 26)
	}
	_, err := a.LeaseBlock(context.Background(), "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil)
	if err == nil {
		t.Fatal("fifth /26 of a /24 leased")
	}
	for _, w := range []string{"no free block of /26", "10.1.0.0/24", "cluster network web", "larger subnet or ip range", "smaller host blocks"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if errors.Is(err, ErrUnreachable) {
		t.Errorf("exhaustion matches ErrUnreachable")
	}
}

func TestLeaseBlockSkipsClaimsAndCallerChoice(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	// b claims an address in the first block: a must not lease that block.
	if err := b.Claim(ctx, "web", netip.MustParseAddr("10.1.0.10"), 26); err != nil {
		t.Fatal(err)
	}
	if got := mustLease(t, a, "web", "10.1.0.0/24", 26); got.String() != "10.1.0.64/26" {
		t.Errorf("lease with a claim in the first block = %s, want 10.1.0.64/26", got)
	}
	// The caller rejects the next candidate (say it holds its host address).
	var offered []netip.Prefix
	got, err := a.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.0/24"), 26, func(p netip.Prefix) bool {
		offered = append(offered, p)
		return p.Contains(netip.MustParseAddr("10.1.0.130"))
	})
	if err != nil || got.String() != "10.1.0.192/26" {
		t.Errorf("lease with skip = %s, %v; want 10.1.0.192/26", got, err)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.1.0.128/26"), netip.MustParsePrefix("10.1.0.192/26")}; !slices.Equal(offered, want) {
		t.Errorf("skip was offered %v, want %v (taken blocks are not offered)", offered, want)
	}
}

func TestLeaseBlockWithinSmallerThanBlock(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	ctx := context.Background()
	def := smallDef()
	r := netip.MustParsePrefix("10.1.0.16/28")
	def.IPRanges = map[netip.Prefix]netip.Prefix{def.Subnets[0]: r}
	mustDefine(t, a, "web", def)
	if got := mustLease(t, a, "web", r.String(), 26); got != r {
		t.Errorf("lease in a /28 range with /26 blocks = %s, want the range itself", got)
	}
	_, err := b.LeaseBlock(ctx, "web", r, 26, nil)
	if want := "block 10.1.0.16/28 of cluster network web is not free (node host-a holds block 10.1.0.16/28): choose an address outside it"; err == nil || err.Error() != want {
		t.Errorf("second lease of the /28 range = %v, want %q", err, want)
	}
	// The range is a block of a's: b cannot claim an address in it.
	err = b.Claim(ctx, "web", netip.MustParseAddr("10.1.0.20"), 26)
	if err == nil || !strings.Contains(err.Error(), "held by node host-a") {
		t.Errorf("claim inside a /28 block of another host = %v", err)
	}
	// An address of the subnet outside the range is claimable.
	if err := b.Claim(ctx, "web", netip.MustParseAddr("10.1.0.40"), 26); err != nil {
		t.Errorf("claim outside the range: %v", err)
	}
}

// An IPv6 key's first 8 hex digits can sort inside an IPv4 block's key
// range. Such keys must not make the block look taken (nor make LeaseBlock
// give up), and must not hide a real conflict either.
func TestLeaseBlockOtherFamilyKeysInRange(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	ctx := context.Background()
	def := Definition{
		Mode:       ModeBridge,
		Subnets:    []netip.Prefix{netip.MustParsePrefix("32.1.13.0/24"), netip.MustParsePrefix("2001:db8::/64")},
		HostBlock4: 26,
		HostBlock6: 80,
		Routes:     RoutesNone,
	}
	mustDefine(t, a, "pub", def)
	// The claims range of 32.1.13.128/26 is [20010d80, 20010dbf\x00); the
	// key of 2001:db8::5, 20010db8000000000000000000000005, sorts inside.
	if err := b.Claim(ctx, "pub", netip.MustParseAddr("2001:db8::5"), 80); err != nil {
		t.Fatal(err)
	}
	if err := b.Claim(ctx, "pub", netip.MustParseAddr("2001:db8::6"), 80); err != nil {
		t.Fatal(err)
	}
	skipFirst := func(p netip.Prefix) bool { return p.Addr() != netip.MustParseAddr("32.1.13.128") }
	got, err := a.LeaseBlock(ctx, "pub", netip.MustParsePrefix("32.1.13.0/24"), 26, skipFirst)
	if err != nil || got.String() != "32.1.13.128/26" {
		t.Fatalf("lease of 32.1.13.128/26 next to IPv6 keys in its key range = %s, %v", got, err)
	}
	// And an IPv4 block next to them is still refused to a second host.
	if _, err := b.LeaseBlock(ctx, "pub", netip.MustParsePrefix("32.1.13.128/26"), 26, nil); err == nil {
		t.Errorf("32.1.13.128/26 leased twice")
	}
}

func TestLeaseBlockConcurrent(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	const perNode = 20
	stores := []*Store{openStore(t, endpoints, "host-a"), openStore(t, endpoints, "host-b")}
	def := smallDef()
	def.Subnets[0] = netip.MustParsePrefix("10.1.0.0/20") // 64 /26 blocks for 40 leases
	mustDefine(t, stores[0], "web", def)
	mustDefine(t, stores[1], "web", def)

	var mu sync.Mutex
	got := map[netip.Prefix]string{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode*2)
	for _, s := range stores {
		for range perNode {
			for _, within := range []string{"10.1.0.0/20", "fd00:1::/112"} {
				wg.Go(func() {
					bits := 26
					if strings.Contains(within, ":") {
						bits = 120
					}
					p, err := s.LeaseBlock(context.Background(), "web", netip.MustParsePrefix(within), bits, nil)
					if err != nil {
						errs <- fmt.Errorf("%s: %v", s.Node(), err)
						return
					}
					mu.Lock()
					defer mu.Unlock()
					for q, holder := range got {
						if q.Overlaps(p) {
							errs <- fmt.Errorf("%s got %s, which overlaps %s of %s", s.Node(), p, q, holder)
						}
					}
					got[p] = s.Node()
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if len(got) != 2*perNode*2 {
		t.Errorf("%d blocks leased, want %d", len(got), 2*perNode*2)
	}
	// What the store says matches what the callers were told.
	blocks, err := stores[0].Blocks(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if got[b.Prefix] != b.Node {
			t.Errorf("store has %s for %s, callers were told %q", b.Prefix, b.Node, got[b.Prefix])
		}
	}
	if len(blocks) != len(got) {
		t.Errorf("store has %d blocks, callers got %d", len(blocks), len(got))
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	endpoints, a, b := twoHosts(t)
	raw := rawClient(t, endpoints)
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	blockA := mustLease(t, a, "web", "10.1.0.0/24", 26) // 10.1.0.0/26
	claimKeys := func() []string {
		r, err := raw.Get(ctx, DefaultPrefix+"networks/web/claims/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, kv := range r.Kvs {
			node, _, _ := parseHolder(kv.Value)
			out = append(out, strings.TrimPrefix(string(kv.Key), DefaultPrefix+"networks/web/claims/")+"="+node)
		}
		return out
	}

	// Inside another node's block: refused, naming the holder.
	err := b.Claim(ctx, "web", netip.MustParseAddr("10.1.0.7"), 26)
	if want := "address 10.1.0.7 of cluster network web is held by node host-a: choose another address"; err == nil || err.Error() != want {
		t.Errorf("claim in another node's block = %v, want %q", err, want)
	}
	// Inside the node's own block: nil, nothing written.
	if err := a.Claim(ctx, "web", netip.MustParseAddr("10.1.0.7"), 26); err != nil {
		t.Errorf("claim in the node's own block: %v", err)
	}
	if keys := claimKeys(); len(keys) != 0 {
		t.Errorf("claim in the node's own block wrote %v", keys)
	}
	// Outside any block: written once, idempotent for its holder, refused
	// to others.
	for range 2 {
		if err := b.Claim(ctx, "web", netip.MustParseAddr("10.1.0.77"), 26); err != nil {
			t.Errorf("claim outside blocks: %v", err)
		}
	}
	if keys := claimKeys(); !slices.Equal(keys, []string{"0a01004d=host-b"}) {
		t.Errorf("claims = %v, want [0a01004d=host-b]", keys)
	}
	if err := a.Claim(ctx, "web", netip.MustParseAddr("10.1.0.77"), 26); err == nil || !strings.Contains(err.Error(), "held by node host-b") {
		t.Errorf("claim of another node's claim = %v", err)
	}
	if err := b.Claim(ctx, "web", netip.MustParseAddr("fd00:1::ff05"), 120); err != nil {
		t.Errorf("IPv6 claim: %v", err)
	}
	claims, err := a.Claims(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(claims) != 2 || claims[0].Addr != netip.MustParseAddr("10.1.0.77") || claims[1].Addr != netip.MustParseAddr("fd00:1::ff05") || claims[1].Node != "host-b" {
		t.Errorf("Claims = %+v", claims)
	}
	_ = blockA

	// Concurrent claims of one address by two nodes: exactly one wins.
	for i := range 10 {
		addr := netip.MustParseAddr(fmt.Sprintf("10.1.0.%d", 200+i))
		var wg sync.WaitGroup
		results := make([]error, 2)
		for j, s := range []*Store{a, b} {
			wg.Go(func() { results[j] = s.Claim(ctx, "web", addr, 26) })
		}
		wg.Wait()
		if (results[0] == nil) == (results[1] == nil) {
			t.Errorf("concurrent claims of %s: %v and %v, want exactly one success", addr, results[0], results[1])
		}
	}
	_, err = a.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.192/26"), 26, nil)
	if err == nil || !strings.Contains(err.Error(), "block 10.1.0.192/26 of cluster network web is not free (node host-") || !strings.Contains(err.Error(), " claimed 10.1.0.20") {
		t.Errorf("lease of a block with claims in it = %v", err)
	}
}

func TestReleaseAndUnclaim(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	block := mustLease(t, a, "web", "10.1.0.0/24", 26)
	addr := netip.MustParseAddr("10.1.0.100")
	if err := a.Claim(ctx, "web", addr, 26); err != nil {
		t.Fatal(err)
	}

	err := b.ReleaseBlock(ctx, "web", block)
	if err == nil || !strings.Contains(err.Error(), "block 10.1.0.0/26 of cluster network web is held by node host-a") {
		t.Errorf("release of another node's block = %v", err)
	}
	err = b.Unclaim(ctx, "web", addr)
	if err == nil || !strings.Contains(err.Error(), "address 10.1.0.100 of cluster network web is claimed by node host-a") {
		t.Errorf("unclaim of another node's claim = %v", err)
	}
	for range 2 {
		if err := a.ReleaseBlock(ctx, "web", block); err != nil {
			t.Errorf("release (idempotent): %v", err)
		}
		if err := a.Unclaim(ctx, "web", addr); err != nil {
			t.Errorf("unclaim (idempotent): %v", err)
		}
	}
	if bl, _ := a.Blocks(ctx, ""); len(bl) != 0 {
		t.Errorf("blocks after release: %v", bl)
	}
	if cl, _ := a.Claims(ctx, ""); len(cl) != 0 {
		t.Errorf("claims after unclaim: %v", cl)
	}
	// Someone else's address of another family, never claimed: no-op.
	if err := b.Unclaim(ctx, "web", netip.MustParseAddr("fd00:1::77")); err != nil {
		t.Errorf("unclaim of an unclaimed address: %v", err)
	}
}
