// Package driver is dualstack's network driver (docker.networkdriver/1.0).
//
// A network is a mode's data plane (dataplane.go): a Linux bridge holding
// the gateways of every subnet, with a veth pair per endpoint
// (bridgeplane.go), or a parent's LAN, with a macvlan child per endpoint
// (macvlanplane.go). An endpoint's container side gets Docker's addresses
// plus, from dualstack's IPAM, one address from every other IPv6 subnet of
// the network, all without duplicate address detection (join.go). Every
// network and endpoint is committed to the state file before the driver
// answers (network.go, endpoint.go, store.go), and the kernel and the
// firewall are reconciled with that state when the plugin starts
// (reconcile.go, filter.go).
package driver

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver/portmap"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/ndp"
	"github.com/dualstack-net/dualstack/routes"
	"github.com/dualstack-net/dualstack/state"
)

// Config configures a Driver.
type Config struct {
	DB state.Store
	// Book is the address book, shared with the IPAM driver: the pools,
	// the extra IPv6 addresses, the endpoints' claims.
	Book *addrbook.Book
	Log  logrus.FieldLogger
	// UplinkAcceptRA lets the driver set accept_ra=2 on host interfaces
	// whose accept_ra is 1 when it turns IPv6 forwarding on.
	UplinkAcceptRA bool
	// Sandboxes finds the container network namespaces Docker names by
	// SandboxKey; nil takes keys as the plugin's own paths.
	Sandboxes *sandboxkey.Resolver
	// Firewall programs the packet filter; nil leaves it alone.
	Firewall Firewall
	// ForwardDrop sets filter FORWARD's policy to DROP in a family when
	// the driver turns forwarding on there, as Docker does
	// (FORWARD_DROP).
	ForwardDrop bool
	// Cluster is the cluster store (CLUSTER_STORE); nil: this host is in
	// no cluster, and networks with -o cluster are refused.
	Cluster ClusterStore
	// BGP announces the host's prefixes (BGP_ASN); nil: BGP does not
	// run, and networks that need it are refused, with BGPOff as the
	// reason when the settings are wrong.
	BGP    Announcer
	BGPOff error
	// Screens probe the links of ndp_proxy networks, shared with the IPAM
	// driver; nil makes the driver's own.
	Screens *ndp.Screens
	// Delegations are the DHCPv6 prefix-delegation clients of
	// delegated_prefix networks; nil: such networks are refused.
	Delegations Delegations
	// StateDir, when set, is where the driver writes the delegated
	// prefixes' status file (PrefixStatusFile).
	StateDir string
	// JoinFailed, when set, hears of every join that failed, Join's own
	// work or the container side after it, with its cause (the metrics'
	// dualstack_join_failures_total); nil: nobody.
	JoinFailed func(JoinCause)
}

// Firewall programs the packet filter (see package firewall).
type Firewall interface {
	// Apply makes dualstack's rules those of the state, atomically per
	// family; with no network it removes them all.
	Apply(firewall.State) error
	// Repair is Apply, and reports the families whose rules it changed.
	Repair(firewall.State) ([]firewall.Family, error)
	// Follow calls sync on the calling goroutine whenever the host's
	// rules change by another hand, at least every every, and soon again
	// after a sync that failed, until ctx is done; watchFailed says when
	// it falls back to comparing the rules periodically.
	Follow(ctx context.Context, every time.Duration, sync func() error, watchFailed func(error))
}

// Driver implements api.Driver. It is safe for concurrent use.
type Driver struct {
	// routes keeps the host-gw and learned routes of cluster networks;
	// the driver hands it its networks (publishRoutes). Its locks are
	// its own.
	routes *routes.Keeper
	// announcer keeps what the host announces over BGP (nil: BGP does
	// not run); its locks are its own.
	announcer *bgp.Announcer
	cfg       Config
	log       logrus.FieldLogger
	planes    map[string]dataplane // by mode
	mu        sync.Mutex
	networks  map[string]*network
	endpoints map[string]*endpoint
	joins     *joins
	sandboxes *sandboxkey.Resolver
	// filter orders the firewall's applies; its lock is its own, a leaf.
	filter *firewall.Order
	// opened: the firewall guards the networks, and forwarding and
	// route_localnet are on where they need them (guardThenOpen).
	opened bool
	// dropped are the families whose forwarding dualstack turned on with
	// FORWARD policy DROP (recorded): the policy is DROP again at every
	// apply while dualstack has networks.
	dropped map[firewall.Family]bool
	// links is the host's links while reconcile runs (listed once).
	links hostLinks
	// reserved holds the host ports each endpoint publishes.
	reserved map[string][]*portmap.Reservation
	// leases are the delegated_prefix uplinks' leases as the driver took
	// them up last (renumber.go).
	leases map[string]delegation.Lease
	// leaseMu guards the uplinks whose leases changed since followLeases
	// took them up, and the channel that wakes it (nil once closed); a
	// leaf.
	leaseMu      sync.Mutex
	leaseDirty   map[source]bool
	leaseChanged chan struct{}
	// onLink are the on-link /64s of the links ndp_proxy networks answer
	// on, as the host's addresses had them last (ndprenumber.go), and
	// onLinkStop stops the watch of each link's addresses.
	onLink     map[string][]ndp.Timed
	onLinkStop map[string]chan struct{}
	// ra follows the routers of the parents of networks that learn their
	// IPv6 gateway from advertisements (ragateway.go); its locks are its
	// own.
	ra *raGateways
}

