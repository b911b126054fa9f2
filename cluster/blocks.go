package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Block is a block of a cluster network's subnet held by a node.
type Block struct {
	Network string
	Prefix  netip.Prefix
	Node    string
	// NodeAddresses are the holder's cluster addresses, from its node key.
	// Empty while the holder has no node key: it is down, partitioned away
	// from the store, or gone (see Forget). Callers that route to blocks
	// (host-gw) decide whether to keep a route to a holder that is
	// momentarily without addresses.
	NodeAddresses []netip.Addr
	// Mine: this node holds the block under its identity (the value's
	// proof is its own), not merely under its name.
	Mine bool `json:"-"`
}

// Claim is a single address of a cluster network held by a node outside
// its blocks.
type Claim struct {
	Network string
	Addr    netip.Addr
	Node    string
}

// Define records def as the definition of cluster network name if the
// store has none, and otherwise checks that def matches the recorded one.
// It returns the recorded definition (def itself when this call recorded
// it). A different recorded definition gives a *MismatchError listing
// every difference. Define is idempotent. LeaseBlock and Claim read the
// recorded definition themselves; a Store also remembers the definitions
// given to Define and puts one back if it went missing (see LeaseBlock), so
// calling Define when the plugin starts, for each cluster network it has,
// keeps a restarted host able to lease.
func (s *Store) Define(ctx context.Context, name string, def Definition) (Definition, error) {
	if err := validNetwork(name); err != nil {
		return Definition{}, err
	}
	if err := s.refusal(); err != nil {
		return Definition{}, fmt.Errorf("cluster network %s: %w", name, err)
	}
	def = def.Canonical()
	if err := def.Validate(); err != nil {
		return Definition{}, fmt.Errorf("cluster network %s: invalid definition: %v", name, err)
	}
	def.DefinedBy = s.cfg.Node
	def.DefinedAt = time.Now().UTC().Truncate(time.Second)
	data, err := json.Marshal(def)
	if err != nil {
		return Definition{}, fmt.Errorf("cluster network %s: cannot encode the definition: %v", name, err)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	key := s.defKey(name)
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return Definition{}, s.storeError(err, fmt.Sprintf("cluster network %s cannot be checked against the cluster's definition; check that etcd runs there and that this host reaches it", name))
	}
	log := s.log.WithField("network", name)
	if resp.Succeeded {
		log.WithField("definition", def.Summary()).Info("cluster network defined in the cluster store")
		s.remember(name, def)
		return def, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		// Cannot happen: the compare failed because the key exists, and the
		// Else branch reads at the same revision.
		return Definition{}, fmt.Errorf("cluster network %s: the definition vanished while being read: try again", name)
	}
	stored, err := decodeDefinition(kvs[0].Value)
	if err != nil {
		return Definition{}, fmt.Errorf("cluster network %s: the definition in the cluster store (key %s) is unreadable (%v): delete that key with etcdctl once no host uses the network, then create the network again", name, key, err)
	}
	if diffs := def.Diff(stored); len(diffs) > 0 {
		log.WithField("differences", strings.Join(diffs, "; ")).Warn("cluster network is defined differently in the cluster store")
		return stored, &MismatchError{Network: name, DefinedBy: stored.DefinedBy, Differences: diffs, Cluster: stored}
	}
	log.Debug("cluster network definition matches the cluster store")
	s.remember(name, stored)
	return stored, nil
}

func decodeDefinition(b []byte) (Definition, error) {
	var d Definition
	if err := json.Unmarshal(b, &d); err != nil {
		return Definition{}, err
	}
	return d.Canonical(), nil
}

func (s *Store) remember(name string, def Definition) {
	s.defsMu.Lock()
	s.defs[name] = def
	s.defsMu.Unlock()
}

func (s *Store) remembered(name string) (Definition, bool) {
	s.defsMu.Lock()
	defer s.defsMu.Unlock()
	d, ok := s.defs[name]
	return d, ok
}

