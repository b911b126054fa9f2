package routes

import (
	"net/netip"
	"slices"
	"sync"

	"github.com/sirupsen/logrus"
)

// Keeper keeps the host's routes to the other hosts' blocks of cluster
// networks: host-gw routes (HostGW) from the blocks the cluster store
// reports, and the routes BGP learned (Learned), each made from the last
// report it was given and the host's networks as the network driver last
// handed them over (SetNetworks). It computes the wanted routes of each
// protocol and hands them to its Table.
//
// Locks: hostGW.mu and learned.mu are each held while their routes change,
// and taken before the Table's; nets.mu is a leaf, held only to copy the
// networks in or out, so that the driver may hand them over with its own
// lock held. The Keeper never calls the driver: what it reads besides
// (the IPAM's blocks, Docker's bridges) it reads through the functions of
// KeeperOptions, which take no lock of the driver's.
type Keeper struct {
	table *Table
	log   logrus.FieldLogger
	// blocks and hostNets are KeeperOptions.Blocks and HostNets.
	blocks   func(pool string) []netip.Prefix
	hostNets func() ([]netip.Prefix, error)

	nets struct {
		mu   sync.Mutex // a leaf: held to copy list
		list []Network
	}
	hostGW struct {
		mu     sync.Mutex // held while the host-gw routes change
		self   string
		blocks []HostBlock
		known  bool
		// via are the addresses each host had when the store last gave
		// them.
		via map[string][]netip.Addr
	}
	learned struct {
		mu     sync.Mutex // held while the learned routes change
		routes map[netip.Prefix]netip.Addr
		known  bool
	}
}

// Network is one of the host's networks as the routes see it.
type Network struct {
	// Cluster names the cluster network; "" for a local network.
	Cluster string
	// HostGW: routes to the other hosts' blocks come from the cluster
	// store (cluster_routes=host-gw); BGP: from the routes BGP learned,
	// and the host's blocks are announced (cluster_routes=bgp).
	HostGW, BGP bool
	// Local: the network's containers sit behind the host, which routes
	// to them (a bridge), so no route of dualstack's goes into its
	// subnets (in a cluster network, into the blocks the host holds) and
	// no next hop lies inside them.
	Local   bool
	Subnets []Subnet
}

// Subnet is a subnet of a network and the IPAM pool that holds it ("" for
// another IPAM driver's).
type Subnet struct {
	Prefix netip.Prefix
	Pool   string
}

// HostBlock is a block of a cluster network held by a host, as the
// cluster store reports it, with the host's addresses (CLUSTER_ADDRESS).
type HostBlock struct {
	Network string
	Prefix  netip.Prefix
	Node    string
	Via     []netip.Addr
}

// KeeperOptions are what a Keeper is made with.
type KeeperOptions struct {
	// Log gets the Keeper's warnings; its Table logs with the field
	// driver=routes.
	Log logrus.FieldLogger
	// Blocks lists the blocks the host holds of a cluster network's
	// pool, read at each use: they change as the IPAM leases and loses
	// them. May be nil.
	Blocks func(pool string) []netip.Prefix
	// HostNets lists the host's container networks that are not
	// dualstack's (Docker's bridges). May be nil.
	HostNets func() ([]netip.Prefix, error)
	// kernel is the Table's (tests).
	kernel kernel
}

// NewKeeper returns a Keeper that knows no network, no block and no
// learned route yet.
func NewKeeper(o KeeperOptions) *Keeper {
	if o.Log == nil {
		o.Log = logrus.StandardLogger()
	}
	k := &Keeper{log: o.Log, blocks: o.Blocks, hostNets: o.HostNets}
	k.table = New(Options{Log: o.Log.WithField("driver", "routes"), ContainerNets: k.ContainerNets, kernel: o.kernel})
	return k
}

// SetNetworks hands over the host's networks as they are now. The caller
// orders its calls (the driver, under its lock); nothing is routed here:
// the next sync of each protocol uses them.
func (k *Keeper) SetNetworks(nets []Network) {
	list := make([]Network, len(nets))
	for i, n := range nets {
		n.Subnets = slices.Clone(n.Subnets)
		list[i] = n
	}
	k.nets.mu.Lock()
	k.nets.list = list
	k.nets.mu.Unlock()
}

// networks returns the networks last handed over (not to be changed).
func (k *Keeper) networks() []Network {
	k.nets.mu.Lock()
	defer k.nets.mu.Unlock()
	return k.nets.list
}

// ContainerNets are the host's container networks, where no route of
// dualstack's goes and no next hop lies: the subnets of dualstack's local
// networks (in a cluster network, the blocks the host holds: the others'
// are routed), and the host's other container networks (HostNets).
// Networks on a LAN (macvlan) are none: routers are there.
func (k *Keeper) ContainerNets() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range k.networks() {
		if !n.Local {
			continue
		}
		for _, s := range n.Subnets {
			if n.Cluster == "" {
				out = append(out, s.Prefix.Masked())
				continue
			}
			if k.blocks == nil {
				continue
			}
			for _, b := range k.blocks(s.Pool) {
				out = append(out, b.Masked())
			}
		}
	}
	if k.hostNets == nil {
		return out
	}
	docker, err := k.hostNets()
	if err != nil {
		k.log.WithError(err).Warn("routes: Docker's bridges not known, next hops inside them not refused")
	}
	return append(out, docker...)
}

// Installed returns proto's routes the Keeper installed.
func (k *Keeper) Installed(proto Protocol) map[netip.Prefix]Hop { return k.table.Installed(proto) }
