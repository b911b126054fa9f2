package driver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/routes"
)

// This file is the driver's part in cluster networks (-o cluster=NAME):
// one network across the hosts of a cluster store, each host's containers
// in blocks of the subnets it leases (the IPAM's cluster pools). A bridge
// cluster network is routed: the host's bridge holds a gateway per block,
// containers reach the other hosts' blocks through routes (host-gw: one
// per block, via the holder's CLUSTER_ADDRESS) with their own addresses.
// A macvlan cluster network is one LAN: its blocks are ranges, nothing to
// route.

// Values of cluster_routes.
const (
	clusterRoutesHostGW = cluster.RoutesHostGW
	clusterRoutesNone   = cluster.RoutesNone
)

// ClusterStore is the part of the cluster store the driver uses
// (cluster.Store).
type ClusterStore interface {
	// Define records the definition of cluster network name, or checks
	// def against the one recorded (a *cluster.MismatchError).
	Define(ctx context.Context, name string, def cluster.Definition) (cluster.Definition, error)
}

// defaultHostBlock is the length of a host's blocks in subnets of bits
// when the network does not say (host_block4, host_block6): in a routed
// (bridge) network a /26 of IPv4 (61 containers) and a /64 of IPv6 (a /80
// in a /64 or a longer subnet); in a LAN, small ranges: a /28 and a /120.
// Never shorter than the subnet.
func defaultHostBlock(bits int, v6, routed bool) int {
	want := 0
	switch {
	case !v6 && routed:
		want = 26
	case !v6:
		want = 28
	case routed && bits <= 56:
		want = 64
	case routed:
		want = 80
		if bits > 72 {
			want = min(bits+8, 124)
		}
	default:
		want = 120
	}
	return max(want, bits)
}

// hostBlocks returns the block lengths of n: the options', or the
// defaults for its longest subnet of each family; routed is its data
// plane's routed.
func hostBlocks(n *network, routed bool) (v4, v6 int) {
	v4, v6 = n.Options.HostBlock4, n.Options.HostBlock6
	for _, p := range n.V4 {
		if n.Options.HostBlock4 == 0 {
			v4 = max(v4, defaultHostBlock(p.Prefix.Bits(), false, routed))
		}
	}
	for _, p := range n.V6 {
		if n.Options.HostBlock6 == 0 {
			v6 = max(v6, defaultHostBlock(p.Prefix.Bits(), true, routed))
		}
	}
	if len(n.V4) == 0 {
		v4 = 0
	}
	if len(n.V6) == 0 {
		v6 = 0
	}
	return v4, v6
}

// definition is what n says of its cluster network, to be the same on
// every host.
func (d *Driver) definition(n *network) cluster.Definition {
	plane := d.plane(n)
	v4, v6 := hostBlocks(n, plane.routed(n))
	def := cluster.Definition{Mode: n.Options.Mode, HostBlock4: v4, HostBlock6: v6, Routes: n.Options.ClusterRoutes, Options: map[string]string{}}
	if def.Routes == "" {
		def.Routes = clusterRoutesNone
	}
	for _, p := range n.pools() {
		def.Subnets = append(def.Subnets, p.Prefix)
		if r, ok := d.cfg.Book.Range(p.PoolID); ok {
			if def.IPRanges == nil {
				def.IPRanges = map[netip.Prefix]netip.Prefix{}
			}
			def.IPRanges[p.Prefix] = r
		}
	}
	plane.define(n, &def)
	return def
}

