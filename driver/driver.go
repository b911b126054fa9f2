// Package driver is dualstack's network driver (docker.networkdriver/1.0).
//
// A network is a Linux bridge holding the IPv4 gateway and the gateway of
// every IPv6 subnet; an endpoint is a veth pair whose container side gets
// Docker's addresses plus, from dualstack's IPAM, one address from every
// other IPv6 subnet of the network, all without duplicate address
// detection. Every network and endpoint is committed to the state file
// before the driver answers, and the kernel is reconciled with that state
// when the plugin starts.
//
// The data plane sits behind the dataplane interface: bridge today, macvlan
// next.
package driver

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/dualstack-net/dualstack/driver/firewall"
	"github.com/dualstack-net/dualstack/driver/portmap"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
)

// Addresses is the part of dualstack's IPAM the network driver uses for the
// extra IPv6 addresses.
type Addresses interface {
	PoolFor(space string, prefix netip.Prefix) (string, bool)
	AllocateFor(poolID, owner string) (netip.Prefix, error)
	Release(poolID string, addr netip.Addr) error
	// ReleaseAutoGateway frees the gateway the IPAM picked for a pool.
	ReleaseAutoGateway(poolID string) (netip.Addr, bool, error)
	// Allocations lists a pool's addresses and their owners.
	Allocations(poolID string) map[netip.Addr]string
	// AllocateEach and ReleaseEach do several pools in one commit, which
	// also holds the changes of with (the endpoint's own record).
	AllocateEach(poolIDs []string, owner string, with func(tx *bolt.Tx, addrs []netip.Prefix) error) ([]netip.Prefix, error)
	ReleaseEach(addrs map[string][]netip.Addr, with func(tx *bolt.Tx) error) error
}

// Config configures a Driver.
type Config struct {
	DB   *bolt.DB
	IPAM Addresses
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
}

// Firewall programs the packet filter (see driver/firewall).
type Firewall interface {
	// Apply makes dualstack's rules those of the state, atomically per
	// family; with no network it removes them all.
	Apply(firewall.State) error
}

// Driver implements api.Driver. It is safe for concurrent use.
type Driver struct {
	cfg       Config
	log       logrus.FieldLogger
	planes    map[string]dataplane // by mode
	mu        sync.Mutex
	networks  map[string]*network
	endpoints map[string]*endpoint
	joins     *joins
	sandboxes *sandboxkey.Resolver
	filter    filterSync
	// opened: the firewall guards the networks, and forwarding and
	// route_localnet are on where they need them (guardThenOpen).
	opened bool
	// links is the host's links while reconcile runs (listed once).
	links hostLinks
	// reserved holds the host ports each endpoint publishes.
	reserved map[string][]*portmap.Reservation
}

var _ api.Driver = (*Driver)(nil)

// New loads the driver's state, reconciles the kernel with it and returns
// the driver, ready to serve.
func New(cfg Config) (*Driver, error) {
	d := &Driver{
		cfg:       cfg,
		log:       cfg.Log,
		networks:  map[string]*network{},
		endpoints: map[string]*endpoint{},
		joins:     newJoins(),
		reserved:  map[string][]*portmap.Reservation{},
	}
	d.planes = map[string]dataplane{ModeBridge: bridgePlane{}, ModeMacvlan: macvlanPlane{d}}
	if d.log == nil {
		d.log = logrus.StandardLogger()
	}
	if d.sandboxes = cfg.Sandboxes; d.sandboxes == nil {
		d.sandboxes = sandboxkey.New(sandboxkey.Config{})
	}
	if err := load(cfg.DB, bucketNetworks, d.log, func(id string, n *network) {
		if n.ID != id {
			d.log.WithField("network", id).Warn("skipping network record with a mismatched ID")
			return
		}
		d.networks[id] = n
	}); err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	if err := load(cfg.DB, bucketEndpoints, d.log, func(id string, ep *endpoint) {
		if ep.ID != id || d.networks[ep.NetworkID] == nil {
			d.log.WithField("endpoint", id).Warn("skipping endpoint record of an unknown network")
			return
		}
		d.endpoints[id] = ep
	}); err != nil {
		return nil, fmt.Errorf("load endpoints: %w", err)
	}
	d.reconcile()
	return d, nil
}