// Undefine deletes the definition of cluster network name if no block and
// no claim of it remains, in one transaction, so that a host leasing a
// block at the same moment either keeps the definition or finds it gone.
// While blocks or claims remain it does nothing and returns nil. It also
// stops this Store from putting the definition back by itself (see
// LeaseBlock): call it when this host deletes the network.
func (s *Store) Undefine(ctx context.Context, name string) error {
	if err := validNetwork(name); err != nil {
		return err
	}
	s.defsMu.Lock()
	delete(s.defs, name)
	s.defsMu.Unlock()
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	_, err := s.undefine(ctx, name)
	return err
}

func (s *Store) undefine(ctx context.Context, name string) (bool, error) {
	resp, err := s.client.Txn(ctx).
		If(
			clientv3.Compare(clientv3.CreateRevision(s.defKey(name)), ">", 0),
			clientv3.Compare(clientv3.CreateRevision(s.blocksPrefix(name)), "=", 0).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(s.claimsPrefix(name)), "=", 0).WithPrefix(),
		).
		Then(clientv3.OpDelete(s.defKey(name))).
		Commit()
	if err != nil {
		return false, s.storeError(err, fmt.Sprintf("the definition of cluster network %s stays in the cluster store; it is removed when the network is deleted again or a node is forgotten", name))
	}
	if resp.Succeeded {
		s.log.WithField("network", name).Info("cluster network definition removed from the cluster store (no block or claim left)")
	} else {
		s.log.WithField("network", name).Debug("cluster network definition kept: blocks or claims remain, or there is none")
	}
	return resp.Succeeded, nil
}

// errNotDefined is LeaseBlock's and Claim's answer when the network has no
// definition in the store and this process has none to put back.
func errNotDefined(name string) error {
	return fmt.Errorf("cluster network %s has no definition in the cluster store (it is removed when no block or claim of it is left): define it again (Store.Define, which the plugin does when it starts or creates the network) before leasing blocks or claiming addresses", name)
}

// definition reads the recorded definition of network name and its create
// revision. Definitions are created and deleted, never changed, so "the
// definition key still has this create revision" in a transaction means
// "the definition is still this one". If there is none and this process
// defined or confirmed the network before, it is put back (Define: a
// different definition recorded meanwhile gives a *MismatchError).
func (s *Store) definition(ctx context.Context, name, effect string) (Definition, int64, error) {
	for attempt := 0; ; attempt++ {
		resp, err := s.client.Get(ctx, s.defKey(name))
		if err != nil {
			return Definition{}, 0, s.storeError(err, effect)
		}
		if len(resp.Kvs) > 0 {
			d, err := decodeDefinition(resp.Kvs[0].Value)
			if err != nil {
				return Definition{}, 0, fmt.Errorf("cluster network %s: the definition in the cluster store (key %s) is unreadable (%v): delete that key with etcdctl once no host uses the network, then create the network again", name, s.defKey(name), err)
			}
			return d, resp.Kvs[0].CreateRevision, nil
		}
		def, ok := s.remembered(name)
		if !ok || attempt > 0 {
			return Definition{}, 0, errNotDefined(name)
		}
		s.log.WithField("network", name).Info("cluster network definition missing from the cluster store; putting this host's back")
		if _, err := s.Define(ctx, name, def); err != nil {
			return Definition{}, 0, err
		}
	}
}

// subnetOf is the subnet of def that holds p, if any.
func subnetOf(def Definition, p netip.Prefix) (netip.Prefix, bool) {
	for _, sub := range def.Subnets {
		if sub.Addr().BitLen() == p.Addr().BitLen() && sub.Bits() <= p.Bits() && sub.Contains(p.Addr()) {
			return sub, true
		}
	}
	return netip.Prefix{}, false
}

// checkAgainst checks a block request or a claim (p, with host block
// length bits) against the network's recorded definition: every block of a
// network is cut by that one definition, which is what makes the compares
// of LeaseBlock and Claim sufficient.
func checkAgainst(name string, def Definition, p netip.Prefix, bits int, what string) error {
	sub, ok := subnetOf(def, p)
	if !ok {
		var subs []string
		for _, s := range def.Subnets {
			subs = append(subs, s.String())
		}
		return fmt.Errorf("%s is outside every subnet of cluster network %s (%s): use an address range of the network", what, name, strings.Join(subs, ", "))
	}
	if hb := def.HostBlock(sub); bits != hb {
		return fmt.Errorf("cluster network %s cuts %s into /%d host blocks, not /%d: use the cluster's definition (Define returns it)", name, sub, hb, bits)
	}
	return nil
}

