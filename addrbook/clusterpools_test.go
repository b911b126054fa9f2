package addrbook

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/cluster"
)

// fakeStore is the cluster store of the IPAM's tests, in memory: blocks
// and claimed addresses by holder, with the store's one promise (no two
// hosts hold one block or address). down makes it unreachable. The
// real store's tests run against etcd (package cluster).
type fakeStore struct {
	mu     sync.Mutex
	blocks map[netip.Prefix]string
	// ids are the identities blocks were leased under (the real store's
	// proofs): a host holds a block only under its own.
	ids    map[netip.Prefix]string
	claims map[netip.Addr]string
	down   bool
}

var errFakeDown = fmt.Errorf("cluster store fake://etcd: %w", cluster.ErrUnreachable)

func newFakeStore() *fakeStore {
	return &fakeStore{blocks: map[netip.Prefix]string{}, ids: map[netip.Prefix]string{}, claims: map[netip.Addr]string{}}
}

// host is the store as one host sees it, its identity its name's.
func (s *fakeStore) host(name string) Leases { return fakeLeases{s, name, name + "-id"} }

// hostAs is the store as a host named name with identity id sees it.
func (s *fakeStore) hostAs(name, id string) Leases { return fakeLeases{s, name, id} }

// lease records block as node's, leased under node's identity (as
// host(node) leases).
func (s *fakeStore) lease(block netip.Prefix, node string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blocks[block], s.ids[block] = node, node+"-id"
}

type fakeLeases struct {
	s        *fakeStore
	node, id string
}

func (l fakeLeases) mine(b netip.Prefix) bool { return l.s.blocks[b] == l.node && l.s.ids[b] == l.id }

func (l fakeLeases) LeaseBlock(_ context.Context, network string, within netip.Prefix, bits int, skip func(netip.Prefix) bool) (netip.Prefix, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.down {
		return netip.Prefix{}, errFakeDown
	}
	if bits < within.Bits() {
		bits = within.Bits()
	}
	for c := netip.PrefixFrom(within.Addr(), bits).Masked(); within.Contains(c.Addr()); c = netip.PrefixFrom(lastAddr(c).Next(), bits) {
		if _, taken := l.s.blocks[c]; taken || skip != nil && skip(c) {
			continue
		}
		claimed := false
		for a := range l.s.claims {
			claimed = claimed || c.Contains(a)
		}
		if !claimed {
			l.s.blocks[c], l.s.ids[c] = l.node, l.id
			return c, nil
		}
		if !lastAddr(c).Next().IsValid() {
			break
		}
	}
	return netip.Prefix{}, fmt.Errorf("every block of %s in %s is taken", network, within)
}

func (l fakeLeases) ReleaseBlock(_ context.Context, _ string, block netip.Prefix) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.down {
		return errFakeDown
	}
	switch holder := l.s.blocks[block]; {
	case l.mine(block):
		delete(l.s.blocks, block)
		delete(l.s.ids, block)
	case holder == "":
	default:
		return fmt.Errorf("block %s is held by node %s", block, holder)
	}
	return nil
}

func (l fakeLeases) Claim(_ context.Context, _ string, addr netip.Addr, bits int) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.down {
		return errFakeDown
	}
	if b := netip.PrefixFrom(addr, bits).Masked(); l.s.blocks[b] != "" {
		holder := l.s.blocks[b]
		if l.mine(b) {
			return nil
		}
		return fmt.Errorf("held by node %s", holder)
	}
	if holder := l.s.claims[addr]; holder != "" && holder != l.node {
		return fmt.Errorf("held by node %s", holder)
	}
	l.s.claims[addr] = l.node
	return nil
}

func (l fakeLeases) Unclaim(_ context.Context, _ string, addr netip.Addr) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.down {
		return errFakeDown
	}
	if l.s.claims[addr] == l.node {
		delete(l.s.claims, addr)
	}
	return nil
}

