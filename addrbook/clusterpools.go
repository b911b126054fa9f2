package addrbook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/addrbook/allocator"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/state"
)

// Cluster pools: the address book of cluster networks, one address
// space shared by several Docker hosts. A cluster pool allocates only
// inside the blocks its host leased from the cluster store (Leases), in
// sequence and durably in the state file as any pool does, with no round
// trip to the store per address. When its blocks are full it leases the
// next block; a given address outside its blocks is claimed in the store
// on its own. The store guarantees that no two hosts hold one block or
// one claimed address, so no two containers of the cluster get one
// address.

// Leases is where the blocks of a cluster pool come from, and the single
// addresses it holds outside them: the cluster store (cluster.Store), one
// for every host of the cluster.
type Leases interface {
	// LeaseBlock leases for this host the first free block of length
	// bits inside within.
	LeaseBlock(ctx context.Context, network string, within netip.Prefix, bits int, skip func(netip.Prefix) bool) (netip.Prefix, error)
	// ReleaseBlock gives a block back.
	ReleaseBlock(ctx context.Context, network string, block netip.Prefix) error
	// Claim holds addr for this host; nil without writing anything when
	// the host's own block of length hostBlockBits holds it.
	Claim(ctx context.Context, network string, addr netip.Addr, hostBlockBits int) error
	// Unclaim gives a claimed address back.
	Unclaim(ctx context.Context, network string, addr netip.Addr) error
	// HeldBlocks lists the blocks of network this host holds under its
	// identity; known are those the state file records (see
	// cluster.Store.HeldBlocks).
	HeldBlocks(ctx context.Context, network string, known []netip.Prefix) ([]netip.Prefix, error)
	// Undefine forgets network's definition once no host holds any of
	// it.
	Undefine(ctx context.Context, network string) error
}

// ClusterPool makes a pool part of a cluster network.
type ClusterPool struct {
	// Network is the cluster network's name (-o cluster=NAME).
	Network string `json:"network"`
	// Bits is the length of the host's blocks (host_block4/6).
	Bits int `json:"bits"`
	// Routed: a bridge network, whose blocks are subnets of their own,
	// each with its gateway (the block's first usable address) on the
	// host's bridge; addresses carry the block's length. Otherwise the
	// blocks are ranges of one LAN (macvlan), and addresses carry the
	// subnet's length.
	Routed bool `json:"routed,omitempty"`
}

// Block is a block a cluster pool holds.
type Block struct {
	Prefix netip.Prefix
	// Gateway is the block's gateway in a routed pool.
	Gateway netip.Addr
}

// ownerBlockGateway marks the gateway address of a routed block.
const ownerBlockGateway = "gateway:block"

// storeTimeout bounds one call to the cluster store.
const storeTimeout = 3 * time.Second

// Buckets of a cluster pool, beside those of every pool:
//
//	ipam/pools/<pool ID>/
//	  cluster                ClusterPool as JSON
//	  blocks/<block>         the block's gateway (4 or 16 bytes) or empty
//	  lost/<block>           the same, of a block the store no longer gives
//	                         this host (see markLost)
//	  claims/<address>       empty: an address claimed in the store
const (
	bucketBlocks = "blocks"
	bucketLost   = "lost"
	bucketClaims = "claims"
)

var keyCluster = []byte("cluster")

// clusterState is what a cluster pool holds beside its allocator.
type clusterState struct {
	ClusterPool
	blocks []Block // in address order
	// lost are blocks the store no longer gives this host: nothing is
	// allocated from them, but the containers that have addresses there
	// keep them (and a routed block's gateway stays on the bridge).
	lost   []Block
	claims map[netip.Addr]bool
	// checked: the blocks were compared with the store's since the
	// plugin started (syncBlocks), or that was tried (checkFirst).
	checked bool
}

