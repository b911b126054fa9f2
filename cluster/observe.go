package cluster

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Observer hears of every call the Store makes to etcd, for the metrics
// (dualstack_cluster_store_request_duration_seconds{op},
// dualstack_cluster_store_errors_total{op}).
type Observer interface {
	// StoreCall: a call of kind op (one of StoreOps) took took and
	// ended with err (nil: it succeeded).
	StoreCall(op string, took time.Duration, err error)
}

// StoreOps are the kinds of calls to etcd an Observer hears of: reads,
// writes, deletions, transactions (most of the Store's work), and the
// node lease's grant, keep-alive, revocation and time-to-live query.
var StoreOps = []string{"get", "put", "delete", "txn", "lease_grant", "lease_keepalive", "lease_revoke", "lease_ttl"}

// observe has o (nil: nobody) hear of every call of client's KV and
// Lease.
func observe(client *clientv3.Client, o Observer) {
	if o == nil {
		return
	}
	client.KV = observedKV{KV: client.KV, o: o}
	client.Lease = observedLease{Lease: client.Lease, o: o}
}

type observedKV struct {
	clientv3.KV
	o Observer
}

func (k observedKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	start := time.Now()
	r, err := k.KV.Get(ctx, key, opts...)
	k.o.StoreCall("get", time.Since(start), err)
	return r, err
}

func (k observedKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	start := time.Now()
	r, err := k.KV.Put(ctx, key, val, opts...)
	k.o.StoreCall("put", time.Since(start), err)
	return r, err
}

func (k observedKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	start := time.Now()
	r, err := k.KV.Delete(ctx, key, opts...)
	k.o.StoreCall("delete", time.Since(start), err)
	return r, err
}

func (k observedKV) Txn(ctx context.Context) clientv3.Txn {
	return observedTxn{Txn: k.KV.Txn(ctx), o: k.o}
}

type observedTxn struct {
	clientv3.Txn
	o Observer
}

func (t observedTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	return observedTxn{Txn: t.Txn.If(cs...), o: t.o}
}

func (t observedTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return observedTxn{Txn: t.Txn.Then(ops...), o: t.o}
}

func (t observedTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return observedTxn{Txn: t.Txn.Else(ops...), o: t.o}
}

func (t observedTxn) Commit() (*clientv3.TxnResponse, error) {
	start := time.Now()
	r, err := t.Txn.Commit()
	t.o.StoreCall("txn", time.Since(start), err)
	return r, err
}

type observedLease struct {
	clientv3.Lease
	o Observer
}

func (l observedLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	start := time.Now()
	r, err := l.Lease.Grant(ctx, ttl)
	l.o.StoreCall("lease_grant", time.Since(start), err)
	return r, err
}

func (l observedLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	start := time.Now()
	r, err := l.Lease.Revoke(ctx, id)
	l.o.StoreCall("lease_revoke", time.Since(start), err)
	return r, err
}

func (l observedLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	start := time.Now()
	r, err := l.Lease.KeepAliveOnce(ctx, id)
	l.o.StoreCall("lease_keepalive", time.Since(start), err)
	return r, err
}

func (l observedLease) TimeToLive(ctx context.Context, id clientv3.LeaseID, opts ...clientv3.LeaseOption) (*clientv3.LeaseTimeToLiveResponse, error) {
	start := time.Now()
	r, err := l.Lease.TimeToLive(ctx, id, opts...)
	l.o.StoreCall("lease_ttl", time.Since(start), err)
	return r, err
}

// Ping reads one key of the store within timeout: nil when the store
// answers (the health check of a cluster host).
func (s *Store) Ping(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := s.client.Get(ctx, s.nodeKey(s.cfg.Node), clientv3.WithCountOnly()); err != nil {
		return fmt.Errorf("cluster store %s does not answer within %s: %w", s.endpointList, timeout, err)
	}
	return nil
}
