package driver

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/dualstack-net/dualstack/cluster"
)

// This file is the driver's part in BGP: refusing the networks that need
// it where it does not run, and handing bgp.Announcer what the host
// announces (its blocks of cluster networks with cluster_routes=bgp, the
// subnets of networks with announce=true). The speaker and the announcer
// are package bgp; the routes BGP learned are package routes'.

// clusterRoutesBGP is cluster_routes=bgp: the host's blocks are announced
// to routers over BGP, which route them.
const clusterRoutesBGP = cluster.RoutesBGP

// Announcer announces prefixes over BGP (*bgp.Speaker).
type Announcer interface {
	// Announce makes the announced prefixes exactly these.
	Announce([]netip.Prefix) error
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
// block, and when the plugin starts. The driver hands the announcer the
// prefixes under d.mu; the announcer and the routes do the rest outside
// it.
func (d *Driver) SyncBGP() {
	if d.announcer == nil {
		return
	}
	d.mu.Lock()
	d.announcer.Want(d.announcements())
	d.mu.Unlock()
	if err := d.announcer.Flush(); err != nil {
		d.log.WithError(err).Warn("BGP: announce this host's prefixes")
	}
	if err := d.routes.ResyncLearned(); err != nil {
		d.log.WithError(err).Warn("BGP: routes learned from the peers")
	}
}

// announcements are the prefixes the host announces: the blocks it holds
// of its networks with cluster_routes=bgp, and the subnets of those with
// announce=true. The caller holds d.mu.
func (d *Driver) announcements() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range d.networks {
		if n.Options.ClusterRoutes != clusterRoutesBGP {
			continue
		}
		for _, p := range n.pools() {
			for _, b := range d.cfg.Book.Blocks(p.PoolID) {
				out = append(out, b.Prefix.Masked())
			}
		}
	}
	for _, n := range d.networks {
		if n.Options.Announce {
			for _, p := range n.pools() {
				out = append(out, p.Prefix.Masked())
			}
		}
	}
	return out
}
