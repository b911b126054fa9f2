package routes

import (
	"net/netip"
	"slices"
)

// ClusterBlocks makes the host's routes to the blocks of other hosts
// those of blocks: a route to each block of a cluster network with
// cluster_routes=host-gw that this host has, via its holder's address of
// the block's family. Routes of dualstack's to anything else go. self is
// this host's name in the store. It is called with every change the
// cluster store reports.
func (k *Keeper) ClusterBlocks(self string, blocks []HostBlock) error {
	k.hostGW.mu.Lock()
	defer k.hostGW.mu.Unlock()
	// A host whose plugin is stopped or restarting has no node key, so
	// the store gives its blocks no address; its containers still run:
	// route to the address it had.
	if k.hostGW.via == nil {
		k.hostGW.via = map[string][]netip.Addr{}
	}
	blocks = slices.Clone(blocks)
	for i, b := range blocks {
		if len(b.Via) > 0 {
			k.hostGW.via[b.Node] = b.Via
		} else {
			blocks[i].Via = k.hostGW.via[b.Node]
		}
	}
	k.hostGW.self, k.hostGW.blocks, k.hostGW.known = self, blocks, true
	return k.syncHostGW()
}

// ResyncHostGW makes the host-gw routes again from the blocks the store
// reported last, for a cluster network created or deleted since: the
// store may report nothing new.
func (k *Keeper) ResyncHostGW() {
	k.hostGW.mu.Lock()
	defer k.hostGW.mu.Unlock()
	if !k.hostGW.known {
		return
	}
	if err := k.syncHostGW(); err != nil {
		k.log.WithError(err).Warn("routes to the other hosts' blocks")
	}
}

// syncHostGW makes the host-gw routes from k.hostGW, which the caller
// holds, and the networks last handed over.
func (k *Keeper) syncHostGW() error {
	self, blocks := k.hostGW.self, k.hostGW.blocks
	want := map[netip.Prefix]Hop{}
	for _, n := range k.networks() {
		if !n.HostGW {
			continue
		}
		for _, b := range blocks {
			if b.Network != n.Cluster || b.Node == self {
				continue
			}
			for _, a := range b.Via {
				if a.Is4() == b.Prefix.Addr().Is4() {
					want[b.Prefix.Masked()] = Hop{Via: a, Network: n.Cluster}
				}
			}
		}
	}
	return k.table.Sync(HostGW, want)
}
