package cluster

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/cluster/clustertest"
	"github.com/dualstack-net/dualstack/state"
)

// TestCheckBlock: a block must lie inside a subnet of its network's
// definition and be of the definition's block length (or be the subnet's
// ip range when that is smaller than a block).
func TestCheckBlock(t *testing.T) {
	def := smallDef()
	def.Subnets = append(def.Subnets, netip.MustParsePrefix("10.2.0.0/24"))
	def.IPRanges = map[netip.Prefix]netip.Prefix{netip.MustParsePrefix("10.2.0.0/24"): netip.MustParsePrefix("10.2.0.16/28")}
	def = def.Canonical()
	for _, tc := range []struct {
		block, want string // want "" for a valid block
	}{
		{"10.1.0.64/26", ""},
		{"fd00:1::100/120", ""},
		{"10.2.0.16/28", ""}, // the ip range, smaller than a /26
		{"0.0.0.0/1", "outside every subnet"},
		{"128.0.0.0/1", "outside every subnet"},
		{"0.0.0.0/0", "outside every subnet"},
		{"::/0", "outside every subnet"},
		{"10.0.0.0/8", "outside every subnet"}, // contains the subnet
		{"198.51.100.0/24", "outside every subnet"},
		{"10.1.0.5/32", "a /32, but the definition cuts 10.1.0.0/24 into /26 blocks"},
		{"10.1.0.0/25", "a /25, but the definition cuts 10.1.0.0/24 into /26 blocks"},
		{"10.1.0.64/28", "a /28"},
		{"10.2.0.32/28", "a /28"}, // not the ip range
		{"fd00:1::/112", "a /112"},
	} {
		err := checkBlock(def, netip.MustParsePrefix(tc.block))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkBlock(%s) = %v, want %q", tc.block, err, tc.want)
		}
	}
}

// TestParseNodeRecord: a node record is well formed, with at most one
// routable unicast address per family, or it is ignored.
func TestParseNodeRecord(t *testing.T) {
	for _, tc := range []struct {
		name, value, want string
	}{
		{"host-a", `{"addresses":["198.51.100.2","fd00:1::2"],"since":"2025-01-02T03:04:05Z","identity":"x"}`, ""},
		{"host-a", `{"addresses":[]}`, ""},
		{"host-a", `not json`, "not a node record"},
		{"host-a", `{"addresses":["198.51.100.2","198.51.100.3"]}`, "more than one address"},
		{"host-a", `{"addresses":["0.0.0.0"]}`, "not a unicast address"},
		{"host-a", `{"addresses":["127.0.0.1"]}`, "not a unicast address"},
		{"host-a", `{"addresses":["224.0.0.1"]}`, "not a unicast address"},
		{"host-a", `{"addresses":["fe80::1"]}`, "not a unicast address"},
		{"host-a", `{"addresses":["255.255.255.255"]}`, "not a unicast address"},
		{"host-a", `{"addresses":["::ffff:198.51.100.2"]}`, "plain form"},
		{"host-a", `{"addresses":["hello"]}`, "not a node record"},
		{"../etc", `{"addresses":[]}`, "node name"},
	} {
		_, err := parseNodeRecord(tc.name, []byte(tc.value))
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("parseNodeRecord(%s, %s) = %v, want %q", tc.name, tc.value, err, tc.want)
		}
	}
}

// TestLoadToken: the token is made once and kept in the state file.
func TestLoadToken(t *testing.T) {
	db := state.NewMemory()
	a, err := LoadToken(db)
	if err != nil || len(a) != 64 {
		t.Fatalf("LoadToken = %q, %v", a, err)
	}
	if b, err := LoadToken(db); err != nil || b != a {
		t.Fatalf("LoadToken again = %q, %v, want %q", b, err, a)
	}
	if b, _ := LoadToken(state.NewMemory()); b == a {
		t.Fatal("two state files got one token")
	}
}