// GetCapabilities reports a local-scope driver.
func (d *Driver) GetCapabilities() (*api.CapabilitiesResponse, error) {
	return &api.CapabilitiesResponse{Scope: api.LocalScope, ConnectivityScope: api.LocalScope}, nil
}

// CreateNetwork creates the bridge with its gateways and records the
// network; on any failure nothing is left behind.
func (d *Driver) CreateNetwork(req *api.CreateNetworkRequest) error {
	if req.NetworkID == "" {
		return errors.New("CreateNetwork without a network ID")
	}
	opts, err := parseOptions(req.NetworkID, req.Options)
	if err != nil {
		return err
	}
	n := &network{ID: req.NetworkID, Options: opts}
	if opts.IPv4 {
		if n.V4, err = parsePools(req.IPv4Data, true); err != nil {
			return err
		}
	}
	if opts.IPv6 {
		if n.V6, err = parsePools(req.IPv6Data, false); err != nil {
			return err
		}
	}
	if len(n.V4) == 0 && len(n.V6) == 0 {
		return errors.New("dualstack: the network has no subnet: give it an IPv4 or an IPv6 subnet")
	}
	if len(n.V4) > 1 {
		return fmt.Errorf("dualstack: the network has %d IPv4 subnets: a network takes one (and any number of IPv6 subnets)", len(n.V4))
	}
	for i := range n.V4 {
		n.V4[i].PoolID, _ = d.cfg.IPAM.PoolFor(n.V4[i].Space, n.V4[i].Prefix)
	}
	var foreign []string
	for i := range n.V6 {
		if id, ok := d.cfg.IPAM.PoolFor(n.V6[i].Space, n.V6[i].Prefix); ok {
			n.V6[i].PoolID = id
		} else {
			foreign = append(foreign, n.V6[i].Prefix.String())
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.networks[n.ID]; ok {
		return fmt.Errorf("dualstack: network %s exists already", n.ID)
	}
	for _, other := range d.networks {
		if opts.Mode == ModeBridge && other.Options.Mode == ModeBridge && other.Options.Bridge == opts.Bridge {
			return fmt.Errorf("dualstack: bridge %s is already used by network %.12s: choose another name with -o bridge=NAME", opts.Bridge, other.ID)
		}
	}
	plane := d.planes[opts.Mode]
	if err := plane.checkFree(n); err != nil {
		return err
	}
	if opts.Mode == ModeMacvlan {
		if err := d.dropAutoGateways(n); err != nil {
			return err
		}
		if opts.HostLink {
			if err := d.allocateShim(n); err != nil {
				d.releaseShim(n)
				return err
			}
		}
	}
	undo, err := plane.createNetwork(n)
	if err != nil {
		d.releaseShim(n)
		return err
	}
	// The firewall guards the network before anything lets traffic in:
	// forwarding, route_localnet.
	d.networks[n.ID] = n
	forward4, forward6 := forwards(n)
	if err := d.applyFirewall(d.forwardDrop(forward4, forward6)); err != nil {
		delete(d.networks, n.ID)
		undo()
		d.releaseShim(n)
		return err
	}
	undoAll := func() {
		delete(d.networks, n.ID)
		if err := d.applyFirewall(nil); err != nil {
			d.log.WithField("network", short(n.ID)).WithError(err).Warn("remove the rules of a network whose creation failed (the periodic check tries again)")
		}
		undo()
		d.releaseShim(n)
	}
	if err := d.enableForwarding(forward4, forward6, nil); err != nil {
		undoAll()
		return err
	}
	if err := plane.open(n); err != nil {
		undoAll()
		return err
	}
	if err := save(d.cfg.DB, "network "+n.ID, func(tx *bolt.Tx) error { return put(tx, bucketNetworks, n.ID, n) }); err != nil {
		undoAll()
		return err
	}
	log := d.log.WithField("network", short(n.ID)).WithField("mode", opts.Mode).WithField("subnets", n.subnets())
	if opts.Mode == ModeBridge {
		log = log.WithField("bridge", opts.Bridge)
	} else {
		log = log.WithField("parent", opts.Parent).WithField("macvlan_mode", opts.MacvlanMode).WithField("gateways", prefixes(n.gateways()))
	}
	if len(foreign) > 0 {
		log = log.WithField("extra-subnets-without-addresses", strings.Join(foreign, ","))
		log.Warn("network created; another IPAM driver holds some IPv6 subnets, so containers get no address of their own in them (use --ipam-driver dualstack:latest)")
	} else {
		log.Info("network created")
	}
	return nil
}

// parsePools reads Docker's IPAM data of one family, sorted by subnet:
// Docker builds the list from a map, so its order means nothing.
func parsePools(data []*api.IPAMData, v4 bool) ([]pool, error) {
	var out []pool
	for _, d := range data {
		if d == nil {
			continue
		}
		p, err := netip.ParsePrefix(d.Pool)
		if err != nil || p.Addr().Is4() != v4 {
			return nil, fmt.Errorf("dualstack: bad pool %q from Docker", d.Pool)
		}
		pl := pool{Space: d.AddressSpace, Prefix: p.Masked()}
		if d.Gateway != "" {
			g, err := parseAddrOrPrefix(d.Gateway, p.Bits())
			if err != nil || !p.Contains(g.Addr()) {
				return nil, fmt.Errorf("dualstack: bad gateway %q for pool %s", d.Gateway, p)
			}
			pl.Gateway = g
		}
		out = append(out, pl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.Addr().Less(out[j].Prefix.Addr()) })
	return out, nil
}

func parseAddrOrPrefix(s string, bits int) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, bits), nil
}

