package clustertest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestEtcdStopRestart(t *testing.T) {
	start := time.Now()
	endpoints, stop, restart := Etcd(t)
	t.Logf("etcd started in %v at %v", time.Since(start), endpoints)
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	put := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := c.Put(ctx, "k", "v")
		return err
	}
	if err := put(); err != nil {
		t.Fatalf("put on a running etcd: %v", err)
	}
	stop()
	if err := put(); err == nil {
		t.Fatal("put succeeded on a stopped etcd")
	}
	start = time.Now()
	restart()
	t.Logf("etcd restarted in %v", time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := c.Get(ctx, "k")
	if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
		t.Fatalf("after restart: %v %v: want the data kept", r, err)
	}
}