// JoinCluster makes pool poolID a pool of cluster network c.Network, which
// the network driver does when it creates a network with -o cluster: Docker
// asked for the pool (and its gateway) before it told the driver anything
// of the network. Joining again with the same c changes nothing.
func (bk *Book) JoinCluster(poolID string, c ClusterPool) error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	p, ok := bk.pools[poolID]
	if !ok {
		return fmt.Errorf("no pool %q is held by dualstack: the network's IPAM state is missing; recreate the network", poolID)
	}
	if bk.leases == nil {
		return errors.New("cluster networks need a cluster store: set CLUSTER_STORE with `docker plugin set dualstack CLUSTER_STORE=http://ETCD:2379`")
	}
	if p.cluster != nil {
		if p.cluster.ClusterPool == c {
			return nil
		}
		return fmt.Errorf("pool %s is already part of cluster network %q with host blocks of /%d", p, p.cluster.Network, p.cluster.Bits)
	}
	if c.Bits < p.prefix.Bits() || c.Bits > p.prefix.Addr().BitLen() {
		return fmt.Errorf("host blocks of /%d do not fit subnet %s: choose a length between /%d and /%d", c.Bits, p.prefix, p.prefix.Bits(), p.prefix.Addr().BitLen())
	}
	cs := &clusterState{ClusterPool: c, claims: map[netip.Addr]bool{}}
	meta, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := bk.db.Update(func(tx state.Tx) error { return tx.Put(poolPath(p.id), keyCluster, meta) }); err != nil {
		return fmt.Errorf("record pool %s as part of cluster network %q in the state file: %w", p, c.Network, err)
	}
	p.cluster = cs
	bk.log.WithField("pool", p.id).WithField("network", c.Network).WithField("bits", c.Bits).Info("pool joined its cluster network")
	return nil
}

// Blocks lists the blocks pool poolID holds, in address order; none for a
// pool of one host.
func (bk *Book) Blocks(poolID string) []Block {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if p, ok := bk.pools[poolID]; ok && p.cluster != nil {
		return slices.Clone(p.cluster.blocks)
	}
	return nil
}

// LostBlocks lists the blocks pool poolID lost (see markLost) whose
// addresses some containers still have.
func (bk *Book) LostBlocks(poolID string) []Block {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if p, ok := bk.pools[poolID]; ok && p.cluster != nil {
		return slices.Clone(p.cluster.lost)
	}
	return nil
}

// storeContext bounds a call to the cluster store.
func storeContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), storeTimeout)
}

// addrBits is the prefix length addr of p is handed out with: its block's
// in a routed cluster pool, the subnet's otherwise.
func (p *pool) addrBits(addr netip.Addr) int {
	if p.cluster != nil && p.cluster.Routed {
		if b, ok := p.cluster.blockOf(addr); ok {
			return b.Prefix.Bits()
		}
		for _, b := range p.cluster.lost {
			if b.Prefix.Contains(addr) {
				return b.Prefix.Bits()
			}
		}
		// No block holds it: a routed pool hands out no such address (a
		// given one leases its block first), so this is only a fallback.
		return addr.BitLen()
	}
	return p.prefix.Bits()
}

// routedGateway is the gateway of a routed block: its first usable
// address, which the host's bridge holds.
func routedGateway(block netip.Prefix) netip.Addr { return block.Masked().Addr().Next() }

func (c *clusterState) blockOf(addr netip.Addr) (Block, bool) {
	for _, b := range c.blocks {
		if b.Prefix.Contains(addr) {
			return b, true
		}
	}
	return Block{}, false
}

// blockWindow is the part of block b that p hands out in sequence: the
// block inside the pool's own window (its usable addresses, or its
// ip-range), without a routed block's network, gateway and broadcast
// addresses. ok is false when nothing is left.
func (p *pool) blockWindow(b Block) (first, last netip.Addr, ok bool) {
	first, last = b.Prefix.Masked().Addr(), lastAddr(b.Prefix)
	if p.cluster.Routed {
		first = routedGateway(b.Prefix).Next()
		if first.Is4() {
			last = last.Prev()
		}
	}
	if first.Less(p.winFirst) {
		first = p.winFirst
	}
	if p.winLast.Less(last) {
		last = p.winLast
	}
	return first, last, first.IsValid() && last.IsValid() && !last.Less(first)
}

