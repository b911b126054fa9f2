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

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dualstack-net/dualstack/cluster/clustertest"
)

// eventually retries check until it returns "" or d passes.
func eventually(t *testing.T, d time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func findNode(nodes []Node, name string) (Node, bool) {
	i := slices.IndexFunc(nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return Node{}, false
	}
	return nodes[i], true
}

func aliveCheck(s *Store, name string, wantAlive bool) func() string {
	return func() string {
		nodes, err := s.Nodes(context.Background())
		if err != nil {
			return err.Error()
		}
		n, _ := findNode(nodes, name)
		if n.Alive != wantAlive {
			return "node " + name + " alive is not " + map[bool]string{true: "true", false: "false"}[wantAlive]
		}
		return ""
	}
}

func TestNodesLiveness(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	addrA := []netip.Addr{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("fd00:1::2")}
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Addresses = addrA; c.TTL = 5 * time.Second })
	b := openStore(t, endpoints, "host-b")
	mustDefine(t, a, "web", smallDef())
	mustLease(t, b, "web", "10.1.0.0/24", 26)
	eventually(t, 5*time.Second, aliveCheck(a, "host-a", true))
	eventually(t, 5*time.Second, aliveCheck(a, "host-b", true))

	nodes, err := a.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := findNode(nodes, "host-a")
	if !slices.Equal(n.Addresses, addrA) || n.TTL <= 0 || n.TTL > 5*time.Second || time.Since(n.Since) > time.Minute {
		t.Errorf("node host-a = %+v, want alive with addresses %v and a TTL of at most 5s", n, addrA)
	}

	// Close revokes the lease at once: b is no longer alive, but stays
	// listed because it holds a block.
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	nodes, err = a.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := findNode(nodes, "host-b"); !ok || n.Alive || n.TTL != 0 {
		t.Errorf("node host-b after Close = %+v (listed %v), want listed and not alive", n, ok)
	}
	if len(nodes) != 2 {
		t.Errorf("nodes = %+v, want host-a and host-b", nodes)
	}
}

// An observer (a tool such as the CLI) reads and forgets without showing
// up as a node.
func TestObserver(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a")
	cli := openStore(t, endpoints, "dualstack-cli", func(c *Config) { c.Observer = true })
	eventually(t, 5*time.Second, aliveCheck(cli, "host-a", true))
	time.Sleep(200 * time.Millisecond)
	nodes, err := cli.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].Name != "host-a" {
		t.Errorf("nodes = %+v, want host-a only", nodes)
	}
	if err := cli.Close(); err != nil {
		t.Errorf("Close of an observer: %v", err)
	}
	_ = a
}