func (n *network) subnets() string {
	var s []string
	for _, p := range n.pools() {
		s = append(s, p.Prefix.String())
	}
	return strings.Join(s, ",")
}

// DeleteNetwork removes the bridge and the record. A network that is not
// known, or a bridge that is gone, is success.
func (d *Driver) DeleteNetwork(req *api.DeleteNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		return nil
	}
	for _, ep := range d.endpoints {
		if ep.NetworkID == n.ID {
			if err := d.deleteEndpoint(ep); err != nil {
				return err
			}
		}
	}
	if err := d.planes[n.Options.Mode].deleteNetwork(n); err != nil {
		return err
	}
	delete(d.networks, n.ID)
	if err := d.applyFirewall(nil); err != nil {
		d.networks[n.ID] = n
		return err
	}
	if err := save(d.cfg.DB, "network "+n.ID, func(tx *bolt.Tx) error { return del(tx, bucketNetworks, n.ID) }); err != nil {
		d.networks[n.ID] = n
		return err
	}
	d.releaseShim(n)
	d.log.WithField("network", short(n.ID)).Info("network deleted")
	return nil
}

// AllocateNetwork is a swarm call; dualstack networks are local.
func (d *Driver) AllocateNetwork(*api.AllocateNetworkRequest) (*api.AllocateNetworkResponse, error) {
	return nil, errors.New("dualstack networks are local: swarm-scoped networks are not supported")
}

// FreeNetwork succeeds: nothing is allocated by AllocateNetwork.
func (d *Driver) FreeNetwork(*api.FreeNetworkRequest) error { return nil }

