package addrbook

import (
	"math"
	"math/bits"
	"net/netip"
	"slices"
)

// Usage is what one pool of a network holds, as the metrics read it at
// scrape time (see package metrics).
type Usage struct {
	// Network is the ID of the network that holds the pool (Attach).
	Network string
	// Subnet is the pool's subnet.
	Subnet netip.Prefix
	// Size is how many addresses of the subnet may be handed out (its
	// network, broadcast and IPv6 subnet-router anycast addresses
	// aside).
	Size float64
	// InUse is how many addresses of the subnet the network's endpoints
	// hold (Claim): the gateway, the host's own addresses and
	// reservations are not among them.
	InUse int
	// Free is how many addresses are not allocated: in the subnet, or,
	// in a cluster pool, in the blocks this host holds.
	Free float64
	// Cluster is the cluster network's name, "" for a pool of one host.
	Cluster string
	// Blocks is how many blocks a cluster pool holds.
	Blocks int
}

// Usage lists, for every pool a network holds, its size and how many of
// its addresses are in use and free, by network and subnet. It reads
// memory only: the allocators and the endpoints' claims.
func (bk *Book) Usage() []Usage {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	inUse := map[string]map[netip.Addr]bool{} // by network
	for _, c := range bk.users.endpoints {
		for _, a := range c.Addrs {
			if inUse[c.Network] == nil {
				inUse[c.Network] = map[netip.Addr]bool{}
			}
			inUse[c.Network][a] = true
		}
	}
	var out []Usage
	for network, ids := range bk.users.networks {
		for _, id := range ids {
			p, ok := bk.pools[id]
			if !ok {
				continue
			}
			u := Usage{Network: network, Subnet: p.prefix}
			first, last := usableRange(p.prefix)
			u.Size = span(first, last)
			for a := range inUse[network] {
				if p.prefix.Contains(a) {
					u.InUse++
				}
			}
			u.Free = u.Size - allocatedIn(p, first, last)
			if p.cluster != nil {
				u.Cluster, u.Blocks, u.Free = p.cluster.Network, len(p.cluster.blocks), 0
				for _, b := range p.cluster.blocks {
					if f, l, ok := p.blockWindow(b); ok {
						u.Free += span(f, l) - allocatedIn(p, f, l)
					}
				}
			}
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b Usage) int {
		if a.Network != b.Network {
			if a.Network < b.Network {
				return -1
			}
			return 1
		}
		return a.Subnet.Addr().Compare(b.Subnet.Addr())
	})
	return out
}

// allocatedIn counts the addresses of p's allocator between first and
// last.
func allocatedIn(p *pool, first, last netip.Addr) float64 {
	var n float64
	p.alloc.Walk(func(f, l netip.Addr) bool {
		if last.Less(f) {
			return false // the runs are in order: none is left in range
		}
		if f.Less(first) {
			f = first
		}
		if last.Less(l) {
			l = last
		}
		if !l.Less(f) {
			n += span(f, l)
		}
		return true
	})
	return n
}

// span is how many addresses there are from first to last, both
// included (first <= last, of one family): as a float, since an IPv6
// subnet may hold more than 2^64.
func span(first, last netip.Addr) float64 {
	f, l := first.As16(), last.As16()
	fhi, flo := be64(f[:8]), be64(f[8:])
	lhi, llo := be64(l[:8]), be64(l[8:])
	lo, borrow := bits.Sub64(llo, flo, 0)
	hi, _ := bits.Sub64(lhi, fhi, borrow)
	return float64(hi)*math.Exp2(64) + float64(lo) + 1
}

func be64(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}
