package cluster

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Node is a host known to the cluster store.
type Node struct {
	Name      string
	Addresses []netip.Addr // its cluster addresses; empty when not alive
	Since     time.Time    // when its current registration was made; zero when not alive
	// Alive is true while the node key exists, that is while the node's
	// plugin keeps its lease alive. A node that is not alive still holds
	// its blocks and claims until Forget.
	Alive bool
	// TTL is the time left on the node's lease (0 when not alive, or when
	// the lease could not be read).
	TTL time.Duration
	// BGP is the node's BGP status as it reported it (package bgp's
	// Status, as JSON); empty without BGP.
	BGP json.RawMessage `json:",omitempty"`
}

// snapshot is the store's content under the prefix at one revision, as
// far as it passes the checks of validate.go: what does not is left out
// with a warning.
type snapshot struct {
	rev    int64
	nodes  map[string]nodeEntry // live node keys with a valid record
	defs   map[string]*Definition
	bad    map[string]error // unreadable definitions
	blocks []Block          // valid blocks: inside the definition, of its lengths
	// every block key with a readable holder, valid or not (Status
	// shows them, Forget frees them)
	all    []Block
	claims []Claim
	nets   map[string]bool  // every network with a key
	revs   map[string]int64 // mod revision of each block and claim key
	// ignored says, per network, which blocks checkBlock refused and why
	ignored map[string][]string
}

type nodeEntry struct {
	rec   nodeRecord
	lease clientv3.LeaseID
}