// pickInBlocks hands out the next free address of p's blocks, from the
// block of the cursor on, leasing a new block when they are all full. It
// changes memory only (and, for a new block, the store and the state
// file); undo gives the address back and restores the sequence.
func (bk *Book) pickInBlocks(p *pool) (netip.Addr, func(), error) {
	prevFirst, prevLast := p.alloc.Window()
	prevCursor, hadCursor := p.alloc.Cursor()
	restore := func() {
		_ = p.alloc.SetWindow(prevFirst, prevLast)
		if hadCursor {
			_ = p.alloc.SetCursor(prevCursor)
		} else {
			p.alloc.ResetCursor()
		}
	}
	try := func(b Block) (netip.Addr, bool, error) {
		first, last, ok := p.blockWindow(b)
		if !ok {
			return netip.Addr{}, false, nil
		}
		if err := p.alloc.SetWindow(first, last); err != nil {
			return netip.Addr{}, false, err
		}
		addr, err := p.alloc.Next()
		if errors.Is(err, allocator.ErrFull) {
			return netip.Addr{}, false, nil
		}
		return addr, err == nil, err
	}
	bk.checkFirst(p)
	blocks := p.cluster.blocks
	start := 0
	if hadCursor {
		for i, b := range blocks {
			if b.Prefix.Contains(prevCursor) {
				start = i
			}
		}
	}
	for i := range blocks {
		addr, ok, err := try(blocks[(start+i)%len(blocks)])
		if err != nil {
			restore()
			return netip.Addr{}, nil, fmt.Errorf("allocate an address in pool %s: %w", p, err)
		}
		if ok {
			return addr, func() { p.alloc.Release(addr); restore() }, nil
		}
	}
	b, err := bk.leaseBlock(p, netip.Prefix{})
	if err != nil {
		restore()
		return netip.Addr{}, nil, err
	}
	addr, ok, err := try(b)
	if err == nil && !ok {
		err = errors.New("it has no address to hand out: choose longer host blocks")
	}
	if err != nil {
		restore()
		return netip.Addr{}, nil, fmt.Errorf("allocate an address in the new block %s of pool %s: %w", b.Prefix, p, err)
	}
	return addr, func() { p.alloc.Release(addr); restore() }, nil
}

// leaseBlock leases a block for p from the store and records it: the next
// free one, or, when only is valid, that one. A routed block's gateway is
// held with it.
func (bk *Book) leaseBlock(p *pool, only netip.Prefix) (Block, error) {
	within := p.prefix
	if p.sub.IsValid() {
		within = p.sub
	}
	if only.IsValid() {
		within = only
	}
	ctx, cancel := storeContext()
	defer cancel()
	prefix, err := bk.leases.LeaseBlock(ctx, p.cluster.Network, within, p.cluster.Bits, nil)
	if err != nil {
		return Block{}, fmt.Errorf("pool %s of cluster network %q needs a new block: %w", p, p.cluster.Network, err)
	}
	bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithField("block", prefix).Debug("block leased for the pool (the cluster store logs the lease)")
	return bk.recordBlock(p, prefix)
}

