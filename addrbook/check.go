package addrbook

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/dualstack-net/dualstack/state"
)

// What `dualstack ipam check` reads of the book, and what it may release.

// kindNames name the kinds of owner for an operator.
var kindNames = map[Kind]string{
	Nobody: "nobody", MAC: "mac", Endpoint: "endpoint", HostLink: "host-link",
	HostAddress: "host-address", Gateway: "gateway", AutoGateway: "gateway-auto",
	OnLink: "on-link", Sticky: "sticky", Other: "other",
}

// String names the kind: mac, endpoint, gateway, sticky, ...
func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// PoolInfo is a pool as `dualstack ipam check` sees it.
type PoolInfo struct {
	ID     string
	Space  string
	Prefix netip.Prefix
	// Range is the pool's ip-range, if it has one.
	Range netip.Prefix
	// Network is the network driver's network that holds the pool
	// (Attach), "" when none does (another driver's network, or none).
	Network string
	// Cluster is the cluster network the pool is part of, "" for none;
	// Blocks are the blocks it holds (lost ones included) and Claims the
	// addresses outside them it claimed in the store.
	Cluster string
	Blocks  []netip.Prefix
	Claims  []netip.Addr
	// Allocations are the addresses allocated, with their owners.
	Allocations map[netip.Addr]Owner
}

// PoolsInfo lists every pool with its allocations, in ID order: one read
// of the state file.
func (bk *Book) PoolsInfo() []PoolInfo {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	var out []PoolInfo
	for _, p := range bk.sortedPools() {
		info := PoolInfo{ID: p.id, Space: p.space, Prefix: p.prefix, Range: p.sub, Network: bk.users.networkOf(p.id), Allocations: bk.allocations(p.id)}
		if c := p.cluster; c != nil {
			info.Cluster = c.Network
			for _, b := range append(append([]Block{}, c.blocks...), c.lost...) {
				info.Blocks = append(info.Blocks, b.Prefix)
			}
			for a := range c.claims {
				info.Claims = append(info.Claims, a)
			}
			sort.Slice(info.Claims, func(i, j int) bool { return info.Claims[i].Less(info.Claims[j]) })
		}
		out = append(out, info)
	}
	return out
}

// ErrNotLeaked is wrapped by ReleaseLeaked's refusals.
var ErrNotLeaked = errors.New("not a leaked address")

// releasable are the kinds of owner an allocation may be leaked by: the
// others (gateways, a link's other nodes, sticky reservations, owners
// this version does not know) are never released by an operator's check.
var releasable = map[Kind]bool{Nobody: true, MAC: true, Endpoint: true, HostLink: true, HostAddress: true}

// ReleaseLeaked frees the allocations addrs names (by pool), all or
// none: it refuses, changing nothing, an address an endpoint claims, one
// whose owner a network of the network driver explains (its gateway,
// host link or host addresses, an endpoint of its by ID or MAC), and one
// of a kind never leaked (a gateway, a sticky reservation). An address
// not allocated, or in a pool that is gone, is free already: skipped,
// and listed in gone.
func (bk *Book) ReleaseLeaked(addrs map[string][]netip.Addr) (released, gone map[string][]netip.Addr, err error) {
	err = bk.Update(func(tx *Tx) error {
		released, gone = map[string][]netip.Addr{}, map[string][]netip.Addr{}
		var refused []string
		for id, as := range addrs {
			for _, a := range as {
				why, held := bk.whyKept(id, a)
				switch {
				case why != "":
					refused = append(refused, fmt.Sprintf("%s in pool %s: %s", a, id, why))
				case held:
					released[id] = append(released[id], a)
				default:
					gone[id] = append(gone[id], a)
				}
			}
		}
		if len(refused) > 0 {
			sort.Strings(refused)
			return fmt.Errorf("%w: %s", ErrNotLeaked, strings.Join(refused, "; "))
		}
		return tx.ReleaseEach(released)
	})
	if err != nil {
		return nil, nil, err
	}
	return released, gone, nil
}

// whyKept says why addr of pool id may not be released as leaked ("" if
// it may), and whether it is allocated at all. bk.mu is held.
func (bk *Book) whyKept(id string, addr netip.Addr) (why string, held bool) {
	p, ok := bk.pools[id]
	if !ok || !p.alloc.Allocated(addr) {
		return "", false
	}
	var stored string
	_ = bk.db.View(func(tx state.Tx) error { stored = ownerOf(tx, id, addr); return nil })
	owner := ParseOwner(stored)
	switch {
	case bk.users.claimed(addr):
		return "an endpoint of the plugin holds it", true
	case !releasable[owner.Kind]:
		return fmt.Sprintf("its owner is a %s (%q), never released as leaked", owner.Kind, owner), true
	}
	if network := bk.users.networkOf(id); network != "" && owner.Kind != Nobody && bk.users.explains(network, owner) {
		return fmt.Sprintf("network %s explains its owner %q", network, owner), true
	}
	if owner.Kind == HostLink || owner.Kind == HostAddress {
		if _, ok := bk.users.networks[owner.ID]; ok {
			return fmt.Sprintf("network %s exists and holds it", owner.ID), true
		}
	}
	return "", true
}