// HeldBlocks: blocks with no identity that name the host (leased before
// identities) are its own if the state file knows them.
func (l fakeLeases) HeldBlocks(_ context.Context, _ string, known []netip.Prefix) ([]netip.Prefix, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	if l.s.down {
		return nil, errFakeDown
	}
	for _, b := range known {
		if l.s.blocks[b] == l.node && l.s.ids[b] == "" {
			l.s.ids[b] = l.id
		}
	}
	var out []netip.Prefix
	for b := range l.s.blocks {
		if l.mine(b) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (l fakeLeases) Undefine(context.Context, string) error { return nil }

// clusterHost is one host's IPAM in a cluster network, as the network
// driver makes it: Docker's pool and gateway, then the pool joined to the
// cluster.
func clusterHost(t *testing.T, s *fakeStore, name, subnet, ipRange string, c ClusterPool) (*testEnv, string) {
	t.Helper()
	e := &testEnv{t: t, dir: t.TempDir(), leases: s.host(name)}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	id := e.pool(subnet, ipRange, strings.Contains(subnet, ":"))
	if c.Routed {
		e.mustAddr(id, "", gw)
	}
	if err := e.d.JoinCluster(id, c); err != nil {
		t.Fatal(err)
	}
	return e, id
}

// TestClusterBlocks: hosts of a routed cluster network allocate in
// sequence inside blocks of their own, lease the next block when theirs
// are full, hand out addresses with the block's length, hold each block's
// gateway, and go on where they stopped after a restart.
func TestClusterBlocks(t *testing.T) {
	for _, tc := range []struct {
		name, subnet string
		bits         int
		// first addresses of host a, then of host b
		a, b []string
		// after a's first block is full (it holds perBlock addresses)
		perBlock int
		next     string
	}{
		{"v4", "198.51.100.0/24", 26,
			[]string{"198.51.100.2/26", "198.51.100.3/26"}, []string{"198.51.100.66/26"},
			61, "198.51.100.130/26"},
		{"v6", "fd00:c1::/64", 120,
			[]string{"fd00:c1::2/120", "fd00:c1::3/120"}, []string{"fd00:c1::102/120"},
			254, "fd00:c1::202/120"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeStore()
			c := ClusterPool{Network: "c1", Bits: tc.bits, Routed: true}
			a, pa := clusterHost(t, s, "a", tc.subnet, "", c)
			b, pb := clusterHost(t, s, "b", tc.subnet, "", c)
			held := map[string]string{}
			take := func(e *testEnv, id, host string, i int) string {
				t.Helper()
				got := e.mustAddr(id, "", mac(i))
				if other, dup := held[got]; dup {
					t.Fatalf("%s handed out %s, which %s holds", host, got, other)
				}
				held[got] = host
				return got
			}
			for i, want := range tc.a {
				if got := take(a, pa, "a", i); got != want {
					t.Fatalf("host a, address %d = %s, want %s", i, got, want)
				}
			}
			for i, want := range tc.b {
				if got := take(b, pb, "b", 1000+i); got != want {
					t.Fatalf("host b, address %d = %s, want %s", i, got, want)
				}
			}
			for i := len(tc.a); i < tc.perBlock; i++ {
				take(a, pa, "a", i)
			}
			a.restart()
			if got := take(a, pa, "a", tc.perBlock); got != tc.next {
				t.Fatalf("host a, first address once its block is full (after a restart) = %s, want %s", got, tc.next)
			}
			blocks := a.d.Blocks(pa)
			if len(blocks) != 2 || blocks[0].Gateway != blocks[0].Prefix.Addr().Next() || blocks[1].Gateway != blocks[1].Prefix.Addr().Next() {
				t.Fatalf("host a's blocks = %+v, want two, each with its first usable address as gateway", blocks)
			}
			for addr, host := range held {
				p := netip.MustParsePrefix(addr)
				holder := s.blocks[p.Masked()]
				if holder != host || p.Bits() != tc.bits {
					t.Errorf("%s of host %s: its block is %s's, want its own, with its length /%d", addr, host, holder, tc.bits)
				}
			}
		})
	}
}

// TestClusterBlockAdded: the network driver hears of each block a pool
// comes to hold, and may ask the IPAM about it then.
func TestClusterBlockAdded(t *testing.T) {
	s := newFakeStore()
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", ClusterPool{Network: "c1", Bits: 28, Routed: true})
	heard := make(chan []Block, 10)
	go func() {
		for range a.d.BlocksChanged() {
			heard <- a.d.Blocks(pa)
		}
	}()
	before := len(a.d.Blocks(pa))
	for i := 0; len(a.d.Blocks(pa)) == before; i++ {
		a.mustAddr(pa, "", mac(i))
	}
	select {
	case blocks := <-heard:
		if len(blocks) != before+1 {
			t.Fatalf("the driver heard of a new block and read %v, want %d blocks", blocks, before+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the driver did not hear of the new block")
	}
}

// TestClusterStoreDown: with the store unreachable, a host still hands out
// the addresses of its blocks; one that needs a new block gets an error
// naming the store, which changes nothing; once the store is back, it
// leases the block.
func TestClusterStoreDown(t *testing.T) {
	s := newFakeStore()
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", ClusterPool{Network: "c1", Bits: 29, Routed: true})
	a.mustAddr(pa, "", mac(0)) // leases 198.51.100.0/29
	s.down = true
	for i := 1; i < 5; i++ { // .3 to .6: the rest of the block
		a.mustAddr(pa, "", mac(i))
	}
	before := len(a.d.Allocations(pa))
	_, err := a.addr(pa, "", mac(9))
	if err == nil || !strings.Contains(err.Error(), "fake://etcd") || !strings.Contains(err.Error(), `"c1"`) {
		t.Fatalf("an address that needs a new block with the store down: %v; want an error naming the store and the network", err)
	}
	if after := len(a.d.Allocations(pa)); after != before {
		t.Fatalf("the refused request changed the pool: %d addresses, %d before", after, before)
	}
	s.down = false
	if got := a.mustAddr(pa, "", mac(9)); got != "198.51.100.10/29" {
		t.Fatalf("once the store is back: %s, want 198.51.100.10/29 (the next block's first address after its gateway)", got)
	}
}

// TestClusterGivenAddresses: a given address outside the host's blocks is
// the host's only through the store: a routed network leases its block, a
// LAN claims the address alone; another host's is refused, naming it; a
// released claim goes back to the store, and so do the blocks when the pool
// goes.
func TestClusterGivenAddresses(t *testing.T) {
	s := newFakeStore()
	routed := ClusterPool{Network: "r", Bits: 26, Routed: true}
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", routed)
	b, pb := clusterHost(t, s, "b", "198.51.100.0/24", "", routed)
	if got := a.mustAddr(pa, "198.51.100.200", mac(1)); got != "198.51.100.200/26" {
		t.Fatalf("--ip outside host a's blocks = %s", got)
	}
	if s.blocks[netip.MustParsePrefix("198.51.100.192/26")] != "a" {
		t.Fatalf("blocks after --ip 198.51.100.200: %v, want a holding 198.51.100.192/26", s.blocks)
	}
	if _, err := b.addr(pb, "198.51.100.201", mac(2)); err == nil {
		t.Fatal("host b got an address of host a's block")
	}
	if _, err := b.addr(pb, "198.51.100.65", mac(3)); err == nil || !strings.Contains(err.Error(), "gateway") {
		t.Fatalf("--ip of a block's gateway: %v, want a refusal naming the gateway", err)
	}

	lan := ClusterPool{Network: "lan", Bits: 28}
	la, pla := clusterHost(t, s, "a", "203.0.113.0/24", "203.0.113.128/25", lan)
	lb, plb := clusterHost(t, s, "b", "203.0.113.0/24", "203.0.113.128/25", lan)
	if got := la.mustAddr(pla, "", mac(1)); got != "203.0.113.128/24" {
		t.Fatalf("first address of a LAN cluster pool = %s, want the range's first with the subnet's length", got)
	}
	if err := lb.d.Hold(plb, netip.MustParseAddr("203.0.113.10"), HostLinkOwner("x")); err != nil {
		t.Fatal(err)
	}
	if s.claims[netip.MustParseAddr("203.0.113.10")] != "b" {
		t.Fatalf("claims = %v, want b holding 203.0.113.10", s.claims)
	}
	// An address of the host inside a block another host leased already
	// cannot be held: the network is refused there, naming the holder.
	if err := lb.d.Hold(plb, netip.MustParseAddr("203.0.113.129"), HostLinkOwner("x")); err == nil || !strings.Contains(err.Error(), "node a") {
		t.Fatalf("hold of an address in host a's block: %v, want a refusal naming a", err)
	}
	if _, held := lb.d.Allocations(plb)[netip.MustParseAddr("203.0.113.129")]; held {
		t.Fatal("the refused hold left the address held")
	}
	if _, err := la.addr(pla, "203.0.113.10", mac(2)); err == nil || !strings.Contains(err.Error(), "node b") {
		t.Fatalf("host a asking for host b's claimed address: %v, want a refusal (the block is b's)", err)
	}
	if err := lb.d.Release(plb, netip.MustParseAddr("203.0.113.10")); err != nil {
		t.Fatal(err)
	}
	if len(s.claims) != 0 {
		t.Fatalf("claims after the release = %v, want none", s.claims)
	}
	la.mustAddr(pla, "203.0.113.10", mac(2))

	if err := a.d.ReleasePool(pa); err != nil {
		t.Fatal(err)
	}
	for blk, holder := range s.blocks {
		if holder == "a" && netip.MustParsePrefix("198.51.100.0/24").Contains(blk.Addr()) {
			t.Errorf("block %s of a pool released by host a is still a's", blk)
		}
	}
}

// TestClusterAdoptsLeasedBlocks: a block the store gives the host that the
// state file does not know (the plugin died between leasing and recording
// it) is the host's again at the next start, gateway included, and is used
// before any new block.
func TestClusterAdoptsLeasedBlocks(t *testing.T) {
	s := newFakeStore()
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", ClusterPool{Network: "c1", Bits: 26, Routed: true})
	lost := netip.MustParsePrefix("198.51.100.128/26")
	s.lease(lost, "a")
	s.down = true
	if _, err := a.d.AdoptLeasedBlocks(); err == nil || !strings.Contains(err.Error(), "fake://etcd") {
		t.Fatalf("adoption with the store down: %v, want an error naming the store", err)
	}
	s.down = false
	a.restart()
	if _, err := a.d.AdoptLeasedBlocks(); err != nil {
		t.Fatal(err)
	}
	if got := a.d.Blocks(pa); len(got) != 1 || got[0].Prefix != lost || got[0].Gateway.String() != "198.51.100.129" {
		t.Fatalf("blocks after adoption = %+v, want %s with its gateway", got, lost)
	}
	if got := a.mustAddr(pa, "", mac(1)); got != "198.51.100.130/26" {
		t.Fatalf("first address after adoption = %s, want 198.51.100.130/26 (inside the adopted block)", got)
	}
	if len(s.blocks) != 1 {
		t.Fatalf("store blocks = %v, want only the adopted one", s.blocks)
	}
}

// TestClusterPendingReleases: blocks and claims the store does not take
// back when a pool goes (it does not answer) are given back once it does,
// after a restart too; adoption leaves them alone, and one a pool holds
// again by then stays.
func TestClusterPendingReleases(t *testing.T) {
	s := newFakeStore()
	lan := ClusterPool{Network: "lan", Bits: 28}
	a, pa := clusterHost(t, s, "a", "203.0.113.0/24", "203.0.113.128/25", lan)
	a.mustAddr(pa, "", mac(1))             // leases 203.0.113.128/28
	a.mustAddr(pa, "203.0.113.10", mac(2)) // claims 203.0.113.10
	s.down = true
	if err := a.d.ReleasePool(pa); err != nil {
		t.Fatal(err)
	}
	s.down = false
	if len(s.blocks) != 1 || len(s.claims) != 1 {
		t.Fatalf("store after a release it did not answer: %v %v, want the block and the claim still there", s.blocks, s.claims)
	}
	a.restart()
	// The network comes back before the store takes the old block: the
	// block, to be given back, is not adopted.
	again := a.pool("203.0.113.0/24", "203.0.113.128/25", false)
	if err := a.d.JoinCluster(again, lan); err != nil {
		t.Fatal(err)
	}
	if _, err := a.d.AdoptLeasedBlocks(); err != nil {
		t.Fatal(err)
	}
	if got := a.d.Blocks(again); len(got) != 0 {
		t.Fatalf("the new pool adopted %v, a block still to be given back", got)
	}
	s.down = true
	if err := a.d.RetryPendingReleases(); err == nil || !strings.Contains(err.Error(), "fake://etcd") {
		t.Fatalf("retry with the store down: %v, want an error naming the store", err)
	}
	s.down = false
	if err := a.d.RetryPendingReleases(); err != nil {
		t.Fatal(err)
	}
	if len(s.blocks) != 0 || len(s.claims) != 0 {
		t.Fatalf("store after the retry: %v %v, want nothing of host a", s.blocks, s.claims)
	}
	if got := a.d.pending(); len(got) != 0 {
		t.Fatalf("still pending after the retry: %v", got)
	}

	// Pending, but the network came back and holds the block again.
	b, pb := clusterHost(t, s, "b", "198.51.100.0/24", "", ClusterPool{Network: "r", Bits: 26, Routed: true})
	b.mustAddr(pb, "", mac(1))
	held := b.d.Blocks(pb)[0].Prefix
	b.d.pend("r", pendingBlock, held)
	if err := b.d.RetryPendingReleases(); err != nil {
		t.Fatal(err)
	}
	if s.blocks[held] != "b" || len(b.d.pending()) != 0 {
		t.Fatalf("a block the pool holds again: store %v, pending %v; want it kept and no longer pending", s.blocks, b.d.pending())
	}
	// Pending, but forgotten and taken by another host meanwhile.
	taken := netip.MustParsePrefix("198.51.100.192/26")
	s.lease(taken, "z")
	b.d.pend("r", pendingBlock, taken)
	if err := b.d.RetryPendingReleases(); err != nil {
		t.Fatal(err)
	}
	if s.blocks[taken] != "z" || len(b.d.pending()) != 0 {
		t.Fatalf("a block another host holds now: store %v, pending %v; want it left to that host and no longer pending", s.blocks, b.d.pending())
	}
}

// TestClusterForgedHolderNotAdopted: a block that names the host in the
// store but not under its identity (written by hand, or leased by another
// host of the same name) is not adopted at start, and the host leases
// around it.
func TestClusterForgedHolderNotAdopted(t *testing.T) {
	s := newFakeStore()
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", ClusterPool{Network: "c1", Bits: 26, Routed: true})
	forged := netip.MustParsePrefix("198.51.100.0/26")
	twin := netip.MustParsePrefix("198.51.100.64/26")
	s.blocks[forged] = "a" // no identity: written by hand
	twinHost := s.hostAs("a", "twin-id")
	if got, err := twinHost.LeaseBlock(context.Background(), "c1", twin, 26, nil); err != nil || got != twin {
		t.Fatalf("the twin's lease = %v, %v", got, err)
	}
	a.restart()
	lost, err := a.d.AdoptLeasedBlocks()
	if err != nil || len(lost) != 0 {
		t.Fatalf("AdoptLeasedBlocks = %v, %v", lost, err)
	}
	if got := a.d.Blocks(pa); len(got) != 0 {
		t.Fatalf("blocks adopted: %+v, want none (neither is under host a's identity)", got)
	}
	if got := a.mustAddr(pa, "", mac(1)); got != "198.51.100.130/26" {
		t.Fatalf("first address = %s, want 198.51.100.130/26 (in a block of a's own, past the forged ones)", got)
	}
}

// TestClusterLostBlocks: a block the store gives another host now (the
// host was forgotten while stopped) is lost at start: nothing more is
// allocated from it, the addresses containers have there stay theirs
// (named with their owners), across restarts, and the block is forgotten
// once the last of them is released. While running, the same happens as
// soon as the store shows it (MayHaveLost, CheckBlocks).
func TestClusterLostBlocks(t *testing.T) {
	s := newFakeStore()
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", ClusterPool{Network: "c1", Bits: 26, Routed: true})
	first := a.mustAddr(pa, "", mac(1))
	second := a.mustAddr(pa, "", mac(2))
	block := netip.MustParsePrefix("198.51.100.0/26")
	if first != "198.51.100.2/26" || second != "198.51.100.3/26" {
		t.Fatalf("addresses = %s %s", first, second)
	}
	// Stopped, forgotten, and the block leased by host b.
	a.db.Close()
	delete(s.blocks, block)
	s.lease(block, "b")
	a.open()
	lost, err := a.d.AdoptLeasedBlocks()
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]Owner{netip.MustParseAddr("198.51.100.2"): mac(1), netip.MustParseAddr("198.51.100.3"): mac(2)}
	if len(lost) != 1 || lost[0].Block != block || lost[0].Network != "c1" || lost[0].PoolID != pa || !maps.Equal(lost[0].InUse, want) {
		t.Fatalf("lost = %+v, want %s with %v in use", lost, block, want)
	}
	check := func(when string) {
		t.Helper()
		for _, b := range a.d.Blocks(pa) {
			if b.Prefix == block {
				t.Fatalf("%s: blocks %+v, want %s no longer among them", when, a.d.Blocks(pa), block)
			}
		}
		if got := a.d.LostBlocks(pa); len(got) != 1 || got[0].Prefix != block || got[0].Gateway.String() != "198.51.100.1" {
			t.Fatalf("%s: lost blocks %+v, want %s with its gateway", when, got, block)
		}
		for addr := range want {
			if a.d.Allocations(pa)[addr].Kind == Nobody {
				t.Fatalf("%s: %s is no longer allocated", when, addr)
			}
		}
	}
	check("after the start")
	if got := a.mustAddr(pa, "", mac(3)); !strings.HasPrefix(got, "198.51.100.66/") {
		t.Fatalf("next address = %s, want 198.51.100.66/26 (in a new block)", got)
	}
	if _, err := a.addr(pa, "198.51.100.10", mac(4)); err == nil || !strings.Contains(err.Error(), "198.51.100.0/26") {
		t.Fatalf("a given address in the lost block = %v, want a refusal (the block is b's)", err)
	}
	a.restart()
	if lost, err := a.d.AdoptLeasedBlocks(); err != nil || len(lost) != 0 {
		t.Fatalf("AdoptLeasedBlocks after a restart = %v, %v; want nothing more lost", lost, err)
	}
	check("after a restart")
	a.release(pa, first)
	a.release(pa, second)
	if got := a.d.LostBlocks(pa); len(got) != 0 {
		t.Fatalf("lost blocks once their addresses are released: %+v, want none", got)
	}
	a.restart()
	if got := a.d.LostBlocks(pa); len(got) != 0 {
		t.Fatalf("lost blocks after a restart: %+v, want none", got)
	}

	// While running: the store forgets the new block, and host c leases
	// it.
	b66 := netip.MustParsePrefix("198.51.100.64/26")
	if a.d.MayHaveLost(map[string][]netip.Prefix{"c1": {b66}}) {
		t.Fatal("MayHaveLost with every block in the store's list")
	}
	s.lease(b66, "c")
	if !a.d.MayHaveLost(map[string][]netip.Prefix{}) {
		t.Fatal("MayHaveLost without the host's block in the store's list = false")
	}
	lost, err = a.d.CheckBlocks()
	if err != nil || len(lost) != 1 || lost[0].Block != b66 || len(lost[0].InUse) != 1 {
		t.Fatalf("CheckBlocks = %+v, %v; want %s lost with one address in use", lost, err, b66)
	}
	if got := a.mustAddr(pa, "", mac(5)); strings.HasPrefix(got, "198.51.100.6") || strings.HasPrefix(got, "198.51.100.7") {
		t.Fatalf("address after the loss = %s, inside the lost block", got)
	}
}

// TestClusterLostBeforeTheFirstCheck: the first address asked for after
// a start, before the plugin compared the blocks with the store's, does
// not come from a block another host holds now; with the store down, the
// host allocates from its blocks as before.
func TestClusterLostBeforeTheFirstCheck(t *testing.T) {
	s := newFakeStore()
	a, pa := clusterHost(t, s, "a", "198.51.100.0/24", "", ClusterPool{Network: "c1", Bits: 26, Routed: true})
	a.mustAddr(pa, "", mac(1))
	block := netip.MustParsePrefix("198.51.100.0/26")
	a.restart()
	s.down = true
	if got := a.mustAddr(pa, "", mac(2)); got != "198.51.100.3/26" {
		t.Fatalf("address with the store down = %s, want 198.51.100.3/26 from the host's block", got)
	}
	s.down = false
	a.db.Close()
	delete(s.blocks, block)
	s.lease(block, "b")
	a.open()
	if got := a.mustAddr(pa, "", mac(3)); netip.MustParsePrefix(got).Masked() == block {
		t.Fatalf("first address after the start = %s, in %s, which b holds now", got, block)
	}
	if got := a.d.LostBlocks(pa); len(got) != 1 || got[0].Prefix != block {
		t.Fatalf("lost blocks = %+v, want %s", got, block)
	}
}