func TestForget(t *testing.T) {
	t.Parallel()
	_, a, b := twoHosts(t)
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	mustDefine(t, a, "db", smallDef())
	mustLease(t, a, "web", "10.1.0.0/24", 26)
	mustLease(t, b, "web", "10.1.0.0/24", 26)
	mustLease(t, b, "web", "fd00:1::/112", 120)
	mustLease(t, b, "db", "10.1.0.0/24", 26)
	for _, addr := range []string{"10.1.0.200", "10.1.0.201"} {
		if err := b.Claim(ctx, "web", netip.MustParseAddr(addr), 26); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Claim(ctx, "web", netip.MustParseAddr("10.1.0.202"), 26); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, aliveCheck(a, "host-b", true))

	_, _, err := a.Forget(ctx, "host-b")
	if err == nil || !strings.Contains(err.Error(), "node host-b is alive (its lease has ") || !strings.Contains(err.Error(), "stop its plugin first, or wait for the lease to expire") {
		t.Fatalf("Forget of a live node = %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	blocks, claims, err := a.Forget(ctx, "host-b")
	if err != nil || blocks != 3 || claims != 2 {
		t.Fatalf("Forget = %d blocks, %d claims, %v; want 3, 2, nil", blocks, claims, err)
	}
	left, _ := a.Blocks(ctx, "")
	if len(left) != 1 || left[0].Node != "host-a" || left[0].Network != "web" {
		t.Errorf("blocks after Forget = %+v, want host-a's only", left)
	}
	cl, _ := a.Claims(ctx, "")
	if len(cl) != 1 || cl[0].Node != "host-a" {
		t.Errorf("claims after Forget = %+v, want host-a's only", cl)
	}
	// db lost its last block: its definition went with it; web kept its.
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Networks) != 1 || st.Networks[0].Name != "web" || st.Networks[0].Definition == nil {
		t.Errorf("networks after Forget = %+v, want web only, defined", st.Networks)
	}
	nodes, _ := a.Nodes(ctx)
	if _, ok := findNode(nodes, "host-b"); ok {
		t.Errorf("forgotten node still listed: %+v", nodes)
	}
	// Forgetting again finds nothing.
	if blocks, claims, err := a.Forget(ctx, "host-b"); err != nil || blocks != 0 || claims != 0 {
		t.Errorf("second Forget = %d, %d, %v", blocks, claims, err)
	}
}

func TestStoreDown(t *testing.T) {
	t.Parallel()
	endpoints, stop, restart := clustertest.Etcd(t)
	const timeout = 700 * time.Millisecond
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Timeout = timeout })
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	mustLease(t, a, "web", "10.1.0.0/24", 26)

	stop()
	start := time.Now()
	_, err := a.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil)
	took := time.Since(start)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("LeaseBlock with etcd down = %v, want ErrUnreachable", err)
	}
	if took > timeout+time.Second {
		t.Errorf("LeaseBlock with etcd down took %v, want about the timeout %v", took, timeout)
	}
	want := "cluster store " + endpoints[0] + " is unreachable ("
	if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "a new block of web cannot be leased; containers still start while this host's blocks have room") {
		t.Errorf("error = %q, want it to start with %q and say what it means", err, want)
	}
	t.Logf("store down: %v (after %v)", err, took)
	for name, call := range map[string]func() error{
		"Claim":  func() error { return a.Claim(ctx, "web", netip.MustParseAddr("10.1.0.99"), 26) },
		"Define": func() error { _, err := a.Define(ctx, "web", smallDef()); return err },
		"Nodes":  func() error { _, err := a.Nodes(ctx); return err },
	} {
		if err := call(); !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), endpoints[0]) {
			t.Errorf("%s with etcd down = %v, want ErrUnreachable naming the endpoint", name, err)
		}
	}

	restart()
	// The same Store works again, and the node is (still or again) alive.
	start = time.Now()
	eventually(t, 5*time.Second, func() string {
		if _, err := a.LeaseBlock(ctx, "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil); err != nil {
			return "LeaseBlock after restart: " + err.Error()
		}
		return ""
	})
	t.Logf("store back: leasing works again after %v", time.Since(start))
	raw := rawClient(t, endpoints)
	eventually(t, 5*time.Second, func() string {
		r, err := raw.Get(ctx, DefaultPrefix+"nodes/host-a")
		if err != nil || len(r.Kvs) == 0 {
			return "node key of host-a missing after restart"
		}
		return ""
	})
}

// When the lease is lost (revoked here, as etcd does when it expires during
// a partition) the node registers again by itself.
func TestReregistration(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.TTL = 2 * time.Second })
	raw := rawClient(t, endpoints)
	ctx := context.Background()
	var lease clientv3.LeaseID
	eventually(t, 5*time.Second, func() string {
		r, err := raw.Get(ctx, DefaultPrefix+"nodes/host-a")
		if err != nil || len(r.Kvs) == 0 {
			return "node key missing"
		}
		lease = clientv3.LeaseID(r.Kvs[0].Lease)
		return ""
	})
	if _, err := raw.Revoke(ctx, lease); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 5*time.Second, func() string {
		r, err := raw.Get(ctx, DefaultPrefix+"nodes/host-a")
		if err != nil || len(r.Kvs) == 0 || clientv3.LeaseID(r.Kvs[0].Lease) == lease {
			return "node key not back on a new lease"
		}
		return ""
	})
	t.Logf("registered again %v after the lease was revoked", time.Since(start))

	// A node key deleted by hand comes back too.
	if _, err := raw.Delete(ctx, DefaultPrefix+"nodes/host-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, aliveCheck(a, "host-a", true))
}

// Open neither blocks nor fails while etcd is down; the node registers once
// it is up.
func TestOpenWhileDown(t *testing.T) {
	t.Parallel()
	endpoints, stop, restart := clustertest.Etcd(t)
	stop()
	start := time.Now()
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Timeout = 500 * time.Millisecond })
	if took := time.Since(start); took > 200*time.Millisecond {
		t.Errorf("Open with etcd down took %v", took)
	}
	restart()
	eventually(t, 10*time.Second, aliveCheck(a, "host-a", true))
	// Close with etcd down returns within the timeout.
	stop()
	start = time.Now()
	err := a.Close()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Close with etcd down took %v", took)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Close with etcd down = %v, want ErrUnreachable (the lease could not be revoked)", err)
	}
}