// hostileKeys are what an etcd writer puts in the store to have hosts
// route where it wants: a node with an address of its choice, holding
// blocks as wide as half the address space, the default route, the
// host's LAN, a single address, a block of the wrong length, a holder
// value that carries addresses of its own, a node record with two IPv4
// addresses, and blocks of a network whose definition is garbage.
func hostileKeys() map[string]string {
	b := DefaultPrefix + "networks/web/blocks/"
	return map[string]string{
		DefaultPrefix + "nodes/evil":                      `{"addresses":["203.0.113.66"]}`,
		DefaultPrefix + "nodes/twice":                     `{"addresses":["203.0.113.67","203.0.113.68"]}`,
		DefaultPrefix + "nodes/junk":                      `{{{`,
		b + "00000000_1":                                  "evil",
		b + "80000000_1":                                  "evil",
		b + "00000000_0":                                  "evil",
		b + strings.Repeat("0", 32) + "_0":                "evil",
		b + "c6336400_24":                                 "evil",
		b + "0a010005_32":                                 "evil",
		b + "0a010040_28":                                 "evil",
		b + "0a010080_26":                                 `{"node":"evil","proof":"00000000000000000000000000000000","addresses":["203.0.113.69"]}`,
		b + "0a0100c0_26":                                 "twice",
		DefaultPrefix + "networks/junk/definition":        `{"mode":"bridge","subnets":["0.0.0.0/0"],"host_block4":1}`,
		DefaultPrefix + "networks/junk/blocks/00000000_1": "evil",
	}
}

// TestHostileKeysIgnored: blocks outside the definition or of another
// length are never listed, neither by Blocks nor by the watch; a block's
// addresses are its holder's registered ones only; status shows what is
// ignored and why.
func TestHostileKeysIgnored(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	addrA := []netip.Addr{netip.MustParseAddr("198.51.100.2")}
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Addresses = addrA })
	mustDefine(t, a, "web", smallDef())
	mine := mustLease(t, a, "web", "10.1.0.0/24", 26)
	raw := rawClient(t, endpoints)
	ctx := context.Background()

	var mu sync.Mutex
	var last []Block
	calls := 0
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.WatchBlocks(wctx, func(bs []Block) {
			mu.Lock()
			last, calls = bs, calls+1
			mu.Unlock()
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, 5*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if calls == 0 {
			return "no list from the watch"
		}
		return ""
	})
	for k, v := range hostileKeys() {
		if _, err := raw.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	// The watch has seen every hostile key once the last one written
	// after them shows.
	if _, err := raw.Put(ctx, DefaultPrefix+"nodes/marker", `{"addresses":[]}`); err != nil {
		t.Fatal(err)
	}
	// Only host-a's block and the well-formed block of "twice", whose
	// record is not (two IPv4 addresses): nothing to route it to.
	twice := netip.MustParsePrefix("10.1.0.192/26")
	want := func(bs []Block) string {
		if len(bs) != 2 || bs[0].Prefix != mine || bs[0].Node != "host-a" || !slices.Equal(bs[0].NodeAddresses, addrA) || !bs[0].Mine ||
			bs[1].Prefix != twice || len(bs[1].NodeAddresses) != 0 || bs[1].Mine {
			return "blocks listed with hostile keys in the store: " + blockList(bs) + "; want " + mine.String() + " of host-a via 198.51.100.2 and " + twice.String() + " of twice via nothing"
		}
		return ""
	}
	bs, err := a.Blocks(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if msg := want(bs); msg != "" {
		t.Error("Blocks: " + msg)
	}
	eventually(t, 5*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if msg := want(last); msg != "" {
			return "WatchBlocks: " + msg
		}
		return ""
	})
	// Status shows the ignored blocks with the reason.
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	text := st.String()
	for _, w := range []string{"ignored: block 0.0.0.0/1 held by evil: outside every subnet", "ignored: block 10.1.0.5/32 held by evil: a /32", "ignored: block ::/0 held by evil"} {
		if !strings.Contains(text, w) {
			t.Errorf("status does not say %q:\n%s", w, text)
		}
	}
	// A block of a valid length whose holder has no valid record is
	// listed without addresses: nothing to route to.
	if _, err := raw.Put(ctx, DefaultPrefix+"networks/web/blocks/0a0100c0_26", "junk"); err != nil {
		t.Fatal(err)
	}
	bs, _ = a.Blocks(ctx, "web")
	for _, b := range bs {
		if b.Node != "host-a" && len(b.NodeAddresses) > 0 {
			t.Errorf("block %s of %s listed with addresses %v", b.Prefix, b.Node, b.NodeAddresses)
		}
	}
}