// CreateEndpoint creates the veth pair, fills the interface fields Docker
// left empty, allocates the extra IPv6 addresses and records the endpoint.
func (d *Driver) CreateEndpoint(req *api.CreateEndpointRequest) (*api.CreateEndpointResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		return nil, fmt.Errorf("dualstack: network %s is unknown to the plugin (was its state file removed?): recreate the network", short(req.NetworkID))
	}
	if old, ok := d.endpoints[req.EndpointID]; ok {
		// A retry after a crash lost the answer: start again cleanly.
		if err := d.deleteEndpoint(old); err != nil {
			return nil, err
		}
	}
	in := req.Interface
	if in == nil {
		in = &api.EndpointInterface{}
	}
	ep := &endpoint{
		ID:        req.EndpointID,
		NetworkID: n.ID,
		PeerVeth:  peerVethPrefix + short(req.EndpointID),
		MAC:       in.MacAddress,
	}
	if n.Options.Mode == ModeBridge {
		ep.HostVeth = hostVethPrefix + short(req.EndpointID)
	}
	resp := &api.CreateEndpointResponse{Interface: &api.EndpointInterface{}}
	if ep.MAC == "" {
		ep.MAC = randomMAC().String()
		resp.Interface.MacAddress = ep.MAC
	}
	var err error
	if ep.IPv4, err = optionalPrefix(in.Address); err != nil {
		return nil, fmt.Errorf("dualstack: bad IPv4 address %q from Docker", in.Address)
	}
	if ep.IPv6, err = optionalPrefix(in.AddressIPv6); err != nil {
		return nil, fmt.Errorf("dualstack: bad IPv6 address %q from Docker", in.AddressIPv6)
	}
	if ep.Ports, err = portmap.Parse(req.Options); err != nil {
		return nil, fmt.Errorf("dualstack: endpoint %s: %w", short(ep.ID), err)
	}
	owner := "endpoint:" + ep.ID
	rollback := func() { d.releaseAll(ep) }
	// The address Docker gave none of, when dualstack's IPAM holds the pool.
	if !ep.IPv4.IsValid() && len(n.V4) > 0 && n.V4[0].PoolID != "" {
		if ep.IPv4, err = d.cfg.IPAM.AllocateFor(n.V4[0].PoolID, owner); err != nil {
			return nil, err
		}
		ep.Allocated = append(ep.Allocated, extraAddr{PoolID: n.V4[0].PoolID, Addr: ep.IPv4})
		resp.Interface.Address = ep.IPv4.String()
	}
	if !ep.IPv6.IsValid() && len(n.V6) > 0 && n.V6[0].PoolID != "" {
		if ep.IPv6, err = d.cfg.IPAM.AllocateFor(n.V6[0].PoolID, owner); err != nil {
			rollback()
			return nil, err
		}
		ep.Allocated = append(ep.Allocated, extraAddr{PoolID: n.V6[0].PoolID, Addr: ep.IPv6})
		resp.Interface.AddressIPv6 = ep.IPv6.String()
	}
	plane := d.planes[n.Options.Mode]
	if err := plane.createEndpoint(n, ep); err != nil {
		rollback()
		return nil, err
	}
	// One address from every other IPv6 pool, committed together with the
	// endpoint's record: one commit for the lot.
	var extraPools []string
	for _, p := range n.V6 {
		if p.PoolID != "" && !(ep.IPv6.IsValid() && p.Prefix.Contains(ep.IPv6.Addr())) {
			extraPools = append(extraPools, p.PoolID)
		}
	}
	record := func(tx *bolt.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) }
	if len(extraPools) > 0 {
		_, err = d.cfg.IPAM.AllocateEach(extraPools, owner, func(tx *bolt.Tx, extra []netip.Prefix) error {
			ep.Extra = ep.Extra[:0]
			for i, a := range extra {
				ep.Extra = append(ep.Extra, extraAddr{PoolID: extraPools[i], Addr: a})
			}
			return record(tx)
		})
		if err != nil {
			// Not ours to release: the IPAM took them back.
			ep.Extra = nil
			err = fmt.Errorf("dualstack: extra IPv6 addresses for endpoint %s: %w", short(ep.ID), err)
		}
	} else {
		err = save(d.cfg.DB, "endpoint "+ep.ID, record)
	}
	if err != nil {
		_ = plane.deleteEndpoint(n, ep)
		rollback()
		return nil, err
	}
	d.endpoints[ep.ID] = ep
	d.log.WithField("endpoint", short(ep.ID)).WithField("network", short(n.ID)).WithField("addresses", prefixes(ep.addresses())).Info("endpoint created")
	return resp, nil
}

func optionalPrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	return netip.ParsePrefix(s)
}

// allocated lists, by pool, the addresses dualstack allocated for ep.
func (ep *endpoint) allocated() map[string][]netip.Addr {
	addrs := map[string][]netip.Addr{}
	for _, x := range append(append([]extraAddr{}, ep.Allocated...), ep.Extra...) {
		addrs[x.PoolID] = append(addrs[x.PoolID], x.Addr.Addr())
	}
	return addrs
}

// releaseAll gives back every address dualstack allocated for ep.
func (d *Driver) releaseAll(ep *endpoint) {
	if err := d.cfg.IPAM.ReleaseEach(ep.allocated(), nil); err != nil {
		d.log.WithField("endpoint", short(ep.ID)).Warnf("release %s: %v", prefixes(ep.addresses()), err)
	}
}

// DeleteEndpoint removes the veth pair, releases the extra addresses and
// forgets the endpoint. An unknown endpoint or a missing link is success.
func (d *Driver) DeleteEndpoint(req *api.DeleteEndpointRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[req.EndpointID]
	if !ok {
		return nil
	}
	return d.deleteEndpoint(ep)
}

func (d *Driver) deleteEndpoint(ep *endpoint) error {
	d.joins.cancel(ep.ID)
	if err := d.unpublish(ep); err != nil {
		return err
	}
	mode := ModeBridge
	if n := d.networks[ep.NetworkID]; n != nil {
		mode = n.Options.Mode
	}
	if err := d.planes[mode].deleteEndpoint(d.networks[ep.NetworkID], ep); err != nil {
		return err
	}
	// The record and the addresses dualstack allocated go in one commit.
	if err := d.cfg.IPAM.ReleaseEach(ep.allocated(), func(tx *bolt.Tx) error { return del(tx, bucketEndpoints, ep.ID) }); err != nil {
		return fmt.Errorf("dualstack: forget endpoint %s: %w", short(ep.ID), err)
	}
	delete(d.endpoints, ep.ID)
	d.log.WithField("endpoint", short(ep.ID)).Info("endpoint deleted")
	return nil
}

// EndpointInfo reports the veth names, the MAC and every address.
func (d *Driver) EndpointInfo(req *api.InfoRequest) (*api.InfoResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[req.EndpointID]
	if !ok {
		return &api.InfoResponse{Value: map[string]string{}}, nil
	}
	return &api.InfoResponse{Value: map[string]string{
		"host_veth":      ep.HostVeth,
		"container_veth": ep.PeerVeth,
		"mac_address":    ep.MAC,
		"addresses":      prefixes(ep.addresses()),
	}}, nil
}

// Join answers with the interface to move into the container and the
// gateways, and arranges the container-side work (see joins).
func (d *Driver) Join(req *api.JoinRequest) (*api.JoinResponse, error) {
	return d.JoinFrom(0, req)
}

