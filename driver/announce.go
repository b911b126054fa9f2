package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/cluster"
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

// learnedProtocol marks the routes dualstack installs from what BGP
// learned (BGP_IMPORT_ROUTES): not the kernel's "bgp" (186), which a
// routing daemon of the host's own may use.
const learnedProtocol = netlink.RouteProtocol(0xd6)

// learnedRoutes are the routes BGP learned, as the speaker reported them
// last.
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

// bgpBlocks returns the subnets of the host's networks with
// cluster_routes=bgp and the blocks it holds of them; the caller holds
// d.mu.
func (d *Driver) bgpBlocks() (subnets, blocks []netip.Prefix) {
	for _, n := range d.networks {
		if n.Options.ClusterRoutes != clusterRoutesBGP {
			continue
		}
		for _, p := range n.pools() {
			subnets = append(subnets, p.Prefix.Masked())
			for _, b := range d.cfg.IPAM.Blocks(p.PoolID) {
				blocks = append(blocks, b.Prefix.Masked())
			}
		}
	}
	return subnets, blocks
}

// LearnedRoutes installs the routes BGP learned (prefix to next hop) that
// lead to blocks of the host's cluster networks with cluster_routes=bgp,
// and removes those it installed before that are not among them. Nothing
// else a router sends is routed: it cannot take over the host's routes.
func (d *Driver) LearnedRoutes(routes map[netip.Prefix]netip.Addr) error {
	d.learned.mu.Lock()
	d.learned.routes, d.learned.known = routes, true
	d.learned.mu.Unlock()
	return d.syncLearnedRoutes()
}

func (d *Driver) syncLearnedRoutes() error {
	d.learned.mu.Lock()
	defer d.learned.mu.Unlock()
	if !d.learned.known {
		return nil
	}
	d.mu.Lock()
	subnets, own := d.bgpBlocks()
	d.mu.Unlock()
	want := map[netip.Prefix]netip.Addr{}
	for p, via := range d.learned.routes {
		inside := slices.ContainsFunc(subnets, func(s netip.Prefix) bool { return s.Bits() <= p.Bits() && s.Contains(p.Addr()) })
		if inside && !slices.Contains(own, p.Masked()) && via.Is4() == p.Addr().Is4() {
			want[p.Masked()] = via
		}
	}
	return syncRoutes(learnedProtocol, want, d.log, "is the router that sent it on a network this host reaches directly?")
}