// checkLeaseRequest checks the arguments of LeaseBlock and returns within
// in its normal form and its family's address length.
func checkLeaseRequest(name string, within netip.Prefix, bits int) (netip.Prefix, int, error) {
	if err := validNetwork(name); err != nil {
		return within, 0, err
	}
	if !within.IsValid() {
		return within, 0, fmt.Errorf("cluster network %s: cannot lease a block within an invalid prefix", name)
	}
	within = normPrefix(within)
	maxBits := within.Addr().BitLen()
	if bits < 1 || bits > maxBits {
		return within, 0, fmt.Errorf("cluster network %s: block length /%d is not a prefix length between 1 and %d", name, bits, maxBits)
	}
	return within, maxBits, nil
}

// LeaseBlock leases for this node the first free block of length bits
// inside within (a subnet of network name, or its ip range) and returns it.
// bits must be the network's host block length for within's family.
//
// Candidates are the aligned prefixes of length bits inside within, tried
// in address order from the lowest, so the result is deterministic; when
// within is smaller than a block (within.Bits() > bits, e.g. an ip range /28
// with /26 host blocks), within itself is the only candidate. A candidate is
// free when no block overlaps it and no claim lies inside it, and skip (if
// not nil) does not reject it. Each candidate is taken with one etcd
// transaction:
//
//	If   the definition is the one checked against (its create revision),
//	     CreateRevision(blocks/<candidate>) == 0,
//	     CreateRevision(blocks/[first_, last`)) == 0   (no block starts inside),
//	     CreateRevision(claims/[first, last\x00)) == 0 (no claim inside),
//	     CreateRevision(blocks/<each enclosing block>) == 0
//	Then put blocks/<candidate> = node
//	Else read what is there
//
// so two hosts racing for one block cannot both win. A lost race moves on
// to the next candidate; the number of attempts is bounded by the number
// of candidates, and the call by its context.
//
// LeaseBlock needs the network's definition in the store. If it is gone
// (Undefine or Forget removed it when no block was left) and this process
// defined or confirmed the network before, it is put back; otherwise the
// error says to call Define first.
//
// If the store is unreachable the error matches ErrUnreachable. The lease
// may then still have been written (only the answer was lost): it shows up
// in Blocks with this node's name, and ReleaseBlock frees it.
func (s *Store) LeaseBlock(ctx context.Context, name string, within netip.Prefix, bits int, skip func(netip.Prefix) bool) (netip.Prefix, error) {
	within, maxBits, err := checkLeaseRequest(name, within, bits)
	if err != nil {
		return netip.Prefix{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	r := &leaseRun{s: s, name: name, within: within, bits: bits, log: s.log.WithField("network", name),
		effect: fmt.Sprintf("a new block of %s cannot be leased; containers still start while this host's blocks have room", name)}
	if r.lease, err = s.registered(ctx, r.effect); err != nil {
		return netip.Prefix{}, err
	}
	if err := r.readDefinition(ctx); err != nil {
		return netip.Prefix{}, err
	}
	if r.view, err = s.readView(ctx, name, maxBits); err != nil {
		return netip.Prefix{}, s.storeError(err, r.effect)
	}

	cand := netip.PrefixFrom(within.Addr(), max(bits, within.Bits()))
	lastOfWithin := lastAddr(within)
	skipped := 0
	for ok := true; ok && cand.Addr().Compare(lastOfWithin) <= 0; cand, ok = nextPrefix(cand) {
		if r.scanned++; r.scanned%4096 == 0 && ctx.Err() != nil {
			return netip.Prefix{}, s.storeError(ctx.Err(), r.effect)
		}
		if r.view.taken(cand) {
			continue
		}
		if skip != nil && skip(cand) {
			skipped++
			r.log.WithField("block", cand).Debug("block candidate rejected by the caller")
			continue
		}
		if leased, err := r.try(ctx, cand); err != nil {
			return netip.Prefix{}, err
		} else if leased {
			return cand, nil
		}
	}
	return netip.Prefix{}, r.noneFree(ctx, skipped)
}

// leaseRun is one LeaseBlock under way: what it asked for, what it read of
// the store, and its counts for the log.
type leaseRun struct {
	s      *Store
	name   string
	within netip.Prefix
	bits   int
	effect string
	log    logrus.FieldLogger

	lease  clientv3.LeaseID
	def    Definition
	defRev int64
	view   *netView

	scanned, attempts, reloads, reregs int
}

// readDefinition reads the network's definition and checks the request
// against it.
func (r *leaseRun) readDefinition(ctx context.Context) error {
	var err error
	if r.def, r.defRev, err = r.s.definition(ctx, r.name, r.effect); err != nil {
		return err
	}
	return checkAgainst(r.name, r.def, r.within, r.bits, "block range "+r.within.String())
}

// try leases cand: true once leased, false when another host took it
// meanwhile (the caller tries the next candidate).
func (r *leaseRun) try(ctx context.Context, cand netip.Prefix) (bool, error) {
	// Lengths of the blocks that could enclose the candidate: those
	// between the host block and a within smaller than it, and any
	// other shorter length present in the network (none while every
	// block is cut by the one definition, but checking is cheap).
	enclosing := r.view.enclosing(cand, min(r.bits, r.within.Bits()))
	// rev is 0 for the plain compares; see leaseTxn for when it is not.
	var rev int64
	for try := 0; ; try++ {
		r.attempts++
		resp, err := r.s.leaseTxn(ctx, r.name, cand, enclosing, r.lease, r.defRev, rev)
		if err != nil {
			return false, r.s.storeError(err, r.effect)
		}
		if !resp.Succeeded && !onLease(resp, r.lease) {
			if r.lease, err = r.s.reregistered(ctx, &r.reregs, r.effect); err != nil {
				return false, err
			}
			continue
		}
		if resp.Succeeded {
			r.log.WithField("block", cand).Info("block leased")
			r.log.WithField("block", cand).Debugf("lease took %d transactions, %d candidates", r.attempts, r.scanned)
			return true, nil
		}
		conflict, sameDef := r.s.leaseConflict(r.name, cand, resp, r.view, r.defRev)
		if conflict {
			r.log.WithField("block", cand).Debug("block candidate taken meanwhile; trying the next")
			return false, nil
		}
		if !sameDef {
			// Deleted (and maybe recreated) since we read it: read it
			// again, and check the request against it again.
			if r.reloads++; r.reloads > 2 {
				return false, fmt.Errorf("cluster network %s: its definition keeps changing in the cluster store while a block is leased: try again", r.name)
			}
			if err := r.readDefinition(ctx); err != nil {
				return false, err
			}
			continue
		}
		if try >= 8 {
			return false, fmt.Errorf("cluster network %s: block %s could not be leased after %d attempts: keys of the other address family keep changing in its key range; try again", r.name, cand, try+1)
		}
		// Only keys of the other family (whose hex keys may sort inside
		// this block's key range) made the range compares fail. Retry
		// with "nothing in the range changed since revision rev", rev
		// being the revision at which we saw none of this family.
		rev = resp.Header.Revision
	}
}

// noneFree is the error when no candidate could be leased.
func (r *leaseRun) noneFree(ctx context.Context, skipped int) error {
	if r.within.Bits() >= r.bits && skipped == 0 {
		// One candidate, asked for by itself (the block of a static
		// address, or an ip range smaller than a block): say who has it.
		return fmt.Errorf("block %s of cluster network %s is not free (%s): choose an address outside it", r.within, r.name, r.s.holders(ctx, r.name, r.within))
	}
	msg := fmt.Sprintf("no free block of /%d is left in %s of cluster network %s (%d blocks held, %d addresses claimed in the network", r.bits, r.within, r.name, len(r.view.blocks), len(r.view.claims))
	if skipped > 0 {
		msg += fmt.Sprintf(", %d free blocks refused by this host", skipped)
	}
	return errors.New(msg + "): use a larger subnet or ip range, or smaller host blocks (a longer host block prefix length)")
}

// holders describes who holds blocks overlapping p or addresses in it, for
// an error message.
func (s *Store) holders(ctx context.Context, name string, p netip.Prefix) string {
	snap, err := s.readSnapshot(ctx, name)
	if err != nil {
		return "held by another node, or holding a claimed address"
	}
	var out []string
	for _, b := range snap.blocks {
		if b.Prefix.Overlaps(p) {
			out = append(out, fmt.Sprintf("node %s holds block %s", b.Node, b.Prefix))
		}
	}
	for _, c := range snap.claims {
		if p.Contains(c.Addr) {
			out = append(out, fmt.Sprintf("node %s claimed %s", c.Node, c.Addr))
		}
	}
	if len(out) == 0 {
		return "it was taken and released meanwhile: try again"
	}
	if len(out) > 3 {
		out = append(out[:3], fmt.Sprintf("%d more", len(out)-3))
	}
	return strings.Join(out, ", ")
}

// onLease reports whether the last read of the Else branch of a failed
// transaction found the node key on lease.
func onLease(resp *clientv3.TxnResponse, lease clientv3.LeaseID) bool {
	kvs := resp.Responses[len(resp.Responses)-1].GetResponseRange().Kvs
	return len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == lease
}

// registration is the compare and the read that make a write depend on
// the node key being on this node's lease (see registered).
func (s *Store) registration(lease clientv3.LeaseID) (clientv3.Cmp, clientv3.Op) {
	key := s.nodeKey(s.cfg.Node)
	return clientv3.Compare(clientv3.LeaseValue(key), "=", int64(lease)), clientv3.OpGet(key, clientv3.WithKeysOnly())
}

// leaseTxn tries to put the block key of cand, if the node key is on
// lease (onLease reads the last response of the Else branch). With rev 0
// the ranges must hold no key at all. A key of the other family can sort inside a range
// (an IPv6 key's first 8 hex digits may fall between two IPv4 keys), so
// when that is all that failed the compares, the caller retries with rev set
// to the revision at which it saw the ranges hold no key of cand's family,
// and the ranges must then be unchanged since rev.
func (s *Store) leaseTxn(ctx context.Context, name string, cand netip.Prefix, enclosing []int, lease clientv3.LeaseID, defRev, rev int64) (*clientv3.TxnResponse, error) {
	first, last := cand.Addr(), lastAddr(cand)
	bk := s.blockKey(name, cand)
	bFrom, bTo := s.blocksPrefix(name)+AddrKey(first)+"_", s.blocksPrefix(name)+AddrKey(last)+"`"
	cFrom, cTo := s.claimsPrefix(name)+AddrKey(first), s.claimsPrefix(name)+AddrKey(last)+"\x00"
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.defKey(name)), "=", defRev),
		clientv3.Compare(clientv3.CreateRevision(bk), "=", 0),
	}
	if rev == 0 {
		cmps = append(cmps,
			clientv3.Compare(clientv3.CreateRevision(bFrom), "=", 0).WithRange(bTo),
			clientv3.Compare(clientv3.CreateRevision(cFrom), "=", 0).WithRange(cTo))
	} else {
		cmps = append(cmps,
			clientv3.Compare(clientv3.ModRevision(bFrom), "<", rev+1).WithRange(bTo),
			clientv3.Compare(clientv3.ModRevision(cFrom), "<", rev+1).WithRange(cTo))
	}
	reads := []clientv3.Op{
		clientv3.OpGet(s.defKey(name), clientv3.WithKeysOnly()),
		clientv3.OpGet(bFrom, clientv3.WithRange(bTo), clientv3.WithKeysOnly()),
		clientv3.OpGet(cFrom, clientv3.WithRange(cTo), clientv3.WithKeysOnly()),
	}
	for _, l := range enclosing {
		k := s.blockKey(name, netip.PrefixFrom(first, l))
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		reads = append(reads, clientv3.OpGet(k, clientv3.WithKeysOnly()))
	}
	reg, read := s.registration(lease)
	cmps, reads = append(cmps, reg), append(reads, read)
	return s.client.Txn(ctx).If(cmps...).Then(clientv3.OpPut(bk, s.holderValue(bk))).Else(reads...).Commit()
}

