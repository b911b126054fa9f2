package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/cluster/clustertest"
)

type calls struct {
	mu     sync.Mutex
	ok     map[string]int
	failed map[string]int
}

func (c *calls) StoreCall(op string, took time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.failed[op]++
	} else {
		c.ok[op]++
	}
}

func (c *calls) count(op string) (ok, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok[op], c.failed[op]
}

// TestObserved: the Store's calls to etcd are heard by kind, the
// registration's lease among them; Ping answers while etcd does and
// fails, heard as a failed get, once it is gone.
func TestObserved(t *testing.T) {
	endpoints, stop, _ := clustertest.Etcd(t)
	c := &calls{ok: map[string]int{}, failed: map[string]int{}}
	s := openStore(t, endpoints, "host-a", func(cfg *Config) { cfg.Calls = c; cfg.Timeout = time.Second })
	if _, err := s.Define(context.Background(), "net1", smallDef()); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ok, _ := c.count("lease_grant"); ok == 0; ok, _ = c.count("lease_grant") {
		if time.Now().After(deadline) {
			t.Fatal("the node's lease grant was not heard")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ok, _ := c.count("txn"); ok == 0 {
		t.Error("Define's transaction was not heard")
	}
	okGets, _ := c.count("get")
	if okGets == 0 {
		t.Error("Ping's read was not heard")
	}
	stop()
	if err := s.Ping(context.Background(), 200*time.Millisecond); err == nil {
		t.Fatal("Ping succeeded with etcd stopped")
	}
	if _, failed := c.count("get"); failed == 0 {
		t.Error("the failed read was not heard")
	}
}
