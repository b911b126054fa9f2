package routes

import (
	"net/netip"
	"slices"
)

// Learned routes what BGP learned (prefix to next hop) into blocks of the
// host's cluster networks with cluster_routes=bgp: set are the routes
// learned or changed since the last call, withdrawn those gone. Only
// those prefixes are looked at, and the kernel's table is read only on
// the first call; a prefix outside those networks' subnets, or one of
// the host's own blocks, is not routed. The Table refuses, and logs, a
// prefix the host routes already or one overlapping its networks, and a
// next hop off-link or local.
func (k *Keeper) Learned(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix) error {
	k.learned.mu.Lock()
	defer k.learned.mu.Unlock()
	if k.learned.routes == nil {
		k.learned.routes = map[netip.Prefix]netip.Addr{}
	}
	for _, p := range withdrawn {
		delete(k.learned.routes, p.Masked())
	}
	for p, via := range set {
		k.learned.routes[p.Masked()] = via
	}
	if !k.learned.known {
		k.learned.known = true
		return k.syncLearned()
	}
	subnets, own := k.bgpBlocks()
	add := make(map[netip.Prefix]Hop, len(set))
	gone := make([]netip.Prefix, 0, len(withdrawn))
	for _, p := range withdrawn {
		gone = append(gone, p.Masked())
	}
	for p, via := range set {
		if hop, ok := learnable(p.Masked(), via, subnets, own); ok {
			add[p.Masked()] = hop
		} else {
			gone = append(gone, p.Masked())
		}
	}
	return k.table.Update(Learned, add, gone)
}

// ForgetLearned removes every route BGP learned: the host does not import
// (BGP_IMPORT_ROUTES=false), or BGP does not run.
func (k *Keeper) ForgetLearned() error {
	k.learned.mu.Lock()
	defer k.learned.mu.Unlock()
	k.learned.routes, k.learned.known = map[netip.Prefix]netip.Addr{}, true
	return k.syncLearned()
}

// ResyncLearned makes the learned routes again from all BGP reported, for
// a network or a block that came or went; nothing before BGP's first
// report (or ForgetLearned).
func (k *Keeper) ResyncLearned() error {
	k.learned.mu.Lock()
	defer k.learned.mu.Unlock()
	if !k.learned.known {
		return nil
	}
	return k.syncLearned()
}

// syncLearned makes the learned routes from k.learned, which the caller
// holds, and the networks last handed over.
func (k *Keeper) syncLearned() error {
	subnets, own := k.bgpBlocks()
	want := map[netip.Prefix]Hop{}
	for p, via := range k.learned.routes {
		if hop, ok := learnable(p, via, subnets, own); ok {
			want[p] = hop
		}
	}
	return k.table.Sync(Learned, want)
}

// clusterSubnet is a subnet of a cluster network.
type clusterSubnet struct {
	cluster string
	prefix  netip.Prefix
}

// bgpBlocks returns the subnets of the host's networks with
// cluster_routes=bgp and the blocks it holds of them.
func (k *Keeper) bgpBlocks() (subnets []clusterSubnet, blocks []netip.Prefix) {
	for _, n := range k.networks() {
		if !n.BGP {
			continue
		}
		for _, s := range n.Subnets {
			subnets = append(subnets, clusterSubnet{n.Cluster, s.Prefix.Masked()})
			if k.blocks == nil {
				continue
			}
			for _, b := range k.blocks(s.Pool) {
				blocks = append(blocks, b.Masked())
			}
		}
	}
	return subnets, blocks
}

// learnable returns the route to p via via when p lies in one of subnets
// (those of networks with cluster_routes=bgp), is not one of the host's
// own blocks, and via is of its family.
func learnable(p netip.Prefix, via netip.Addr, subnets []clusterSubnet, own []netip.Prefix) (Hop, bool) {
	for _, s := range subnets {
		if s.prefix.Bits() <= p.Bits() && s.prefix.Contains(p.Addr()) && !slices.Contains(own, p) && via.Is4() == p.Addr().Is4() {
			return Hop{Via: via, Network: s.cluster}, true
		}
	}
	return Hop{}, false
}