var _ api.Driver = (*Driver)(nil)

// New loads the driver's state, reconciles the kernel with it and returns
// the driver, ready to serve.
func New(cfg Config) (*Driver, error) {
	return newWith(cfg, map[string]dataplane{ModeBridge: bridgePlane{}, ModeMacvlan: macvlanPlane{}})
}

// newWith is New with the given data planes (tests fake the kernel
// behind them).
func newWith(cfg Config, planes map[string]dataplane) (*Driver, error) {
	d := &Driver{
		planes:       planes,
		cfg:          cfg,
		log:          cfg.Log,
		networks:     map[string]*network{},
		endpoints:    map[string]*endpoint{},
		joins:        newJoins(),
		reserved:     map[string][]*portmap.Reservation{},
		filter:       &firewall.Order{},
		leases:       map[string]delegation.Lease{},
		leaseDirty:   map[source]bool{},
		onLink:       map[string][]ndp.Timed{},
		onLinkStop:   map[string]chan struct{}{},
		leaseChanged: make(chan struct{}, 1),
	}
	d.joins.configured = d.joinGlobals
	d.joins.failed = cfg.JoinFailed
	wake := d.leaseChanged
	netns.Go(func() { d.followLeases(wake) })
	if err := cfg.DB.View(func(tx state.Tx) error {
		_, err := get(tx, bucketMeta, keyForwardDrop, &d.dropped)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read the families whose FORWARD policy dualstack set: %w", err)
	}
	if d.log == nil {
		d.log = logrus.StandardLogger()
	}
	d.ra = newRAGateways(d.log)
	if d.cfg.Screens == nil {
		d.cfg.Screens = ndp.NewScreens(d.log)
	}
	d.cfg.Screens.OnFound(d.onLinkFound)
	d.routes = routes.NewKeeper(routes.KeeperOptions{Log: d.log, Blocks: d.blocksOf, HostNets: kernel.ContainerBridgeNets})
	if cfg.BGP != nil {
		d.announcer = bgp.NewAnnouncer(cfg.BGP)
	}
	if d.sandboxes = cfg.Sandboxes; d.sandboxes == nil {
		d.sandboxes = sandboxkey.New(sandboxkey.Config{})
	}
	if err := load(cfg.DB, bucketNetworks, d.log, func(id string, n *network) {
		if n.ID != id {
			d.log.WithField("network", id).Warn("skipping network record with a mismatched ID")
			return
		}
		d.refreshBlocks(n)
		d.networks[id] = n
		d.cfg.Book.Attach(n.ID, n.poolIDs())
	}); err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	if err := load(cfg.DB, bucketEndpoints, d.log, func(id string, ep *endpoint) {
		if ep.ID != id || d.networks[ep.NetworkID] == nil {
			d.log.WithField("endpoint", id).Warn("skipping endpoint record of an unknown network")
			return
		}
		d.endpoints[id] = ep
		d.cfg.Book.Claim(ep.claim())
	}); err != nil {
		return nil, fmt.Errorf("load endpoints: %w", err)
	}
	d.publishRoutes()
	d.reconcile()
	return d, nil
}

// GetCapabilities reports a local-scope driver.
func (d *Driver) GetCapabilities() (*api.CapabilitiesResponse, error) {
	return &api.CapabilitiesResponse{Scope: api.LocalScope, ConnectivityScope: api.LocalScope}, nil
}

// DiscoverNew ignores discovery events.
func (d *Driver) DiscoverNew(*api.DiscoveryNotification) error { return nil }

// DiscoverDelete ignores discovery events.
func (d *Driver) DiscoverDelete(*api.DiscoveryNotification) error { return nil }

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func prefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