// leaseConflict reads the Else branch of a failed leaseTxn: whether a
// block or claim of cand's family is in the way (it is added to view), and
// whether the definition is still the one of create revision defRev.
func (s *Store) leaseConflict(name string, cand netip.Prefix, resp *clientv3.TxnResponse, view *netView, defRev int64) (conflict, sameDef bool) {
	kvs := resp.Responses[0].GetResponseRange().Kvs
	sameDef = len(kvs) > 0 && kvs[0].CreateRevision == defRev
	fam := cand.Addr().BitLen()
	// The last read is the node key's (registration).
	for i, r := range resp.Responses[1 : len(resp.Responses)-1] {
		for _, kv := range r.GetResponseRange().Kvs {
			key := string(kv.Key)
			if i == 1 { // the claims range
				a, err := ParseAddrKey(strings.TrimPrefix(key, s.claimsPrefix(name)))
				if err != nil {
					conflict = true // unknown key: stay clear of it
					continue
				}
				if a.BitLen() == fam && cand.Contains(a) {
					view.addClaim(a)
					conflict = true
				}
				continue
			}
			p, err := ParseBlockKey(strings.TrimPrefix(key, s.blocksPrefix(name)))
			if err != nil {
				conflict = true
				continue
			}
			if p.Addr().BitLen() == fam && p.Overlaps(cand) {
				view.addBlock(p)
				conflict = true
			}
		}
	}
	return conflict, sameDef
}

