package driver

import (
	"fmt"
	"net"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/driver/bridge"
)

// dataplane is what a network mode does in the kernel. The driver calls it
// with its lock held.
type dataplane interface {
	// checkFree fails if the network's links are taken by something else.
	checkFree(n *network) error
	// createNetwork builds the network; undo removes what it built.
	createNetwork(n *network) (undo func(), err error)
	deleteNetwork(n *network) error
	// restoreNetwork recreates what is missing of a recorded network.
	restoreNetwork(n *network) error
	// restoreEndpoint reconnects a recorded endpoint whose links still
	// exist; links is the host's links, listed after restoreNetwork.
	restoreEndpoint(n *network, ep *endpoint, links hostLinks) error
	createEndpoint(n *network, ep *endpoint) error
	deleteEndpoint(n *network, ep *endpoint) error
	// removeOrphans deletes the links of links the mode named that no
	// record claims.
	removeOrphans(networks map[string]*network, endpoints map[string]*endpoint, links hostLinks, log logrus.FieldLogger)
	// open turns on what lets traffic into the network that only the
	// firewall guards; the driver calls it once the firewall is in place.
	open(n *network) error
}

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

func (bridgePlane) checkFree(n *network) error {
	if _, err := netlink.LinkByName(n.Options.Bridge); err == nil {
		return fmt.Errorf("dualstack: a link named %s already exists on the host: choose another bridge name with -o bridge=NAME", n.Options.Bridge)
	}
	return nil
}

// bridgeConfig is the bridge of n.
func bridgeConfig(n *network) bridge.Config {
	return bridge.Config{Name: n.Options.Bridge, MTU: n.Options.MTU, Gateways: n.gateways()}
}

// open sets route_localnet, which ports published on 127.0.0.1 need, on
// networks that may publish IPv4 ports: only once the firewall drops what
// comes from the bridge for 127.0.0.0/8.
func (bridgePlane) open(n *network) error {
	if n.Options.Internal || len(n.V4) == 0 {
		return nil
	}
	if err := bridge.SetRouteLocalnet(n.Options.Bridge); err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	return nil
}

func (bridgePlane) createNetwork(n *network) (func(), error) {
	created, err := bridge.Ensure(bridgeConfig(n))
	undo := func() {
		if created {
			_ = bridge.Delete(n.Options.Bridge)
		}
	}
	if err != nil {
		undo()
		return nil, fmt.Errorf("dualstack: %w", err)
	}
	return undo, nil
}

func (bridgePlane) deleteNetwork(n *network) error {
	if err := bridge.Delete(n.Options.Bridge); err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	return nil
}

func (bridgePlane) restoreNetwork(n *network) error {
	_, err := bridge.Ensure(bridgeConfig(n))
	return err
}

// restoreEndpoint puts the host side of ep's veth back on the bridge, as a
// bridge deleted and created again has no ports, and brings it up. A veth
// that is gone (after a reboot) is left to Docker, which deletes the
// endpoint; one already in place costs no netlink call (a start with
// hundreds of endpoints checks them all).
func (bridgePlane) restoreEndpoint(n *network, ep *endpoint, links hostLinks) error {
	link, ok := links[ep.HostVeth]
	if !ok {
		return nil
	}
	br, ok := links[n.Options.Bridge]
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
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("dualstack: bad MAC address %q for endpoint %s", ep.MAC, short(ep.ID))
	}
	err = bridge.CreateVeth(bridge.VethConfig{
		HostName: ep.HostVeth,
		PeerName: ep.PeerVeth,
		Bridge:   n.Options.Bridge,
		MTU:      n.Options.MTU,
		Hairpin:  n.Options.Hairpin,
		Isolated: n.Options.NoICC,
		MAC:      mac,
	})
	if err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	return nil
}

func (bridgePlane) deleteEndpoint(_ *network, ep *endpoint) error {
	if err := bridge.DeleteVeth(ep.HostVeth); err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	return nil
}

func (bridgePlane) removeOrphans(networks map[string]*network, endpoints map[string]*endpoint, links hostLinks, log logrus.FieldLogger) {
	claimed := map[string]bool{}
	for _, n := range networks {
		if n.Options.Mode == ModeBridge {
			claimed[n.Options.Bridge] = true
		}
	}
	for _, ep := range endpoints {
		claimed[ep.HostVeth], claimed[ep.PeerVeth] = true, true
	}
	removeUnclaimed(links, claimed, log, func(l netlink.Link) func(string) error {
		name := l.Attrs().Name
		switch {
		case strings.HasPrefix(name, bridgePrefix) && l.Type() == "bridge":
			return bridge.Delete
		case (strings.HasPrefix(name, hostVethPrefix) || strings.HasPrefix(name, peerVethPrefix)) && l.Type() == "veth":
			return bridge.DeleteVeth
		}
		return nil
	})
}

// removeUnclaimed deletes, with the function deleter gives, every link
// of links deleter recognises as dualstack's that claimed does not name.
func removeUnclaimed(links hostLinks, claimed map[string]bool, log logrus.FieldLogger, deleter func(netlink.Link) func(string) error) {
	for name, l := range links {
		del := deleter(l)
		if claimed[name] || del == nil {
			continue
		}
		if err := del(name); err != nil {
			log.WithField("link", name).Warnf("remove orphan: %v", err)
		} else {
			log.WithField("link", name).Info("removed a link no network or endpoint claims")
		}
	}
}