// JoinFrom is Join from the process pid (dockerd, as the plugin's socket
// tells it; 0 when not known), in whose mount namespace the SandboxKey is.
func (d *Driver) JoinFrom(pid int, req *api.JoinRequest) (*api.JoinResponse, error) {
	ns, err := d.sandboxes.Resolve(req.SandboxKey, pid)
	if err != nil {
		return nil, fmt.Errorf("dualstack: endpoint %s: %w", short(req.EndpointID), err)
	}
	d.mu.Lock()
	ep, ok := d.endpoints[req.EndpointID]
	var n *network
	if ok {
		n = d.networks[ep.NetworkID]
	}
	if !ok || n == nil {
		d.mu.Unlock()
		return nil, fmt.Errorf("dualstack: endpoint %s is unknown to the plugin: remove and recreate the container's connection", short(req.EndpointID))
	}
	err = d.recordJoin(n, ep, req.SandboxKey)
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := d.joins.start(d.log, ns, n, ep); err != nil {
		d.mu.Lock()
		_ = d.recordLeave(ep)
		d.mu.Unlock()
		return nil, err
	}
	resp := &api.JoinResponse{InterfaceName: api.InterfaceName{SrcName: ep.PeerVeth, DstPrefix: "eth"}}
	if !n.Options.Internal {
		if len(n.V4) > 0 && n.V4[0].Gateway.IsValid() && ep.IPv4.IsValid() {
			resp.Gateway = n.V4[0].Gateway.Addr().String()
		}
		for _, p := range n.V6 {
			if ep.IPv6.IsValid() && p.Prefix.Contains(ep.IPv6.Addr()) && p.Gateway.IsValid() {
				resp.GatewayIPv6 = p.Gateway.Addr().String()
			}
		}
	}
	return resp, nil
}

// recordJoin records that ep joined the container of sandbox, so that a
// restarted plugin can finish the container side of the join, and
// publishes ep's ports for that container. A retried Join of the same
// container keeps what is published.
func (d *Driver) recordJoin(n *network, ep *endpoint, sandbox string) error {
	if ep.Sandbox == sandbox && (len(ep.Published) > 0 || len(ep.Ports) == 0) {
		return nil
	}
	if err := d.unpublish(ep); err != nil {
		return err
	}
	if err := d.publish(n, ep, sandbox); err != nil {
		return err
	}
	ep.Sandbox = sandbox
	if err := save(d.cfg.DB, "endpoint "+ep.ID, func(tx *bolt.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) }); err != nil {
		_ = d.unpublish(ep)
		return err
	}
	if len(ep.Published) > 0 {
		d.log.WithField("endpoint", short(ep.ID)).WithField("ports", publishedString(ep.Published)).Info("ports published")
	}
	return nil
}

// recordLeave revokes ep's ports and records that it left its container.
func (d *Driver) recordLeave(ep *endpoint) error {
	if len(ep.Published) == 0 {
		// Docker deletes the endpoint right after: that commit forgets
		// the sandbox too. (A crash between the two leaves a join to
		// resume whose container never comes back: its wait times out.)
		ep.Sandbox = ""
		return nil
	}
	if err := d.unpublish(ep); err != nil {
		return err
	}
	return save(d.cfg.DB, "endpoint "+ep.ID, func(tx *bolt.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) })
}

func publishedString(ports []firewall.Port) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Leave stops the container-side work of a join that has not finished and
// revokes the ports the endpoint published.
func (d *Driver) Leave(req *api.LeaveRequest) error {
	d.joins.cancel(req.EndpointID)
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep, ok := d.endpoints[req.EndpointID]; ok {
		return d.recordLeave(ep)
	}
	return nil
}

// DiscoverNew ignores discovery events.
func (d *Driver) DiscoverNew(*api.DiscoveryNotification) error { return nil }

// DiscoverDelete ignores discovery events.
func (d *Driver) DiscoverDelete(*api.DiscoveryNotification) error { return nil }

// ProgramExternalConnectivity is the first call Docker makes after it moved
// the gateway endpoint's interface into the container, and it makes it
// before the container's process starts: it returns once the container
// side of every pending join of that container is complete.
func (d *Driver) ProgramExternalConnectivity(req *api.ProgramExternalConnectivityRequest) error {
	return d.joins.wait(req.EndpointID)
}

// RevokeExternalConnectivity has nothing to revoke yet.
func (d *Driver) RevokeExternalConnectivity(*api.RevokeExternalConnectivityRequest) error {
	return nil
}

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

// randomMAC returns a random, locally administered unicast MAC address.
func randomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}