// netView is what LeaseBlock knows of a network's blocks and claims of one
// family, to skip taken candidates without a transaction each.
type netView struct {
	fam     int
	blocks  map[netip.Prefix]bool
	lengths map[int]bool
	starts  []netip.Addr // first addresses of blocks, sorted
	claims  []netip.Addr // sorted
}

func (s *Store) readView(ctx context.Context, name string, fam int) (*netView, error) {
	resp, err := s.client.Get(ctx, s.networkPrefix(name), clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	v := &netView{fam: fam, blocks: map[netip.Prefix]bool{}, lengths: map[int]bool{}}
	for _, kv := range resp.Kvs {
		_, kind, obj, ok := s.parseNetworkKey(string(kv.Key))
		switch {
		case !ok:
		case kind == "blocks":
			if p, err := ParseBlockKey(obj); err == nil {
				v.addBlock(p)
			}
		case kind == "claims":
			if a, err := ParseAddrKey(obj); err == nil {
				v.addClaim(a)
			}
		}
	}
	return v, nil
}

// enclosing lists the lengths of the blocks that could enclose cand:
// from shortest (the host block, or a within smaller than it) to cand's,
// and any other shorter length present in the network.
func (v *netView) enclosing(cand netip.Prefix, shortest int) []int {
	var out []int
	for l := shortest; l < cand.Bits(); l++ {
		out = append(out, l)
	}
	for l := range v.lengths {
		if l < shortest {
			out = append(out, l)
		}
	}
	return out
}

func (v *netView) addBlock(p netip.Prefix) {
	if p.Addr().BitLen() != v.fam || v.blocks[p] {
		return
	}
	v.blocks[p] = true
	v.lengths[p.Bits()] = true
	i, _ := slices.BinarySearchFunc(v.starts, p.Addr(), netip.Addr.Compare)
	v.starts = slices.Insert(v.starts, i, p.Addr())
}

func (v *netView) addClaim(a netip.Addr) {
	if a.BitLen() != v.fam {
		return
	}
	i, found := slices.BinarySearchFunc(v.claims, a, netip.Addr.Compare)
	if !found {
		v.claims = slices.Insert(v.claims, i, a)
	}
}

// taken reports whether a known block overlaps c or a known claim lies in c.
func (v *netView) taken(c netip.Prefix) bool {
	last := lastAddr(c)
	inside := func(sorted []netip.Addr) bool {
		i, _ := slices.BinarySearchFunc(sorted, c.Addr(), netip.Addr.Compare)
		return i < len(sorted) && sorted[i].Compare(last) <= 0
	}
	if inside(v.starts) || inside(v.claims) {
		return true
	}
	for l := range v.lengths {
		if l < c.Bits() && v.blocks[netip.PrefixFrom(c.Addr(), l).Masked()] {
			return true
		}
	}
	return false
}

// ReleaseBlock gives back a block this node holds. Releasing a block that
// is not held is a no-op; releasing another node's block is refused.
func (s *Store) ReleaseBlock(ctx context.Context, name string, block netip.Prefix) error {
	if err := validNetwork(name); err != nil {
		return err
	}
	if !block.IsValid() {
		return fmt.Errorf("cluster network %s: cannot release an invalid block", name)
	}
	block = normPrefix(block)
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	log := s.log.WithField("network", name).WithField("block", block)
	holder, released, impostor, err := s.deleteIfMine(ctx, s.blockKey(name, block))
	if err != nil {
		return s.storeError(err, fmt.Sprintf("block %s of cluster network %s is not released and stays held by node %s; release it again when the store is reachable", block, name, s.cfg.Node))
	}
	switch {
	case impostor:
		return errors.New(s.notYours(fmt.Sprintf("block %s of cluster network %s", block, name)))
	case released:
		log.Info("block released")
	case holder == "":
		log.Debug("block to release is not held; nothing to do")
	default:
		return fmt.Errorf("block %s of cluster network %s is held by node %s, not by this node (%s): it cannot be released from here; once node %s is stopped for good, `forget` it to free its blocks", block, name, holder, s.cfg.Node, holder)
	}
	return nil
}

// deleteIfMine deletes key if its value says this node holds it under its
// identity (the whole value, proof included, is compared). It returns the
// holder found when it did not delete ("" when the key is absent), and
// whether that holder is this node's name without this node's proof.
func (s *Store) deleteIfMine(ctx context.Context, key string) (holder string, deleted, impostor bool, err error) {
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(key), "=", s.holderValue(key))).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return "", false, false, err
	}
	if resp.Succeeded {
		return s.cfg.Node, true, false, nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		node, _, perr := parseHolder(kvs[0].Value)
		if perr != nil {
			return fmt.Sprintf("unknown (unreadable value %q)", kvs[0].Value), false, false, nil
		}
		return node, false, node == s.cfg.Node, nil
	}
	return "", false, false, nil
}