// joinCluster records n's definition in the cluster store, or checks it
// against the one there, and makes n's pools cluster pools.
func (d *Driver) joinCluster(n *network) error {
	if n.Options.Cluster == "" {
		return nil
	}
	if d.cfg.Cluster == nil {
		return errors.New("cluster=" + n.Options.Cluster + ": this host has no cluster store: set it with `docker plugin set dualstack CLUSTER_STORE=http://ETCD:2379` (the plugin disabled), then create the network again")
	}
	for _, p := range n.pools() {
		if p.PoolID == "" {
			return fmt.Errorf("cluster=%s: subnet %s is held by another IPAM driver; a cluster network takes its addresses from dualstack's: add --ipam-driver dualstack:latest", n.Options.Cluster, p.Prefix)
		}
	}
	def := d.definition(n)
	if err := def.Validate(); err != nil {
		return fmt.Errorf("cluster=%s: %w", n.Options.Cluster, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := d.cfg.Cluster.Define(ctx, n.Options.Cluster, def); err != nil {
		return err
	}
	v4, v6 := def.HostBlock4, def.HostBlock6
	for _, p := range n.pools() {
		bits := v4
		if p.Prefix.Addr().Is6() {
			bits = v6
		}
		c := addrbook.ClusterPool{Network: n.Options.Cluster, Bits: bits, Routed: d.plane(n).routed(n)}
		if err := d.cfg.Book.JoinCluster(p.PoolID, c); err != nil {
			return err
		}
	}
	return nil
}

// DefineClusterNetworks confirms the definition of each of the host's
// cluster networks in the store, as the plugin starts: the store needs it
// to lease blocks, and puts back one that went with the last block of its
// network.
func (d *Driver) DefineClusterNetworks(ctx context.Context) error {
	if d.cfg.Cluster == nil {
		return nil
	}
	d.mu.Lock()
	defs := map[string]cluster.Definition{}
	for _, n := range d.networks {
		if n.Options.Cluster != "" {
			defs[n.Options.Cluster] = d.definition(n)
		}
	}
	d.mu.Unlock()
	var errs []error
	for name, def := range defs {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := d.cfg.Cluster.Define(ctx, name, def); err != nil {
			errs = append(errs, fmt.Errorf("cluster network %q: %w", name, err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// routed reports whether n is a routed cluster network (its data plane's
// routed): its bridge holds the gateways of its blocks instead of
// Docker's.
func (d *Driver) routed(n *network) bool {
	return n.Options.Cluster != "" && d.plane(n).routed(n)
}

// refreshBlocks reads the gateways of n's blocks from the IPAM: those it
// holds, and those it lost (the store gives them to another host now, or
// to none) that containers still have addresses in, whose default route
// goes through that gateway.
func (d *Driver) refreshBlocks(n *network) {
	if !d.routed(n) {
		return
	}
	var gws []netip.Prefix
	for _, p := range n.pools() {
		for _, b := range append(d.cfg.Book.Blocks(p.PoolID), d.cfg.Book.LostBlocks(p.PoolID)...) {
			if b.Gateway.IsValid() {
				gws = append(gws, netip.PrefixFrom(b.Gateway, b.Prefix.Bits()))
			}
		}
	}
	slices.SortFunc(gws, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	n.blockGateways = gws
}

// EndpointsIn describes the endpoints that have an address inside p, for
// the log of a block this host lost.
func (d *Driver) EndpointsIn(p netip.Prefix) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, ep := range d.endpoints {
		for _, a := range ep.addresses() {
			if p.Contains(a.Addr()) {
				out = append(out, fmt.Sprintf("endpoint %s (address %s, MAC %s, network %s)", ep.ID, a.Addr(), ep.MAC, short(ep.NetworkID)))
			}
		}
	}
	slices.Sort(out)
	return out
}

// syncBlockGateways puts the gateways of blocks n leased since on its
// links (the data plane's putGateways: the bridge): before a container joins, as its default route goes through its
// block's gateway.
func (d *Driver) syncBlockGateways(n *network) error {
	if !d.routed(n) {
		return nil
	}
	before := slices.Clone(n.blockGateways)
	d.refreshBlocks(n)
	if slices.Equal(before, n.blockGateways) {
		return nil
	}
	return d.plane(n).putGateways(n)
}

// blockGateway returns the gateway among gws (a network's blockGateways)
// of the block that holds a.
func blockGateway(gws []netip.Prefix, a netip.Addr) (netip.Addr, bool) {
	for _, g := range gws {
		if g.Masked().Contains(a) {
			return g.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// routesFollow makes the host's routes, and what it announces, follow
// network n, created or deleted: it hands the routes the networks as they
// are now (publishRoutes), then, on a goroutine of its own, has host-gw
// routes made again from the blocks the store reported last, and BGP
// announce the host's blocks or subnets. The caller holds d.mu.
func (d *Driver) routesFollow(n *network) {
	d.publishRoutes()
	switch {
	case n.Options.ClusterRoutes == clusterRoutesHostGW:
		go d.routes.ResyncHostGW()
	case n.Options.ClusterRoutes == clusterRoutesBGP || n.Options.Announce:
		go d.SyncBGP()
	}
}

// Routes is the keeper of the host's routes to the other hosts' blocks,
// for the loops that feed it what the cluster store and BGP report.
func (d *Driver) Routes() *routes.Keeper { return d.routes }

// publishRoutes hands the routes the host's networks as they are now; the
// caller holds d.mu (the keeper's lock taken here is a leaf).
func (d *Driver) publishRoutes() {
	nets := make([]routes.Network, 0, len(d.networks))
	for _, n := range d.networks {
		rn := routes.Network{
			Cluster: n.Options.Cluster,
			HostGW:  n.Options.ClusterRoutes == clusterRoutesHostGW,
			BGP:     n.Options.ClusterRoutes == clusterRoutesBGP,
			Local:   d.plane(n).routed(n),
		}
		for _, p := range n.pools() {
			rn.Subnets = append(rn.Subnets, routes.Subnet{Prefix: p.Prefix, Pool: p.PoolID})
		}
		nets = append(nets, rn)
	}
	d.routes.SetNetworks(nets)
}

// blocksOf lists the blocks the host holds of a cluster pool, for the
// routes.
func (d *Driver) blocksOf(pool string) []netip.Prefix {
	if d.cfg.Book == nil {
		return nil
	}
	var out []netip.Prefix
	for _, b := range d.cfg.Book.Blocks(pool) {
		out = append(out, b.Prefix)
	}
	return out
}