func blockList(bs []Block) string {
	var s []string
	for _, b := range bs {
		s = append(s, b.Prefix.String()+" of "+b.Node+" via "+addrList(b.NodeAddresses))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// TestSameNodeName: a second host under a live host's node name is refused,
// naming both hosts' addresses, and writes nothing; once the first is gone
// it may register, but the first's blocks are not its own.
func TestSameNodeName(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	addr1 := []netip.Addr{netip.MustParseAddr("198.51.100.2")}
	addr2 := []netip.Addr{netip.MustParseAddr("198.51.100.3")}
	first := openStore(t, endpoints, "host-a", func(c *Config) { c.Addresses = addr1 })
	eventually(t, 5*time.Second, aliveCheck(first, "host-a", true))
	mustDefine(t, first, "web", smallDef())
	block := mustLease(t, first, "web", "10.1.0.0/24", 26)
	second := openStore(t, endpoints, "host-a", func(c *Config) { c.Addresses = addr2 })
	ctx := context.Background()

	_, err := second.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil)
	var taken *NameTakenError
	if !errors.As(err, &taken) {
		t.Fatalf("lease by a second host named host-a = %v, want a *NameTakenError", err)
	}
	t.Logf("the user sees: %v", err)
	for _, w := range []string{"node name host-a is taken", "198.51.100.2", "this host (198.51.100.3)", "CLUSTER_NODE="} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
	if _, err := second.Define(ctx, "db", smallDef()); !errors.As(err, &taken) {
		t.Errorf("Define by the refused host = %v, want the refusal", err)
	}
	if err := second.Claim(ctx, "web", netip.MustParseAddr("10.1.0.200"), 26); !errors.As(err, &taken) {
		t.Errorf("Claim by the refused host = %v, want the refusal", err)
	}
	if err := second.ReleaseBlock(ctx, "web", block); err == nil || !strings.Contains(err.Error(), "not this host's identity") {
		t.Errorf("release of the first host's block by the second = %v, want a refusal", err)
	}
	nodes, err := first.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := findNode(nodes, "host-a"); !slices.Equal(n.Addresses, addr1) {
		t.Errorf("node host-a = %+v, want the first host's record", n)
	}
	bs, _ := first.Blocks(ctx, "web")
	if len(bs) != 1 || bs[0].Prefix != block {
		t.Errorf("blocks after the refusals = %s, want only the first host's %s", blockList(bs), block)
	}

	// The first goes: the second registers, and holds nothing of the
	// first's.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string {
		nodes, err := second.Nodes(ctx)
		if n, ok := findNode(nodes, "host-a"); err != nil || !ok || !n.Alive || !slices.Equal(n.Addresses, addr2) {
			return "the second host is not registered as host-a"
		}
		// The store's record is written just before the host itself
		// takes note of it.
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if _, err := second.registered(rctx, "lease"); err != nil {
			return "the second host does not know it is registered yet: " + err.Error()
		}
		return ""
	})
	if held, err := second.HeldBlocks(ctx, "web", []netip.Prefix{block}); err != nil || len(held) != 0 {
		t.Errorf("blocks the second host holds = %v, %v; want none (the first's block is not its own)", held, err)
	}
	if got := mustLease(t, second, "web", "10.1.0.0/24", 26); got == block {
		t.Errorf("the second host leased %s, the first's block", got)
	}
}

// TestRestartKeepsIdentity: a host that comes back with the token of its
// state file (a plugin restarted before its lease expired) takes its
// registration and its blocks back.
func TestRestartKeepsIdentity(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	token := NewToken()
	before := openStore(t, endpoints, "host-a", func(c *Config) { c.Token = token })
	mustDefine(t, before, "web", smallDef())
	block := mustLease(t, before, "web", "10.1.0.0/24", 26)
	// Killed: no Close, its lease still alive.
	after := openStore(t, endpoints, "host-a", func(c *Config) { c.Token = token })
	ctx := context.Background()
	if held, err := after.HeldBlocks(ctx, "web", []netip.Prefix{block}); err != nil || !slices.Equal(held, []netip.Prefix{block}) {
		t.Fatalf("blocks held after the restart = %v, %v, want %s", held, err, block)
	}
	if got := mustLease(t, after, "web", "10.1.0.0/24", 26); got == block {
		t.Fatalf("leased %s twice", got)
	}
	if err := after.ReleaseBlock(ctx, "web", block); err != nil {
		t.Fatalf("release after the restart: %v", err)
	}
}