// recordBlock records block as p's, with a routed block's gateway held.
func (bk *Book) recordBlock(p *pool, prefix netip.Prefix) (Block, error) {
	b := Block{Prefix: prefix}
	heldGateway := false // reserved here, not already held (Docker's gateway)
	if p.cluster.Routed {
		gw := routedGateway(prefix)
		if !p.alloc.Allocated(gw) {
			if err := p.alloc.Reserve(gw); err != nil {
				return Block{}, bk.giveBack(p, prefix, fmt.Errorf("hold gateway %s of block %s: %w", gw, prefix, err))
			}
			heldGateway = true
		}
		b.Gateway = gw
	}
	err := bk.db.Update(func(tx state.Tx) error {
		if err := tx.Delete(poolPath(p.id, bucketLost), []byte(prefix.String())); err != nil {
			return err
		}
		var gw []byte
		if b.Gateway.IsValid() {
			gw = b.Gateway.AsSlice()
			if tx.Get(poolPath(p.id, bucketAddrs), gw) == nil {
				if err := saveAddr(tx, p.id, b.Gateway, ownerBlockGateway, netip.Addr{}); err != nil {
					return err
				}
			}
		}
		return tx.Put(poolPath(p.id, bucketBlocks), []byte(prefix.String()), gw)
	})
	if err != nil {
		if heldGateway {
			p.alloc.Release(b.Gateway)
		}
		return Block{}, bk.giveBack(p, prefix, fmt.Errorf("record block %s of pool %s in the state file: %w", prefix, p, err))
	}
	p.cluster.lost = slices.DeleteFunc(p.cluster.lost, func(l Block) bool { return l.Prefix == prefix })
	p.cluster.blocks = append(p.cluster.blocks, b)
	slices.SortFunc(p.cluster.blocks, func(x, y Block) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	bk.signalBlocks()
	return b, nil
}

// LostBlock is a block a cluster pool held that the cluster store no
// longer gives this host: it was forgotten while the host was away, or
// another host leased it since.
type LostBlock struct {
	Network string
	PoolID  string
	Block   netip.Prefix
	// InUse are the block's addresses that containers still have, each
	// with its owner (an endpoint's MAC address); gateways left out.
	InUse map[netip.Addr]Owner
}

// AdoptLeasedBlocks compares each cluster pool's blocks with those the
// cluster store says this host holds under its identity. A block the
// store gives this host that the state file does not record (the plugin
// died between leasing and recording it) is adopted; a block the state
// file records that the store does not give this host any more is lost
// (markLost), and returned. The plugin calls it at start, until the store
// answers.
func (bk *Book) AdoptLeasedBlocks() ([]LostBlock, error) { return bk.syncBlocks(true) }

// CheckBlocks is AdoptLeasedBlocks without adopting anything: the plugin
// calls it when the store's watch shows that a block this host uses may
// not be its own any more (MayHaveLost), and periodically.
func (bk *Book) CheckBlocks() ([]LostBlock, error) { return bk.syncBlocks(false) }

// MayHaveLost reports whether mine, the blocks the store's watch says this
// host holds (by cluster network), lacks a block a cluster pool allocates
// from: CheckBlocks then asks the store itself.
func (bk *Book) MayHaveLost(mine map[string][]netip.Prefix) bool {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	for _, p := range bk.pools {
		if p.cluster == nil {
			continue
		}
		for _, b := range p.cluster.blocks {
			if !slices.Contains(mine[p.cluster.Network], b.Prefix) {
				return true
			}
		}
	}
	return false
}

// syncBlocks is AdoptLeasedBlocks, adopting or not. It decides while
// holding bk.mu, reading the store then, so that no block is leased or
// recorded meanwhile: what the store says is then the truth about every
// block the state file records. It asks the store once without bk.mu
// first, so that a store that does not answer holds up no allocation,
// and (when not adopting) goes on only if a block seems lost.
func (bk *Book) syncBlocks(adopt bool) ([]LostBlock, error) {
	if bk.leases == nil {
		return nil, nil
	}
	if suspect, err := bk.blocksSuspect(); err != nil || (!suspect && !adopt) {
		return nil, err
	}
	bk.mu.Lock()
	defer bk.mu.Unlock()
	pending := map[pendingRelease]bool{}
	for _, r := range bk.pending() {
		pending[r] = true
	}
	var lost []LostBlock
	for _, p := range bk.sortedPools() {
		if p.cluster == nil {
			continue
		}
		known := make([]netip.Prefix, len(p.cluster.blocks))
		for i, b := range p.cluster.blocks {
			known[i] = b.Prefix
		}
		ctx, cancel := storeContext()
		held, err := bk.leases.HeldBlocks(ctx, p.cluster.Network, known)
		cancel()
		if err != nil {
			return lost, fmt.Errorf("list the blocks of cluster network %q this host holds: %w", p.cluster.Network, err)
		}
		p.cluster.checked = true
		for _, b := range slices.Clone(p.cluster.blocks) {
			if slices.Contains(held, b.Prefix) {
				continue
			}
			l, err := bk.markLost(p, b)
			if err != nil {
				return lost, err
			}
			lost = append(lost, l)
		}
		if !adopt {
			continue
		}
		for _, prefix := range held {
			if !p.prefix.Contains(prefix.Addr()) {
				continue
			}
			if _, known := p.cluster.blockOf(prefix.Addr()); known {
				continue
			}
			// A block of a pool that went, still to be given back.
			if pending[pendingRelease{p.cluster.Network, pendingBlock, prefix}] {
				continue
			}
			if _, err := bk.recordBlock(p, prefix); err != nil {
				return lost, err
			}
			bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithField("block", prefix).Warn("block the store gives this host but the state file did not record (the plugin died in between) adopted")
		}
	}
	return lost, nil
}

// checkFirst compares p's blocks with the store's before its first
// allocation since the plugin started, unless syncBlocks did already:
// the plugin compares them in the background at start, and an address
// asked for before that must not come from a block another host holds
// now. It tries once, briefly: a store that does not answer leaves the
// host allocating from its blocks, as it does while the store is down.
// The caller holds bk.mu.
func (bk *Book) checkFirst(p *pool) {
	if p.cluster.checked || bk.leases == nil {
		return
	}
	p.cluster.checked = true
	known := make([]netip.Prefix, len(p.cluster.blocks))
	for i, b := range p.cluster.blocks {
		known[i] = b.Prefix
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	held, err := bk.leases.HeldBlocks(ctx, p.cluster.Network, known)
	cancel()
	if err != nil {
		bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithError(err).Debug("blocks not compared with the store's before the first allocation; the plugin does it when the store answers")
		return
	}
	for _, b := range slices.Clone(p.cluster.blocks) {
		if !slices.Contains(held, b.Prefix) {
			if _, err := bk.markLost(p, b); err != nil {
				bk.log.WithField("pool", p.id).WithError(err).Warn("a lost block could not be recorded as lost")
			}
		}
	}
}

// blocksSuspect asks the store, without bk.mu, which blocks this host
// holds, and reports whether a cluster pool allocates from one it does
// not (or, when adopting, whether there is more to look at).
func (bk *Book) blocksSuspect() (bool, error) {
	bk.mu.Lock()
	known := map[string][]netip.Prefix{}
	for _, p := range bk.pools {
		if p.cluster == nil {
			continue
		}
		if _, ok := known[p.cluster.Network]; !ok {
			known[p.cluster.Network] = nil // asked about even without blocks
		}
		for _, b := range p.cluster.blocks {
			known[p.cluster.Network] = append(known[p.cluster.Network], b.Prefix)
		}
	}
	bk.mu.Unlock()
	suspect := false
	for _, network := range slices.Sorted(maps.Keys(known)) {
		ctx, cancel := storeContext()
		held, err := bk.leases.HeldBlocks(ctx, network, known[network])
		cancel()
		if err != nil {
			return false, fmt.Errorf("list the blocks of cluster network %q this host holds: %w", network, err)
		}
		for _, b := range known[network] {
			suspect = suspect || !slices.Contains(held, b)
		}
	}
	return suspect, nil
}

// markLost stops p from allocating from block b, which the store no
// longer gives this host. The addresses containers have there stay theirs
// (and a routed block's gateway stays held) until they are released; a
// lost block none of whose addresses is in use any more is dropped.
func (bk *Book) markLost(p *pool, b Block) (LostBlock, error) {
	l := LostBlock{Network: p.cluster.Network, PoolID: p.id, Block: b.Prefix, InUse: map[netip.Addr]Owner{}}
	key := []byte(b.Prefix.String())
	var gw []byte
	if b.Gateway.IsValid() {
		gw = b.Gateway.AsSlice()
	}
	err := bk.db.Update(func(tx state.Tx) error {
		if err := tx.Delete(poolPath(p.id, bucketBlocks), key); err != nil {
			return err
		}
		if err := tx.Put(poolPath(p.id, bucketLost), key, gw); err != nil {
			return err
		}
		l.InUse = inUse(tx, p.id, b)
		return nil
	})
	if err != nil {
		return LostBlock{}, fmt.Errorf("record block %s of pool %s as lost in the state file: %w", b.Prefix, p, err)
	}
	p.cluster.blocks = slices.DeleteFunc(p.cluster.blocks, func(x Block) bool { return x.Prefix == b.Prefix })
	p.cluster.lost = append(p.cluster.lost, b)
	var held []string
	for _, a := range slices.SortedFunc(maps.Keys(l.InUse), netip.Addr.Compare) {
		held = append(held, a.String()+" (MAC "+l.InUse[a].String()+")")
	}
	bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithField("block", b.Prefix).WithField("in_use", strings.Join(held, ", ")).
		Warn("block lost: the cluster store no longer gives it to this host (it was forgotten, or another host leased it since); no address is handed out from it any more, and the containers that have addresses there keep them")
	bk.dropEmptyLost(p)
	return l, nil
}

// inUse lists the addresses of block b of pool id that containers have,
// with their owners.
func inUse(tx state.Tx, id string, b Block) map[netip.Addr]Owner {
	out := map[netip.Addr]Owner{}
	_ = tx.ForEach(poolPath(id, bucketAddrs), func(k, v []byte) error {
		a, ok := netip.AddrFromSlice(k)
		if ok && b.Prefix.Contains(a) && a != b.Gateway && !ParseOwner(string(v)).gateway() {
			out[a] = ParseOwner(string(v))
		}
		return nil
	})
	return out
}

// dropEmptyLost forgets p's lost blocks where no container has an address
// any more, and gives their gateways back.
func (bk *Book) dropEmptyLost(p *pool) {
	if p.cluster == nil || len(p.cluster.lost) == 0 {
		return
	}
	var empty []Block
	_ = bk.db.View(func(tx state.Tx) error {
		for _, b := range p.cluster.lost {
			if len(inUse(tx, p.id, b)) == 0 {
				empty = append(empty, b)
			}
		}
		return nil
	})
	for _, b := range empty {
		heldGateway := false // the block's own, not Docker's gateway of the pool
		err := bk.db.Update(func(tx state.Tx) error {
			if b.Gateway.IsValid() && ownerOf(tx, p.id, b.Gateway) == ownerBlockGateway {
				heldGateway = true
				if err := deleteAddr(tx, p.id, b.Gateway); err != nil {
					return err
				}
			}
			return tx.Delete(poolPath(p.id, bucketLost), []byte(b.Prefix.String()))
		})
		if err != nil {
			bk.log.WithField("pool", p.id).WithField("block", b.Prefix).WithError(err).Warn("forget a lost block no container uses any more (tried again at the next release)")
			continue
		}
		if heldGateway {
			p.alloc.Release(b.Gateway)
		}
		p.cluster.lost = slices.DeleteFunc(p.cluster.lost, func(x Block) bool { return x.Prefix == b.Prefix })
		bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithField("block", b.Prefix).Info("lost block no container uses any more forgotten")
	}
}

// giveBack returns a block the IPAM could not record, and returns cause.
func (bk *Book) giveBack(p *pool, block netip.Prefix, cause error) error {
	ctx, cancel := storeContext()
	defer cancel()
	if err := bk.leases.ReleaseBlock(ctx, p.cluster.Network, block); err != nil {
		bk.log.WithField("network", p.cluster.Network).WithField("block", block).WithError(err).Warn("give back a block that could not be recorded (release it with `dualstack cluster forget` once this host is gone)")
	}
	return cause
}

// claimOutside holds a given address of cluster pool p that lies outside
// p's blocks: in a routed pool by leasing the block that holds it (its
// containers route through that block's gateway), otherwise by claiming
// the address alone.
func (bk *Book) claimOutside(p *pool, addr netip.Addr) error {
	if _, ok := p.cluster.blockOf(addr); ok {
		return nil
	}
	if p.cluster.Routed {
		block := netip.PrefixFrom(addr, p.cluster.Bits).Masked()
		if addr == routedGateway(block) {
			return fmt.Errorf("address %s is the gateway of block %s of cluster network %q: choose another address", addr, block, p.cluster.Network)
		}
		_, err := bk.leaseBlock(p, block)
		return err
	}
	ctx, cancel := storeContext()
	defer cancel()
	if err := bk.leases.Claim(ctx, p.cluster.Network, addr, p.cluster.Bits); err != nil {
		return fmt.Errorf("address %s of cluster network %q: %w", addr, p.cluster.Network, err)
	}
	if err := bk.db.Update(func(tx state.Tx) error { return tx.Put(poolPath(p.id, bucketClaims), addr.AsSlice(), nil) }); err != nil {
		bk.unclaim(p, addr)
		return fmt.Errorf("record the claim of %s in the state file: %w", addr, err)
	}
	p.cluster.claims[addr] = true
	bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithField("address", addr).Debug("address claimed for the pool (the cluster store logs the claim)")
	return nil
}

// unclaim gives a claimed address of p back to the store; one the store
// does not take is offered it again (pend).
func (bk *Book) unclaim(p *pool, addr netip.Addr) {
	ctx, cancel := storeContext()
	defer cancel()
	if err := bk.leases.Unclaim(ctx, p.cluster.Network, addr); err != nil {
		bk.log.WithField("network", p.cluster.Network).WithField("address", addr).WithError(err).Warn("give back a claimed address (tried again later)")
		bk.pend(p.cluster.Network, pendingClaim, netip.PrefixFrom(addr, addr.BitLen()))
	}
}

// What the store did not take back when it was given (it did not answer)
// waits in the state file until it does (RetryPendingReleases):
//
//	ipam/pending/<network>/<kind>:<prefix>   empty
//
// kind is pendingBlock or pendingClaim (a claimed address, as a /32 or
// /128).
const (
	bucketPending = "pending"
	pendingBlock  = "block"
	pendingClaim  = "claim"
)

// pend records what could not be given back to the store.
func (bk *Book) pend(network, kind string, p netip.Prefix) {
	err := bk.db.Update(func(tx state.Tx) error {
		return tx.Put([]string{bucketIPAM, bucketPending, network}, []byte(kind+":"+p.String()), nil)
	})
	if err != nil {
		bk.log.WithField("network", network).WithField("block", p).WithError(err).Error("record what the cluster store is still to take back (`dualstack cluster status` shows it)")
	}
}

// pendingRelease is one thing the store is still to take back.
type pendingRelease struct {
	network, kind string
	prefix        netip.Prefix
}

// pending lists what the store is still to take back.
func (bk *Book) pending() []pendingRelease {
	var out []pendingRelease
	_ = bk.db.View(func(tx state.Tx) error {
		root := []string{bucketIPAM, bucketPending}
		return tx.Buckets(root, func(network string) error {
			return tx.ForEach(append(root, network), func(k, _ []byte) error {
				kind, s, _ := strings.Cut(string(k), ":")
				if p, err := netip.ParsePrefix(s); err == nil {
					out = append(out, pendingRelease{network, kind, p})
				}
				return nil
			})
		})
	})
	return out
}

// holds reports whether a pool of network holds prefix (a block, or a
// claimed address) now: a network created again since, which leased or
// claimed it anew.
func (bk *Book) holds(network string, prefix netip.Prefix) bool {
	for _, p := range bk.pools {
		if p.cluster == nil || p.cluster.Network != network {
			continue
		}
		if b, ok := p.cluster.blockOf(prefix.Addr()); ok && b.Prefix == prefix || p.cluster.claims[prefix.Addr()] {
			return true
		}
	}
	return false
}

// RetryPendingReleases gives back to the store what it did not take when
// it was given (see pend). The plugin calls it at start and periodically;
// it fails while the store does not answer.
func (bk *Book) RetryPendingReleases() error {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	if bk.leases == nil {
		return nil
	}
	var errs []error
	for _, r := range bk.pending() {
		if !bk.holds(r.network, r.prefix) {
			ctx, cancel := storeContext()
			var err error
			if r.kind == pendingBlock {
				err = bk.leases.ReleaseBlock(ctx, r.network, r.prefix)
			} else {
				err = bk.leases.Unclaim(ctx, r.network, r.prefix.Addr())
			}
			cancel()
			switch {
			case errors.Is(err, cluster.ErrUnreachable):
				errs = append(errs, fmt.Errorf("give back %s of cluster network %q: %w", r.prefix, r.network, err))
				continue
			case err != nil:
				// Not this host's any more (forgotten, and taken by
				// another): nothing to give back.
				bk.log.WithField("network", r.network).WithField("block", r.prefix).WithError(err).Warn("no longer this host's to give back")
			default:
				bk.log.WithField("network", r.network).WithField("block", r.prefix).Info("given back to the cluster store, which did not answer before")
			}
		}
		err := bk.db.Update(func(tx state.Tx) error {
			return tx.Delete([]string{bucketIPAM, bucketPending, r.network}, []byte(r.kind+":"+r.prefix.String()))
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// releaseClaims gives back the claims among addrs of p, after they were
// released locally.
func (bk *Book) releaseClaims(p *pool, addrs []netip.Addr) {
	if p.cluster == nil {
		return
	}
	var gone []netip.Addr
	for _, a := range addrs {
		if p.cluster.claims[a] {
			gone = append(gone, a)
		}
	}
	if len(gone) == 0 {
		return
	}
	_ = bk.db.Update(func(tx state.Tx) error {
		for _, a := range gone {
			if err := tx.Delete(poolPath(p.id, bucketClaims), a.AsSlice()); err != nil {
				return err
			}
		}
		return nil
	})
	for _, a := range gone {
		delete(p.cluster.claims, a)
		bk.unclaim(p, a)
	}
}

// leaveCluster gives back every block and claim of a pool that goes. What
// the store does not take back is logged; `dualstack cluster status`
// shows it and `dualstack cluster forget` releases it once the host is
// gone.
func (bk *Book) leaveCluster(p *pool) {
	if p.cluster == nil || bk.leases == nil {
		return
	}
	ctx, cancel := storeContext()
	defer cancel()
	for _, b := range p.cluster.blocks {
		if err := bk.leases.ReleaseBlock(ctx, p.cluster.Network, b.Prefix); err != nil {
			bk.log.WithField("network", p.cluster.Network).WithField("block", b.Prefix).WithError(err).Warn("give back the block of a pool that goes (tried again later)")
			bk.pend(p.cluster.Network, pendingBlock, b.Prefix)
			continue
		}
		bk.log.WithField("pool", p.id).WithField("network", p.cluster.Network).WithField("block", b.Prefix).Debug("block of the pool given back (the cluster store logs the release)")
	}
	for a := range p.cluster.claims {
		bk.unclaim(p, a)
	}
	// The last host to let go of the network takes its definition along.
	if err := bk.leases.Undefine(ctx, p.cluster.Network); err != nil {
		bk.log.WithField("network", p.cluster.Network).WithError(err).Debug("forget the definition of a cluster network no host may hold any more")
	}
}

// loadCluster reads the cluster part of pool p from the state file.
// readBlocks reads the blocks recorded in bucket path, each a prefix and
// its gateway (what says "bad WHAT" when a key is no prefix).
func readBlocks(tx state.Tx, path []string, what string) ([]Block, error) {
	var out []Block
	err := tx.ForEach(path, func(k, v []byte) error {
		prefix, err := netip.ParsePrefix(string(k))
		if err != nil {
			return fmt.Errorf("bad %s %q: %w", what, k, err)
		}
		b := Block{Prefix: prefix}
		if gw, ok := netip.AddrFromSlice(v); ok {
			b.Gateway = gw
		}
		out = append(out, b)
		return nil
	})
	return out, err
}

func loadCluster(tx state.Tx, p *pool) error {
	meta := tx.Get(poolPath(p.id), keyCluster)
	if meta == nil {
		return nil
	}
	cs := &clusterState{claims: map[netip.Addr]bool{}}
	if err := json.Unmarshal(meta, &cs.ClusterPool); err != nil {
		return fmt.Errorf("bad cluster record: %w", err)
	}
	var err error
	if cs.blocks, err = readBlocks(tx, poolPath(p.id, bucketBlocks), "block"); err != nil {
		return err
	}
	slices.SortFunc(cs.blocks, func(x, y Block) int { return x.Prefix.Addr().Compare(y.Prefix.Addr()) })
	if cs.lost, err = readBlocks(tx, poolPath(p.id, bucketLost), "lost block"); err != nil {
		return err
	}
	err = tx.ForEach(poolPath(p.id, bucketClaims), func(k, _ []byte) error {
		if a, ok := netip.AddrFromSlice(k); ok {
			cs.claims[a] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.cluster = cs
	// The cursor's block is the window, so that the sequence goes on
	// where it stopped.
	if c, ok := netip.AddrFromSlice(tx.Get(poolPath(p.id), keyCursor)); ok {
		if b, ok := cs.blockOf(c); ok {
			if first, last, ok := p.blockWindow(b); ok {
				_ = p.alloc.SetWindow(first, last)
			}
		}
	}
	return nil
}