// notYours says that key names this node without its proof.
func (s *Store) notYours(what string) string {
	return fmt.Sprintf("%s names node %s but not this host's identity: another host with the same CLUSTER_NODE holds it, or it was written by hand; this host leaves it alone", what, s.cfg.Node)
}

// Claim claims the single address addr of network name for this node,
// typically a static address outside this node's blocks, or an address that
// must never be handed out. hostBlockBits is the network's host block length
// for addr's family: the claim is refused when a block (of that length or
// longer) containing addr is another node's, and is not needed (nil, nothing
// written) when it is this node's own: the caller allocates addr in its
// block. Claiming an address this node already claimed is a no-op. Like
// LeaseBlock, Claim needs the network's definition in the store, and addr
// must be in one of its subnets.
func (s *Store) Claim(ctx context.Context, name string, addr netip.Addr, hostBlockBits int) error {
	if err := validNetwork(name); err != nil {
		return err
	}
	if !addr.IsValid() {
		return fmt.Errorf("cluster network %s: cannot claim an invalid address", name)
	}
	addr = addr.Unmap().WithZone("")
	maxBits := addr.BitLen()
	if hostBlockBits < 0 || hostBlockBits > maxBits || maxBits-hostBlockBits > 100 {
		return fmt.Errorf("cluster network %s: host block length /%d does not fit address %s: give the network's host block length for its family", name, hostBlockBits, addr)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	log := s.log.WithField("network", name).WithField("address", addr)
	effect := fmt.Sprintf("address %s of cluster network %s cannot be claimed; retry when the store is reachable, or start the container without a static address", addr, name)
	ck := s.claimKey(name, addr)
	// A block holding addr is of the host block length, or longer when an
	// ip range smaller than a host block is a block of its own.
	var blocks []netip.Prefix
	for l := hostBlockBits; l <= maxBits; l++ {
		blocks = append(blocks, netip.PrefixFrom(addr, l).Masked())
	}
	lease, err := s.registered(ctx, effect)
	if err != nil {
		return err
	}
	reregs := 0
	for reloads := 0; ; reloads++ {
		def, defRev, err := s.definition(ctx, name, effect)
		if err != nil {
			return err
		}
		if err := checkAgainst(name, def, netip.PrefixFrom(addr, maxBits), hostBlockBits, "address "+addr.String()); err != nil {
			return err
		}
		resp, err := s.claimTxn(ctx, name, ck, blocks, lease, defRev)
		if err != nil {
			return s.storeError(err, effect)
		}
		if resp.Succeeded {
			log.Info("address claimed")
			return nil
		}
		if !onLease(resp, lease) {
			if lease, err = s.reregistered(ctx, &reregs, effect); err != nil {
				return err
			}
			reloads--
			continue
		}
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			if !s.mine(ck, kvs[0].Value) {
				holder := s.holderName(kvs[0].Value)
				log.WithField("holder", holder).Debug("address to claim is claimed by another node")
				return fmt.Errorf("address %s of cluster network %s is held by node %s: choose another address", addr, name, holder)
			}
			log.Debug("address already claimed by this node")
			return nil
		}
		for i, r := range resp.Responses[2 : len(resp.Responses)-1] {
			if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
				holder := s.holderName(kvs[0].Value)
				if s.mine(s.blockKey(name, blocks[i]), kvs[0].Value) {
					log.WithField("block", blocks[i]).Debug("address lies in this node's own block; no claim needed")
					return nil
				}
				log.WithField("block", blocks[i]).WithField("holder", holder).Debug("address to claim lies in another node's block")
				return fmt.Errorf("address %s of cluster network %s is held by node %s: choose another address", addr, name, holder)
			}
		}
		// Only the definition changed (deleted, maybe recreated): read it
		// and check again.
		if reloads >= 2 {
			return fmt.Errorf("address %s of cluster network %s cannot be claimed: the network's definition keeps changing in the cluster store; try again", addr, name)
		}
	}
}

