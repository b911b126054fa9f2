package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/routes"
)

// This file is the driver's part in BGP: what the host announces (its
// blocks of cluster networks with cluster_routes=bgp, the subnets of
// networks with announce=true) and the routes it learned to the other
// hosts' blocks. The speaker itself is package bgp.

// clusterRoutesBGP is cluster_routes=bgp: the host's blocks are announced
// to routers over BGP, which route them.
const clusterRoutesBGP = cluster.RoutesBGP

// Announcer announces prefixes over BGP (*bgp.Speaker).
type Announcer interface {
	// Announce makes the announced prefixes exactly these.
	Announce([]netip.Prefix) error
}

// learnedRoutes are the routes BGP learned, as the speaker reported them:
// its first report whole, the changes since.
type learnedRoutes struct {
	mu     sync.Mutex // held while routes change; taken before Driver.mu
	routes map[netip.Prefix]netip.Addr
	known  bool
}

// checkBGP refuses a network that needs BGP on a host where it does not
// run, with the reason.
func (d *Driver) checkBGP(o netOptions) error {
	if o.ClusterRoutes != clusterRoutesBGP && !o.Announce {
		return nil
	}
	if d.cfg.BGP != nil {
		return nil
	}
	what := "announce=true"
	if o.ClusterRoutes == clusterRoutesBGP {
		what = "cluster_routes=bgp"
	}
	if d.cfg.BGPOff != nil {
		return fmt.Errorf("%s: BGP does not run on this host: %w", what, d.cfg.BGPOff)
	}
	return errors.New(what + ": BGP does not run on this host: set BGP_ASN and BGP_PEERS with `docker plugin set dualstack BGP_ASN=64512 BGP_PEERS=ROUTER:ASN` (the plugin disabled)")
}

// SyncBGP makes what the host announces and the routes it learned match
// its networks: when a network comes or goes, when the IPAM leases a
// block, and when the plugin starts.
func (d *Driver) SyncBGP() {
	if d.cfg.BGP == nil {
		return
	}
	d.announceMu.Lock()
	d.mu.Lock()
	want := d.announcements()
	d.mu.Unlock()
	err := d.cfg.BGP.Announce(want)
	d.announceMu.Unlock()
	if err != nil {
		d.log.WithError(err).Warn("BGP: announce this host's prefixes")
	}
	if err := d.syncLearnedRoutes(); err != nil {
		d.log.WithError(err).Warn("BGP: routes learned from the peers")
	}
}

// announcements are the prefixes the host announces; the caller holds
// d.mu.
func (d *Driver) announcements() []netip.Prefix {
	_, out := d.bgpBlocks()
	for _, n := range d.networks {
		if n.Options.Announce {
			for _, p := range n.pools() {
				out = append(out, p.Prefix.Masked())
			}
		}
	}
	return out
}

// clusterSubnet is a subnet of a cluster network.
type clusterSubnet struct {
	cluster string
	prefix  netip.Prefix
}

// bgpBlocks returns the subnets of the host's networks with
// cluster_routes=bgp and the blocks it holds of them; the caller holds
// d.mu.
func (d *Driver) bgpBlocks() (subnets []clusterSubnet, blocks []netip.Prefix) {
	for _, n := range d.networks {
		if n.Options.ClusterRoutes != clusterRoutesBGP {
			continue
		}
		for _, p := range n.pools() {
			subnets = append(subnets, clusterSubnet{n.Options.Cluster, p.Prefix.Masked()})
			for _, b := range d.cfg.Book.Blocks(p.PoolID) {
				blocks = append(blocks, b.Prefix.Masked())
			}
		}
	}
	return subnets, blocks
}

// LearnedRoutes routes what BGP learned (prefix to next hop) into blocks
// of the host's cluster networks with cluster_routes=bgp: set are the
// routes learned or changed since the last call, withdrawn those gone.
// Only those prefixes are looked at, and the kernel's table is read only
// on the first call; a prefix outside those networks' subnets, or one of
// the host's own blocks, is not routed. The routes package refuses, and
// logs, a prefix the host routes already or one overlapping its networks,
// and a next hop off-link or local.
func (d *Driver) LearnedRoutes(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix) error {
	d.learned.mu.Lock()
	defer d.learned.mu.Unlock()
	if d.learned.routes == nil {
		d.learned.routes = map[netip.Prefix]netip.Addr{}
	}
	for _, p := range withdrawn {
		delete(d.learned.routes, p.Masked())
	}
	for p, via := range set {
		d.learned.routes[p.Masked()] = via
	}
	if !d.learned.known {
		d.learned.known = true
		return d.syncLearnedLocked()
	}
	d.mu.Lock()
	subnets, own := d.bgpBlocks()
	d.mu.Unlock()
	add := make(map[netip.Prefix]routes.Hop, len(set))
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
	return d.rt.Update(routes.Learned, add, gone)
}

// ForgetLearned removes every route BGP learned: the host does not import
// (BGP_IMPORT_ROUTES=false), or BGP does not run.
func (d *Driver) ForgetLearned() error {
	d.learned.mu.Lock()
	defer d.learned.mu.Unlock()
	d.learned.routes, d.learned.known = map[netip.Prefix]netip.Addr{}, true
	return d.syncLearnedLocked()
}

// learnable returns the route to p via via when p lies in one of subnets
// (those of networks with cluster_routes=bgp), is not one of the host's
// own blocks, and via is of its family.
func learnable(p netip.Prefix, via netip.Addr, subnets []clusterSubnet, own []netip.Prefix) (routes.Hop, bool) {
	for _, s := range subnets {
		if s.prefix.Bits() <= p.Bits() && s.prefix.Contains(p.Addr()) && !slices.Contains(own, p) && via.Is4() == p.Addr().Is4() {
			return routes.Hop{Via: via, Network: s.cluster}, true
		}
	}
	return routes.Hop{}, false
}

func (d *Driver) syncLearnedRoutes() error {
	d.learned.mu.Lock()
	defer d.learned.mu.Unlock()
	if !d.learned.known {
		return nil
	}
	return d.syncLearnedLocked()
}

// syncLearnedLocked makes the learned routes again from all the speaker
// reported (a network or block came or went); the caller holds
// d.learned.mu.
func (d *Driver) syncLearnedLocked() error {
	d.mu.Lock()
	subnets, own := d.bgpBlocks()
	d.mu.Unlock()
	want := map[netip.Prefix]routes.Hop{}
	for p, via := range d.learned.routes {
		if hop, ok := learnable(p, via, subnets, own); ok {
			want[p] = hop
		}
	}
	return d.rt.Sync(routes.Learned, want)
}