// TestForgedHolder: a block written by hand naming a host, with no proof
// or a false one, is not the host's: not adopted, not released by it. One
// that names it without an identity (written before identities) is the
// host's only if its state file records it.
func TestForgedHolder(t *testing.T) {
	t.Parallel()
	endpoints, a, _ := twoHosts(t)
	mustDefine(t, a, "web", smallDef())
	raw := rawClient(t, endpoints)
	ctx := context.Background()
	bare := netip.MustParsePrefix("10.1.0.64/26")
	false_ := netip.MustParsePrefix("10.1.0.128/26")
	old := netip.MustParsePrefix("10.1.0.192/26")
	for k, v := range map[string]string{
		a.blockKey("web", bare):   "host-a",
		a.blockKey("web", false_): `{"node":"host-a","proof":"0123456789abcdef0123456789abcdef"}`,
		a.blockKey("web", old):    "host-a",
	} {
		if _, err := raw.Put(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	held, err := a.HeldBlocks(ctx, "web", []netip.Prefix{old})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(held, []netip.Prefix{old}) {
		t.Errorf("HeldBlocks with forged holders = %v, want only %s, which the state file knows", held, old)
	}
	r, err := raw.Get(ctx, a.blockKey("web", old))
	if err != nil || len(r.Kvs) == 0 || !a.mine(a.blockKey("web", old), r.Kvs[0].Value) {
		t.Errorf("the known block is not stamped with the host's identity: %v", r)
	}
	for _, p := range []netip.Prefix{bare, false_} {
		if err := a.ReleaseBlock(ctx, "web", p); err == nil || !strings.Contains(err.Error(), "names node host-a but not this host's identity") {
			t.Errorf("release of forged block %s = %v, want a refusal", p, err)
		}
	}
	if err := a.ReleaseBlock(ctx, "web", old); err != nil {
		t.Errorf("release of the stamped block: %v", err)
	}
}

// TestForgottenWhileStopped: a host forgotten while stopped, whose block
// another host leased since, does not hold it when it comes back.
func TestForgottenWhileStopped(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	token := NewToken()
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Token = token })
	b := openStore(t, endpoints, "host-b")
	mustDefine(t, a, "web", smallDef())
	block := mustLease(t, a, "web", "10.1.0.0/24", 26)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, _, err := b.Forget(ctx, "host-a"); err != nil || n != 1 {
		t.Fatalf("Forget = %d, %v", n, err)
	}
	mustDefine(t, b, "web", smallDef())
	if got := mustLease(t, b, "web", "10.1.0.0/24", 26); got != block {
		t.Fatalf("host-b leased %s, want the forgotten %s", got, block)
	}
	back := openStore(t, endpoints, "host-a", func(c *Config) { c.Token = token })
	if held, err := back.HeldBlocks(ctx, "web", []netip.Prefix{block}); err != nil || len(held) != 0 {
		t.Errorf("blocks of host-a back from a forget = %v, %v; want none", held, err)
	}
	bs, _ := back.Blocks(ctx, "web")
	if len(bs) != 1 || bs[0].Node != "host-b" || bs[0].Mine {
		t.Errorf("blocks = %s, want %s of host-b only", blockList(bs), block)
	}
}

// TestWritesNeedRegistration: a lease's transaction fails unless the node
// key is on the node's own lease.
func TestWritesNeedRegistration(t *testing.T) {
	t.Parallel()
	_, a, _ := twoHosts(t)
	mustDefine(t, a, "web", smallDef())
	ctx := context.Background()
	lease, err := a.registered(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	def, rev, err := a.definition(ctx, "web", "test")
	if err != nil || def.HostBlock4 != 26 {
		t.Fatal(err)
	}
	resp, err := a.leaseTxn(ctx, "web", netip.MustParsePrefix("10.1.0.0/26"), nil, lease+1, rev, 0)
	if err != nil || resp.Succeeded || onLease(resp, lease+1) || !onLease(resp, lease) {
		t.Errorf("lease transaction on another lease: succeeded %v, %v", resp != nil && resp.Succeeded, err)
	}
	if bs, _ := a.Blocks(ctx, "web"); len(bs) != 0 {
		t.Errorf("blocks written without the registration: %s", blockList(bs))
	}
}