// claimTxn puts claim key ck if the definition is the one of create
// revision defRev, no block of blocks exists, and the node key is on
// lease; otherwise it reads the definition, ck, each block and the node
// key, in that order.
func (s *Store) claimTxn(ctx context.Context, name, ck string, blocks []netip.Prefix, lease clientv3.LeaseID, defRev int64) (*clientv3.TxnResponse, error) {
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.defKey(name)), "=", defRev),
		clientv3.Compare(clientv3.CreateRevision(ck), "=", 0),
	}
	reads := []clientv3.Op{clientv3.OpGet(s.defKey(name), clientv3.WithKeysOnly()), clientv3.OpGet(ck)}
	for _, b := range blocks {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.blockKey(name, b)), "=", 0))
		reads = append(reads, clientv3.OpGet(s.blockKey(name, b)))
	}
	reg, read := s.registration(lease)
	cmps, reads = append(cmps, reg), append(reads, read)
	return s.client.Txn(ctx).If(cmps...).Then(clientv3.OpPut(ck, s.holderValue(ck))).Else(reads...).Commit()
}

// holderName is the holder a block or claim value names, for messages;
// one that names this node without its proof is told apart.
func (s *Store) holderName(v []byte) string {
	node, prf, err := parseHolder(v)
	switch {
	case err != nil:
		return fmt.Sprintf("unknown (unreadable value %q)", v)
	case node == s.cfg.Node && prf == "":
		return node + " (written without an identity)"
	case node == s.cfg.Node:
		return node + " (another host of that name)"
	}
	return node
}