func TestWatchBlocks(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	addrB := []netip.Addr{netip.MustParseAddr("198.51.100.3")}
	a := openStore(t, endpoints, "host-a")
	b := openStore(t, endpoints, "host-b", func(c *Config) { c.Addresses = addrB })
	mustDefine(t, a, "web", smallDef())
	mine := mustLease(t, a, "web", "10.1.0.0/24", 26)

	var mu sync.Mutex
	var calls [][]Block
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.WatchBlocks(ctx, func(bs []Block) {
			mu.Lock()
			calls = append(calls, bs)
			mu.Unlock()
		})
	}()
	last := func() []Block {
		mu.Lock()
		defer mu.Unlock()
		if len(calls) == 0 {
			return nil
		}
		return calls[len(calls)-1]
	}
	eventually(t, 5*time.Second, func() string {
		if bs := last(); len(bs) != 1 || bs[0].Prefix != mine {
			return "first call does not list a's block"
		}
		return ""
	})
	eventually(t, 5*time.Second, aliveCheck(a, "host-b", true))
	theirs := mustLease(t, b, "web", "10.1.0.0/24", 26)
	eventually(t, 5*time.Second, func() string {
		bs := last()
		if len(bs) != 2 || bs[1].Prefix != theirs || bs[1].Node != "host-b" || !slices.Equal(bs[1].NodeAddresses, addrB) {
			return "b's block with b's address is not seen"
		}
		return ""
	})
	if err := b.ReleaseBlock(context.Background(), "web", theirs); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		if bs := last(); len(bs) != 1 || bs[0].Prefix != mine {
			return "b's release is not seen"
		}
		return ""
	})
	// b leaving (a node change) is reported too: its block stays, without
	// addresses.
	mustLease(t, b, "web", "10.1.0.0/24", 26)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		bs := last()
		if len(bs) != 2 || bs[1].Node != "host-b" || len(bs[1].NodeAddresses) != 0 {
			return "b's departure is not seen"
		}
		return ""
	})
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchBlocks did not return after its context ended")
	}
	// Closing the Store ends a watch too.
	done = make(chan struct{})
	go func() { defer close(done); a.WatchBlocks(context.Background(), func([]Block) {}) }()
	time.Sleep(100 * time.Millisecond)
	a.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchBlocks did not return after the Store was closed")
	}
}

func TestWatchBlocksSurvivesRestart(t *testing.T) {
	t.Parallel()
	endpoints, stop, restart := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Timeout = 500 * time.Millisecond })
	b := openStore(t, endpoints, "host-b")
	mustDefine(t, a, "web", smallDef())
	var mu sync.Mutex
	var seen []Block
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.WatchBlocks(ctx, func(bs []Block) { mu.Lock(); seen = bs; mu.Unlock() })
	stop()
	time.Sleep(300 * time.Millisecond)
	restart()
	var p netip.Prefix
	eventually(t, 10*time.Second, func() string {
		var err error
		p, err = b.LeaseBlock(context.Background(), "web", netip.MustParsePrefix("10.1.0.0/24"), 26, nil)
		if err != nil {
			return err.Error()
		}
		return ""
	})
	eventually(t, 10*time.Second, func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 || seen[0].Prefix != p {
			return "block leased after the restart not seen"
		}
		return ""
	})
}

func TestStatus(t *testing.T) {
	t.Parallel()
	endpoints, _, _ := clustertest.Etcd(t)
	a := openStore(t, endpoints, "host-a", func(c *Config) { c.Addresses = []netip.Addr{netip.MustParseAddr("198.51.100.2")} })
	b := openStore(t, endpoints, "host-b")
	ctx := context.Background()
	mustDefine(t, a, "web", smallDef())
	mustLease(t, a, "web", "10.1.0.0/24", 26)
	mustLease(t, b, "web", "10.1.0.0/24", 26)
	mustLease(t, b, "web", "fd00:1::/112", 120)
	if err := b.Claim(ctx, "web", netip.MustParseAddr("10.1.0.250"), 26); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, aliveCheck(a, "host-b", true))
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := a.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	text := st.String()
	t.Logf("\n%s", text)
	for _, want := range []string{
		"cluster store: " + endpoints[0],
		"host-a  198.51.100.2  alive, lease ",
		"host-b  -  not alive",
		"web: bridge, routes host-gw, 10.1.0.0/24 in /26 blocks, fd00:1::/112 in /120 blocks (defined by host-a)",
		"host-a: 10.1.0.0/26\n",
		"host-b: 10.1.0.64/26, fd00:1::/120\n",
		"claim 10.1.0.250: host-b",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status does not contain %q", want)
		}
	}
}
