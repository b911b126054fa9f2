package cluster

import (
	"context"
	"encoding/json"
	"net/netip"
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
		snap, err := s.readSnapshot(lctx, "")
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
		w := newBlockWatch(s, snap)
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

// blockWatch is WatchBlocks' copy of the blocks and nodes.
type blockWatch struct {
	s      *Store
	rev    int64
	blocks map[string]Block        // by key
	nodes  map[string][]netip.Addr // live nodes' addresses
}

func newBlockWatch(s *Store, snap *snapshot) *blockWatch {
	w := &blockWatch{s: s, rev: snap.rev, blocks: map[string]Block{}, nodes: map[string][]netip.Addr{}}
	for _, b := range snap.blocks {
		w.blocks[s.blockKey(b.Network, b.Prefix)] = b
	}
	for name, n := range snap.nodes {
		w.nodes[name] = n.rec.Addresses
	}
	return w
}

func (w *blockWatch) list() []Block {
	out := make([]Block, 0, len(w.blocks))
	for _, b := range w.blocks {
		b.NodeAddresses = w.nodes[b.Node]
		out = append(out, b)
	}
	sortBlocks(out)
	return out
}

// follow watches from w.rev+1 and calls fn after each batch of events that
// changed a block or a node. It returns when the watch ends, reporting
// whether it received anything (to reset the caller's backoff).
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
			fn(w.list())
		}
	}
	return got
}

// apply applies one event; it reports whether blocks or nodes changed.
func (w *blockWatch) apply(ev *clientv3.Event) bool {
	key := string(ev.Kv.Key)
	del := ev.Type == mvccpb.DELETE
	if name, ok := strings.CutPrefix(key, w.s.nodesPrefix()); ok {
		if del {
			delete(w.nodes, name)
			return true
		}
		var rec nodeRecord
		_ = json.Unmarshal(ev.Kv.Value, &rec)
		w.nodes[name] = rec.Addresses
		return true
	}
	network, kind, obj, ok := w.s.parseNetworkKey(key)
	if !ok || kind != "blocks" {
		return false
	}
	if del {
		_, had := w.blocks[key]
		delete(w.blocks, key)
		return had
	}
	p, err := ParseBlockKey(obj)
	if err != nil {
		return false
	}
	w.blocks[key] = Block{Network: network, Prefix: p, Node: string(ev.Kv.Value)}
	return true
}