// Unclaim gives back an address this node claimed. Unclaiming an address
// that is not claimed is a no-op; another node's claim is refused.
func (s *Store) Unclaim(ctx context.Context, name string, addr netip.Addr) error {
	if err := validNetwork(name); err != nil {
		return err
	}
	if !addr.IsValid() {
		return fmt.Errorf("cluster network %s: cannot unclaim an invalid address", name)
	}
	addr = addr.Unmap().WithZone("")
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	log := s.log.WithField("network", name).WithField("address", addr)
	holder, released, impostor, err := s.deleteIfMine(ctx, s.claimKey(name, addr))
	if err != nil {
		return s.storeError(err, fmt.Sprintf("address %s of cluster network %s stays claimed by node %s; unclaim it again when the store is reachable", addr, name, s.cfg.Node))
	}
	switch {
	case impostor:
		return errors.New(s.notYours(fmt.Sprintf("claim of address %s of cluster network %s", addr, name)))
	case released:
		log.Info("address unclaimed")
	case holder == "":
		log.Debug("address to unclaim is not claimed; nothing to do")
	default:
		return fmt.Errorf("address %s of cluster network %s is claimed by node %s, not by this node (%s): it cannot be unclaimed from here; once node %s is stopped for good, `forget` it to free its claims", addr, name, holder, s.cfg.Node, holder)
	}
	return nil
}