// readSnapshot reads nodes and networks (all of them, or only network) in
// one transaction so that both are seen at one revision.
func (s *Store) readSnapshot(ctx context.Context, network string) (*snapshot, error) {
	netPrefix := s.networksPrefix()
	if network != "" {
		netPrefix = s.networkPrefix(network)
	}
	resp, err := s.client.Txn(ctx).Then(
		clientv3.OpGet(s.nodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(netPrefix, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, err
	}
	kvs := slices.Concat(resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs)
	return s.buildSnapshot(resp.Header.Revision, kvs), nil
}

// readAll is readSnapshot of every network, with the keys it was made of.
func (s *Store) readAll(ctx context.Context) (*snapshot, []*mvccpb.KeyValue, error) {
	resp, err := s.client.Get(ctx, s.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, err
	}
	return s.buildSnapshot(resp.Header.Revision, resp.Kvs), resp.Kvs, nil
}

// buildSnapshot makes a snapshot of the keys kvs, read at revision rev.
func (s *Store) buildSnapshot(rev int64, kvs []*mvccpb.KeyValue) *snapshot {
	snap := &snapshot{
		rev:     rev,
		nodes:   map[string]nodeEntry{},
		defs:    map[string]*Definition{},
		bad:     map[string]error{},
		nets:    map[string]bool{},
		revs:    map[string]int64{},
		ignored: map[string][]string{},
	}
	for _, kv := range kvs {
		key := string(kv.Key)
		if name, ok := strings.CutPrefix(key, s.nodesPrefix()); ok {
			rec, err := parseNodeRecord(name, kv.Value)
			if err != nil {
				s.warnOnce(key, kv.Value, "ignoring a node record: "+err.Error())
				continue
			}
			snap.nodes[name] = nodeEntry{rec: rec, lease: clientv3.LeaseID(kv.Lease)}
			continue
		}
		snap.add(s, key, kv.Value)
		snap.revs[key] = kv.ModRevision
	}
	for _, b := range snap.all {
		key := s.blockKey(b.Network, b.Prefix)
		if err := snap.checkBlock(b); err != nil {
			s.warnOnce(key, []byte(b.Node), fmt.Sprintf("ignoring block %s of cluster network %s (held by %s): %v", b.Prefix, b.Network, b.Node, err))
			snap.ignored[b.Network] = append(snap.ignored[b.Network], fmt.Sprintf("block %s held by %s: %v", b.Prefix, b.Node, err))
			continue
		}
		if n, ok := snap.nodes[b.Node]; ok {
			b.NodeAddresses = n.rec.Addresses
		}
		snap.blocks = append(snap.blocks, b)
	}
	sortBlocks(snap.blocks)
	sortBlocks(snap.all)
	sortClaims(snap.claims)
	return snap
}

// add records one key under networks/. Keys that do not parse are left
// out (and logged): they are not dualstack's.
func (snap *snapshot) add(s *Store, key string, value []byte) {
	network, kind, obj, ok := s.parseNetworkKey(key)
	if !ok {
		s.log.WithField("key", key).Debug("ignoring an unknown key in the cluster store")
		return
	}
	switch kind {
	case "definition":
		d, err := decodeDefinition(value)
		if err == nil {
			err = d.Validate()
		}
		if err != nil {
			snap.bad[network] = err
			s.warnOnce(key, value, "the definition of cluster network "+network+" is unreadable or invalid ("+err.Error()+"); its blocks are not routed")
		} else {
			snap.defs[network] = &d
		}
	case "blocks":
		p, err := ParseBlockKey(obj)
		if err != nil {
			s.warnOnce(key, value, "ignoring an unreadable block key: "+err.Error())
			return
		}
		node, _, err := parseHolder(value)
		if err != nil {
			s.warnOnce(key, value, "ignoring block "+p.String()+": its holder is unreadable: "+err.Error())
			return
		}
		snap.all = append(snap.all, Block{Network: network, Prefix: p, Node: node, Mine: s.mine(key, value)})
	case "claims":
		a, err := ParseAddrKey(obj)
		if err != nil {
			s.warnOnce(key, value, "ignoring an unreadable claim key: "+err.Error())
			return
		}
		node, _, err := parseHolder(value)
		if err != nil {
			s.warnOnce(key, value, "ignoring the claim of "+a.String()+": its holder is unreadable: "+err.Error())
			return
		}
		snap.claims = append(snap.claims, Claim{Network: network, Addr: a, Node: node})
	}
	snap.nets[network] = true
}

// checkBlock checks b against its network's definition.
func (snap *snapshot) checkBlock(b Block) error {
	def := snap.defs[b.Network]
	if def == nil {
		if err := snap.bad[b.Network]; err != nil {
			return fmt.Errorf("the network's definition is unreadable or invalid (%v)", err)
		}
		return errors.New("the network has no definition in the store")
	}
	return checkBlock(*def, b.Prefix)
}

func compareAddr(a, b netip.Addr) int {
	// IPv4 before IPv6, then by address.
	return cmp.Or(cmp.Compare(a.BitLen(), b.BitLen()), a.Compare(b))
}

func sortBlocks(bs []Block) {
	slices.SortFunc(bs, func(a, b Block) int {
		return cmp.Or(strings.Compare(a.Network, b.Network), compareAddr(a.Prefix.Addr(), b.Prefix.Addr()), cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()))
	})
}

func sortClaims(cs []Claim) {
	slices.SortFunc(cs, func(a, b Claim) int {
		return cmp.Or(strings.Compare(a.Network, b.Network), compareAddr(a.Addr, b.Addr))
	})
}

// Blocks lists the blocks of cluster network name, or of every network
// when name is "", sorted by network and address, each with its holder and
// the holder's cluster addresses.
func (s *Store) Blocks(ctx context.Context, name string) ([]Block, error) {
	snap, err := s.listed(ctx, name, "the blocks cannot be listed; try again when the store is reachable")
	if err != nil {
		return nil, err
	}
	return snap.blocks, nil
}

// Claims lists the claimed addresses of cluster network name, or of every
// network when name is "", sorted by network and address.
func (s *Store) Claims(ctx context.Context, name string) ([]Claim, error) {
	snap, err := s.listed(ctx, name, "the claimed addresses cannot be listed; try again when the store is reachable")
	if err != nil {
		return nil, err
	}
	return snap.claims, nil
}

// listed reads what the store holds of network name (every network for
// ""); effect says what a store that does not answer keeps from the
// caller.
func (s *Store) listed(ctx context.Context, name, effect string) (*snapshot, error) {
	if name != "" {
		if err := validNetwork(name); err != nil {
			return nil, err
		}
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	snap, err := s.readSnapshot(ctx, name)
	if err != nil {
		return nil, s.storeError(err, effect)
	}
	return snap, nil
}

// Nodes lists every node that is alive (its node key exists) and every
// node that still holds blocks or claims without a node key (Alive false),
// sorted by name.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	snap, err := s.readSnapshot(ctx, "")
	if err != nil {
		return nil, s.storeError(err, "the nodes cannot be listed; try again when the store is reachable")
	}
	return s.nodesOf(ctx, snap), nil
}

func (s *Store) nodesOf(ctx context.Context, snap *snapshot) []Node {
	var out []Node
	for name, n := range snap.nodes {
		node := Node{Name: name, Addresses: n.rec.Addresses, Alive: true, BGP: n.rec.BGP}
		node.Since, _ = time.Parse(time.RFC3339, n.rec.Since)
		node.TTL = s.leaseLeft(ctx, n.lease)
		out = append(out, node)
	}
	holders := map[string]bool{}
	for _, b := range snap.all {
		holders[b.Node] = true
	}
	for _, c := range snap.claims {
		holders[c.Node] = true
	}
	for h := range holders {
		if _, alive := snap.nodes[h]; !alive {
			out = append(out, Node{Name: h})
		}
	}
	slices.SortFunc(out, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// leaseLeft is the time to live left on a lease, 0 if it cannot be read.
func (s *Store) leaseLeft(ctx context.Context, id clientv3.LeaseID) time.Duration {
	if id == clientv3.NoLease {
		return 0
	}
	r, err := s.client.TimeToLive(ctx, id)
	if err != nil || r.TTL <= 0 {
		return 0
	}
	return time.Duration(r.TTL) * time.Second
}

// Forget frees every block and claim held by node, which must be dead:
// while its node key exists Forget refuses. Each key is deleted by its own
// transaction that also checks that the key still names node and that node
// has not come back meanwhile; if it comes back, Forget stops. Definitions
// of the networks it freed something in are removed if nothing is left
// in them (as Undefine).
//
// Forget trusts that the node is really gone: a host that lost its
// lease only because it cannot reach the store still uses its blocks for
// containers it starts, and once forgotten those blocks can be leased by
// another host. Stop the node's plugin first, or forget only a host that is
// gone for good.
func (s *Store) Forget(ctx context.Context, node string) (blocks, claims int, err error) {
	if err := validNode(node); err != nil {
		return 0, 0, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	log := s.log.WithField("node", node)
	unreachable := fmt.Sprintf("node %s cannot be forgotten now; run forget again when the store is reachable", node)
	nodeKey := s.nodeKey(node)
	snap, err := s.readSnapshot(ctx, "")
	if err != nil {
		return 0, 0, s.storeError(err, unreachable)
	}
	if n, alive := snap.nodes[node]; alive {
		return 0, 0, s.aliveError(ctx, node, n.lease)
	}
	touched := map[string]bool{}
	forget := func(key string) (bool, error) {
		// The key is unchanged since the snapshot, which read it as
		// node's.
		resp, err := s.client.Txn(ctx).
			If(
				clientv3.Compare(clientv3.ModRevision(key), "=", snap.revs[key]),
				clientv3.Compare(clientv3.CreateRevision(nodeKey), "=", 0),
			).
			Then(clientv3.OpDelete(key)).
			Else(clientv3.OpGet(nodeKey)).
			Commit()
		if err != nil {
			return false, s.storeError(err, unreachable+fmt.Sprintf(" (%d blocks and %d claims were freed before)", blocks, claims))
		}
		if !resp.Succeeded {
			if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
				return false, s.aliveError(ctx, node, clientv3.LeaseID(kvs[0].Lease))
			}
		}
		return resp.Succeeded, nil
	}
	for _, b := range snap.all {
		if b.Node != node {
			continue
		}
		ok, err := forget(s.blockKey(b.Network, b.Prefix))
		if err != nil {
			return blocks, claims, err
		}
		if ok {
			blocks++
			touched[b.Network] = true
			log.WithField("network", b.Network).WithField("block", b.Prefix).Debug("block of a forgotten node freed")
		}
	}
	for _, c := range snap.claims {
		if c.Node != node {
			continue
		}
		ok, err := forget(s.claimKey(c.Network, c.Addr))
		if err != nil {
			return blocks, claims, err
		}
		if ok {
			claims++
			touched[c.Network] = true
			log.WithField("network", c.Network).WithField("address", c.Addr).Debug("claim of a forgotten node freed")
		}
	}
	log.Infof("node forgotten: %d blocks and %d claims freed", blocks, claims)
	for _, network := range slices.Sorted(maps.Keys(touched)) {
		if _, err := s.undefine(ctx, network); err != nil {
			return blocks, claims, err
		}
	}
	return blocks, claims, nil
}

func (s *Store) aliveError(ctx context.Context, node string, lease clientv3.LeaseID) error {
	left := "some time"
	if ttl := s.leaseLeft(ctx, lease); ttl > 0 {
		left = ttl.String()
	}
	return fmt.Errorf("node %s is alive (its lease has %s left): stop its plugin first, or wait for the lease to expire", node, left)
}

// Status is what `dualstack cluster status` shows: the store's view of the
// nodes and of every cluster network. It leaves out which addresses are in
// use; only each host knows that.
type Status struct {
	Endpoints []string
	Nodes     []Node
	Networks  []NetworkStatus
}

// NetworkStatus is one cluster network in a Status.
type NetworkStatus struct {
	Name string
	// Definition is nil when blocks or claims remain but the definition is
	// gone or unreadable (DefinitionError then says why).
	Definition      *Definition
	DefinitionError string
	Blocks          []Block
	Claims          []Claim
	// Ignored lists the blocks that hosts leave alone, each with why
	// (outside the definition, of another length, no definition).
	Ignored []string `json:",omitempty"`
}

// Status reads the whole cluster store.
func (s *Store) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	snap, err := s.readSnapshot(ctx, "")
	if err != nil {
		return nil, s.storeError(err, "the cluster status cannot be read; check that etcd runs there and that this host reaches it")
	}
	st := &Status{Endpoints: slices.Clone(s.cfg.Endpoints), Nodes: s.nodesOf(ctx, snap)}
	for _, name := range slices.Sorted(maps.Keys(snap.nets)) {
		ns := NetworkStatus{Name: name, Definition: snap.defs[name]}
		if err := snap.bad[name]; err != nil {
			ns.DefinitionError = "unreadable: " + err.Error()
		} else if ns.Definition == nil {
			ns.DefinitionError = "missing"
		}
		for _, b := range snap.blocks {
			if b.Network == name {
				ns.Blocks = append(ns.Blocks, b)
			}
		}
		ns.Ignored = snap.ignored[name]
		for _, c := range snap.claims {
			if c.Network == name {
				ns.Claims = append(ns.Claims, c)
			}
		}
		st.Networks = append(st.Networks, ns)
	}
	return st, nil
}

// String renders the status for a terminal.
func (st *Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster store: %s\n", strings.Join(st.Endpoints, ", "))
	fmt.Fprintf(&b, "nodes:\n")
	if len(st.Nodes) == 0 {
		fmt.Fprintf(&b, "  (none)\n")
	}
	for _, n := range st.Nodes {
		if n.Alive {
			fmt.Fprintf(&b, "  %s  %s  alive, lease %v left, since %s\n", n.Name, addrList(n.Addresses), n.TTL, n.Since.Format(time.RFC3339))
		} else {
			fmt.Fprintf(&b, "  %s  -  not alive: holds blocks or claims; forget it once it is gone for good\n", n.Name)
		}
	}
	fmt.Fprintf(&b, "networks:\n")
	if len(st.Networks) == 0 {
		fmt.Fprintf(&b, "  (none)\n")
	}
	for _, ns := range st.Networks {
		switch {
		case ns.Definition != nil:
			fmt.Fprintf(&b, "  %s: %s (defined by %s)\n", ns.Name, ns.Definition.Summary(), orNone(ns.Definition.DefinedBy))
		default:
			fmt.Fprintf(&b, "  %s: definition %s\n", ns.Name, ns.DefinitionError)
		}
		var order []string
		per := map[string][]string{}
		for _, bl := range ns.Blocks {
			if _, ok := per[bl.Node]; !ok {
				order = append(order, bl.Node)
			}
			per[bl.Node] = append(per[bl.Node], bl.Prefix.String())
		}
		slices.Sort(order)
		for _, n := range order {
			fmt.Fprintf(&b, "    %s: %s\n", n, strings.Join(per[n], ", "))
		}
		for _, c := range ns.Claims {
			fmt.Fprintf(&b, "    claim %s: %s\n", c.Addr, c.Node)
		}
		for _, i := range ns.Ignored {
			fmt.Fprintf(&b, "    ignored: %s\n", i)
		}
	}
	return b.String()
}

func addrList(as []netip.Addr) string {
	if len(as) == 0 {
		return "-"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
