package driver

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver/bridge"
	"github.com/dualstack-net/dualstack/firewall"
)

// bridgePlane is the bridge mode: a Linux bridge per network, a veth pair
// per endpoint.
type bridgePlane struct{}

// Link name prefixes of the bridge mode: default bridge names, and the host
// and container sides of endpoint veth pairs.
const (
	bridgePrefix   = "ds-"
	hostVethPrefix = "dsv"
	peerVethPrefix = "dsc"
)

func (bridgePlane) checkFree(n *network, others map[string]*network) error {
	for _, o := range others {
		if o.Options.Mode == ModeBridge && o.Options.Bridge == n.Options.Bridge {
			return fmt.Errorf("bridge %s is already used by network %s: choose another name with -o bridge=NAME", n.Options.Bridge, short(o.ID))
		}
	}
	if _, err := netlink.LinkByName(n.Options.Bridge); err == nil {
		return fmt.Errorf("a link named %s already exists on the host: choose another bridge name with -o bridge=NAME", n.Options.Bridge)
	}
	return nil
}

// bridgeConfig is the bridge of n. adopt takes an unmarked bridge of that
// name (made before dualstack marked its links).
func bridgeConfig(n *network, adopt bool) bridge.Config {
	return bridge.Config{Name: n.Options.Bridge, MTU: n.Options.MTU, Gateways: bridgeGateways(n), Owner: networkOwner(n), Adopt: adopt}
}

// bridgeGateways lists the addresses the bridge holds: a cluster
// network's (routed) bridge holds the gateways of its blocks in place of
// Docker's; an isolated family (gateway mode isolated) has none, not even
// a --gateway the user gave.
func bridgeGateways(n *network) []netip.Prefix {
	if n.Options.Cluster != "" {
		return n.blockGateways
	}
	var out []netip.Prefix
	for _, g := range n.gateways() {
		if !n.Options.gatewayMode(g.Addr().Is6()).isolated {
			out = append(out, g)
		}
	}
	return out
}

// routed: the host routes to a bridge's containers; a cluster network's
// blocks are routed between the hosts.
func (bridgePlane) routed(*network) bool { return true }

// define: a routed cluster network's packet filter options are the same
// on every host; its gateways are its blocks', each host's own.
func (bridgePlane) define(n *network, def *cluster.Definition) {
	def.Options["icc"] = fmt.Sprint(!n.Options.NoICC)
	def.Options["ip_masquerade"] = fmt.Sprint(!n.Options.NoMasquerade)
	def.Options["ipv6_mode"] = n.Options.IPv6Mode
}

// putGateways puts the gateways of n's blocks on its bridge.
func (bridgePlane) putGateways(n *network) error {
	if _, err := bridge.Ensure(bridgeConfig(n, false)); err != nil {
		return fmt.Errorf("network %s: put the gateways of its blocks on bridge %s: %w", short(n.ID), n.Options.Bridge, err)
	}
	return nil
}

func (bridgePlane) owners(n *network) []string { return []string{networkOwner(n)} }

// prepare gives back the gateway addresses the IPAM picked itself for an
// isolated family, which has no gateway (Engine 20.10 reserves them; a
// current engine asks GwAllocCheck first and does not). Otherwise the
// bridge holds the gateways Docker gives.
func (bridgePlane) prepare(n *network, ipam *addrbook.Book) error {
	var isolated [][]pool
	if n.Options.gatewayMode(false).isolated {
		isolated = append(isolated, n.V4)
	}
	if n.Options.gatewayMode(true).isolated {
		isolated = append(isolated, n.V6)
	}
	return dropAutoGateways(ipam, isolated...)
}

// filter is what the firewall needs to know of n.
func (bridgePlane) filter(n *network) (firewall.Network, bool) {
	fn := firewall.Network{
		Bridge:      n.Options.Bridge,
		Internal:    n.Options.Internal,
		ICC:         !n.Options.NoICC,
		Masquerade4: !n.Options.NoMasquerade,
		NAT6:        n.Options.IPv6Mode == IPv6ModeNAT,
		Cluster:     n.Options.Cluster != "",
		OnLink:      n.Options.NDPProxy,
	}
	gatewayFilter(n.Options, &fn)
	for _, p := range n.pools() {
		fn.Subnets = append(fn.Subnets, p.Prefix)
	}
	return fn, true
}

// forwards: a network that is not internal routes its families through
// the host.
func (bridgePlane) forwards(n *network) (v4, v6 bool) {
	if n.Options.Internal {
		return false, false
	}
	return len(n.V4) > 0, len(n.V6) > 0
}

