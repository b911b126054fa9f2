package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The store is data, not commands: anyone who can write to etcd can write
// any key, so what is read from it is checked before a host acts on it.
// A node record must be well formed, with at most one usable unicast
// address per family; a block must lie inside a subnet of its network's
// definition and be of the definition's block length; its holder must be
// a node name, and the addresses a block is routed to are its holder's
// registered addresses, nothing else. What fails is left out, with a
// warning that names the key, the value and what is wrong (once per key
// and value, as the watch reads the same keys again with every change).

// parseNodeRecord reads and checks the record of node name.
func parseNodeRecord(name string, value []byte) (nodeRecord, error) {
	var rec nodeRecord
	if err := validNode(name); err != nil {
		return rec, err
	}
	if err := json.Unmarshal(value, &rec); err != nil {
		return rec, fmt.Errorf("not a node record: %v", err)
	}
	var has4, has6 bool
	for _, a := range rec.Addresses {
		if err := usableAddress(a); err != nil {
			return rec, err
		}
		if (a.Is4() && has4) || (a.Is6() && has6) {
			return rec, fmt.Errorf("more than one address of a family (%s)", a)
		}
		has4, has6 = has4 || a.Is4(), has6 || a.Is6()
	}
	return rec, nil
}

// usableAddress checks a node's cluster address: one that other hosts can
// route a block to.
func usableAddress(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return errors.New("an address is empty")
	case a.Is4In6() || a.Zone() != "":
		return fmt.Errorf("address %s is not in its plain form", a)
	case a.IsUnspecified(), a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(),
		a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("address %s is not a unicast address other hosts can route to", a)
	}
	return nil
}

// checkBlock checks block p against def: inside one of its subnets, of
// the definition's host block length for that subnet (or, when the
// subnet's ip range is smaller than a host block, that range itself, as
// LeaseBlock leases it).
func checkBlock(def Definition, p netip.Prefix) error {
	sub, ok := subnetOf(def, p)
	if !ok {
		return fmt.Errorf("outside every subnet of the network's definition (%s)", prefixList(def.Subnets))
	}
	hb := def.HostBlock(sub)
	if p.Bits() == hb {
		return nil
	}
	if r, ok := def.IPRanges[sub]; ok && r.Bits() > hb && r.Masked() == p {
		return nil
	}
	return fmt.Errorf("a /%d, but the definition cuts %s into /%d blocks", p.Bits(), sub, hb)
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return fmt.Sprint(s)
}

// warnOnce logs a warning about key and value, once per pair.
func (s *Store) warnOnce(key string, value []byte, msg string) {
	k := key + "\x00" + string(value)
	s.warnMu.Lock()
	seen := s.warned[k]
	if !seen {
		if len(s.warned) > 10000 {
			clear(s.warned)
		}
		s.warned[k] = true
	}
	s.warnMu.Unlock()
	if !seen {
		s.log.WithField("key", key).WithField("value", string(value)).Warn(msg)
	}
}

// refusal is the reason this node is kept out of the cluster, nil when
// it is not.
func (s *Store) refusal() error {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	return s.refused
}

// HeldBlocks lists the blocks of cluster network name this node holds
// under its identity: blocks that merely name it (written by hand, or by
// another host of the same name) are not among them.
//
// known are the blocks the host's state file records. Those that carry
// this node's bare name (written before identities existed) are taken as
// the host's own and stamped with its identity first, in a transaction
// that compares the value; no block the state file does not know is ever
// taken on a bare name.
func (s *Store) HeldBlocks(ctx context.Context, name string, known []netip.Prefix) ([]netip.Prefix, error) {
	if err := validNetwork(name); err != nil {
		return nil, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	effect := "the blocks this host holds cannot be checked; try again when the store is reachable"
	for _, p := range known {
		key := s.blockKey(name, normPrefix(p))
		resp, err := s.client.Txn(ctx).
			If(clientv3.Compare(clientv3.Value(key), "=", s.cfg.Node)).
			Then(clientv3.OpPut(key, s.holderValue(key))).
			Commit()
		if err != nil {
			return nil, s.storeError(err, effect)
		}
		if resp.Succeeded {
			s.log.WithField("network", name).WithField("block", p).Info("block recorded without an identity stamped with this node's")
		}
	}
	snap, err := s.readSnapshot(ctx, name)
	if err != nil {
		return nil, s.storeError(err, effect)
	}
	var out []netip.Prefix
	for _, b := range snap.blocks {
		if b.Mine {
			out = append(out, b.Prefix)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out, nil
}
