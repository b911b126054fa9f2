package cluster

import (
	"context"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchBlocks calls fn with the full list of blocks of every cluster
// network, each with its holder's cluster addresses (Block.NodeAddresses,
// empty while the holder has no node key), sorted as Blocks sorts them:
// once at start, and again after every change to blocks or nodes. It runs
// until ctx ends or the Store is closed. It feeds host-gw routes.
//
// It lists the store, then watches the whole prefix from the revision after
// the listing, applying each batch of events to its copy; so fn sees every
// change, in order, without listing again. When the watch fails (the
// revision was compacted, the store was replaced) it lists and watches
// again, with a backoff. While the store is unreachable fn is simply not
// called: the last list given stays the best knowledge. fn runs on
// WatchBlocks' goroutine; a slow fn delays the next update, never loses it.
func (s *Store) WatchBlocks(ctx context.Context, fn func([]Block)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.liveCtx, cancel)() // Close ends the watch too
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		lctx, cancel := s.withTimeout(ctx)
		snap, kvs, err := s.readAll(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.WithError(s.storeError(err, "host routes to other nodes' blocks are not updated until it answers")).Warn("cannot list the blocks of the cluster")
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		w := newBlockWatch(s, snap, kvs)
		fn(w.list())
		if w.follow(ctx, fn) {
			backoff = 250 * time.Millisecond
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// blockWatch is WatchBlocks' copy of the keys of nodes, definitions and
// blocks; each list is built from it by the checks of readSnapshot.
type blockWatch struct {
	s   *Store
	rev int64
	kvs map[string]*mvccpb.KeyValue
}

func newBlockWatch(s *Store, snap *snapshot, kvs []*mvccpb.KeyValue) *blockWatch {
	w := &blockWatch{s: s, rev: snap.rev, kvs: map[string]*mvccpb.KeyValue{}}
	for _, kv := range kvs {
		if w.wanted(string(kv.Key)) {
			w.kvs[string(kv.Key)] = kv
		}
	}
	return w
}

// wanted reports whether key is one the list is made of: a node, a
// definition or a block.
func (w *blockWatch) wanted(key string) bool {
	if strings.HasPrefix(key, w.s.nodesPrefix()) {
		return true
	}
	_, kind, _, ok := w.s.parseNetworkKey(key)
	return ok && kind != "claims"
}

func (w *blockWatch) list() []Block {
	kvs := make([]*mvccpb.KeyValue, 0, len(w.kvs))
	for _, kv := range w.kvs {
		kvs = append(kvs, kv)
	}
	return w.s.buildSnapshot(w.rev, kvs).blocks
}

// follow watches from w.rev+1 and calls fn after each batch of events that
// changed a block, a definition or a node. It returns when the watch
// ends, reporting whether it received anything (to reset the caller's
// backoff).
func (w *blockWatch) follow(ctx context.Context, fn func([]Block)) bool {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := false
	ch := w.s.client.Watch(wctx, w.s.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(w.rev+1))
	for resp := range ch {
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				w.s.log.WithError(err).Warn("watch on the cluster store's blocks failed; listing them again")
			}
			return got
		}
		got = true
		changed := false
		for _, ev := range resp.Events {
			changed = w.apply(ev) || changed
		}
		if changed {
			w.rev = resp.Header.Revision
			fn(w.list())
		}
	}
	return got
}

// apply applies one event; it reports whether a key of the list changed.
func (w *blockWatch) apply(ev *clientv3.Event) bool {
	key := string(ev.Kv.Key)
	if !w.wanted(key) {
		return false
	}
	if ev.Type == mvccpb.DELETE {
		_, had := w.kvs[key]
		delete(w.kvs, key)
		return had
	}
	w.kvs[key] = ev.Kv
	return true
}