// publishes: containers of a network that is not internal publish ports
// through the host's packet filter.
func (bridgePlane) publishes(n *network) bool { return !n.Options.Internal }

// lan: a bridge network shares no host interface's network, but an
// ndp_proxy network takes part of its interface's on-link prefix.
func (bridgePlane) lan(n *network) string { return n.Options.NDPProxy }

func (bridgePlane) describe(n *network, log logrus.FieldLogger) logrus.FieldLogger {
	log = log.WithField("bridge", n.Options.Bridge)
	for k, v := range map[string]string{optGwMode4: n.Options.GatewayMode4, optGwMode6: n.Options.GatewayMode6, optTrusted: n.Options.Trusted} {
		if v != "" {
			log = log.WithField(k, v)
		}
	}
	if n.Options.NDPProxy != "" {
		log = log.WithField("ndp_proxy", n.Options.NDPProxy)
	}
	if n.Options.Delegated != "" {
		log = log.WithField("delegated_prefix", n.Options.Delegated).WithField("subnet_id", n.DelegatedID)
	}
	return log
}

// open sets route_localnet, which ports published on 127.0.0.1 need, on
// networks that may publish IPv4 ports: only once the firewall drops what
// comes from the bridge for 127.0.0.0/8.
func (bridgePlane) open(n *network) error {
	if n.Options.Internal || len(n.V4) == 0 {
		return nil
	}
	if err := bridge.SetRouteLocalnet(n.Options.Bridge); err != nil {
		return err
	}
	return nil
}

func (bridgePlane) createNetwork(n *network, _ map[string]*network) (func(), error) {
	created, err := bridge.Ensure(bridgeConfig(n, false))
	undo := func() {
		if created {
			_ = bridge.Delete(n.Options.Bridge, networkOwner(n))
		}
	}
	if err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

func (bridgePlane) deleteNetwork(n *network, _ map[string]*network) error {
	if err := bridge.Delete(n.Options.Bridge, networkOwner(n)); err != nil {
		return err
	}
	return nil
}

func (bridgePlane) restoreNetwork(n *network, adopt bool) error {
	_, err := bridge.Ensure(bridgeConfig(n, adopt))
	return err
}

// restoreEndpoint puts the host side of ep's veth back on the bridge, as a
// bridge deleted and created again has no ports, and brings it up. A veth
// that is gone (after a reboot) is left to Docker, which deletes the
// endpoint; one already in place costs no netlink call (a start with
// hundreds of endpoints checks them all).
func (bridgePlane) restoreEndpoint(n *network, ep *endpoint, host hostLinks, adopt bool) error {
	link, ok := host[ep.HostVeth]
	if !ok {
		return nil
	}
	if err := claim(link, "veth", endpointOwner(ep), adopt); err != nil {
		return err
	}
	br, ok := host[n.Options.Bridge]
	if !ok {
		return fmt.Errorf("bridge %s is missing", n.Options.Bridge)
	}
	attached := link.Attrs().MasterIndex == br.Attrs().Index
	if attached && link.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if !attached {
		if err := netlink.LinkSetMaster(link, br); err != nil {
			return fmt.Errorf("attach %s to %s: %w", ep.HostVeth, n.Options.Bridge, err)
		}
		if err := netlink.LinkSetHairpin(link, n.Options.Hairpin); err != nil {
			return fmt.Errorf("hairpin on %s: %w", ep.HostVeth, err)
		}
		if err := netlink.LinkSetIsolated(link, n.Options.NoICC); err != nil {
			return fmt.Errorf("isolation (icc) on %s: %w", ep.HostVeth, err)
		}
	}
	return netlink.LinkSetUp(link)
}

func (bridgePlane) createEndpoint(n *network, ep *endpoint) error {
	ep.HostVeth = hostVethPrefix + short(ep.ID)
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("bad MAC address %q for endpoint %s", ep.MAC, short(ep.ID))
	}
	err = bridge.CreateVeth(bridge.VethConfig{
		HostName: ep.HostVeth,
		PeerName: ep.PeerVeth,
		Bridge:   n.Options.Bridge,
		MTU:      n.Options.MTU,
		Hairpin:  n.Options.Hairpin,
		Isolated: n.Options.NoICC,
		MAC:      mac,
		Owner:    endpointOwner(ep),
	})
	if err != nil {
		return err
	}
	return nil
}

func (bridgePlane) deleteEndpoint(_ *network, ep *endpoint) error {
	if err := bridge.DeleteVeth(ep.HostVeth, endpointOwner(ep)); err != nil {
		return err
	}
	return nil
}
