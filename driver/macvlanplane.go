package driver

import (
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/driver/macvlan"
)

// macvlanPlane is the macvlan mode: containers appear on the parent
// interface's LAN, each with a macvlan child of the parent; the router is
// outside the host. The host reaches the network through a shim interface
// (host_link=true), as a parent cannot talk to its own children.
type macvlanPlane struct{ d *Driver }

// shimPrefix names host shims: dsh + 12 characters of the network ID.
const shimPrefix = "dsh"

func shimName(n *network) string { return shimPrefix + short(n.ID) }

// sharing lists the other networks on n's parent.
func (p macvlanPlane) sharing(n *network) []*network {
	var out []*network
	for _, o := range p.d.networks {
		if o.ID != n.ID && o.Options.Mode == ModeMacvlan && o.Options.Parent == n.Options.Parent {
			out = append(out, o)
		}
	}
	return out
}

// planParent decides what a new network on parent needs: whether
// dualstack must create the parent (an IF.VID that does not exist yet) and
// whether the network then owns it with the others on it, so that the
// last of them to go removes it. A parent that exists and that no
// dualstack network created belongs to the host and is never removed.
func planParent(parent string, exists bool, sharing []*network) (create, owned bool, err error) {
	if exists {
		for _, o := range sharing {
			if o.CreatedParent {
				return false, true, nil
			}
		}
		return false, false, nil
	}
	if _, _, ok := macvlan.VLAN(parent); !ok {
		return false, false, fmt.Errorf("dualstack: parent %s does not exist on the host: give an existing interface (ip link), or IF.VLAN for an 802.1q sub-interface dualstack creates", parent)
	}
	return true, true, nil
}

// removeParent reports whether the network going away is the last one on
// a parent that dualstack created.
func removeParent(n *network, sharing []*network) bool {
	return n.CreatedParent && len(sharing) == 0
}

func (p macvlanPlane) checkFree(n *network) error {
	for _, o := range p.sharing(n) {
		if o.Options.MacvlanMode == "passthru" || n.Options.MacvlanMode == "passthru" {
			return fmt.Errorf("dualstack: parent %s is used by network %s (macvlan_mode=%s): passthru takes the whole parent, so no other network can share it; choose another parent", n.Options.Parent, short(o.ID), o.Options.MacvlanMode)
		}
	}
	if len(n.V4) > 1 {
		return nil // reported by CreateNetwork
	}
	if _, err := netlink.LinkByName(shimName(n)); n.Options.HostLink && err == nil {
		return fmt.Errorf("dualstack: a link named %s already exists on the host: remove it", shimName(n))
	}
	return nil
}

func (p macvlanPlane) createNetwork(n *network) (func(), error) {
	exists, err := macvlan.Exists(n.Options.Parent)
	if err != nil {
		return nil, fmt.Errorf("dualstack: %w", err)
	}
	create, owned, err := planParent(n.Options.Parent, exists, p.sharing(n))
	if err != nil {
		return nil, err
	}
	if create {
		if err := macvlan.CreateVLAN(n.Options.Parent); err != nil {
			return nil, fmt.Errorf("dualstack: %w", err)
		}
	}
	n.CreatedParent = owned
	undo := func() {
		if create {
			_ = macvlan.DeleteVLAN(n.Options.Parent)
		}
	}
	if n.Options.HostLink {
		if err := macvlan.EnsureShim(p.shim(n)); err != nil {
			undo()
			return nil, fmt.Errorf("dualstack: %w", err)
		}
		parentUndo := undo
		undo = func() { _ = macvlan.DeleteShim(shimName(n)); parentUndo() }
	}
	return undo, nil
}

// shim is n's host link: its addresses and routes to every subnet.
func (p macvlanPlane) shim(n *network) macvlan.Shim {
	s := macvlan.Shim{Name: shimName(n), Parent: n.Options.Parent}
	for _, a := range n.ShimAddrs {
		s.Addrs = append(s.Addrs, a.Addr)
	}
	for _, pl := range n.pools() {
		s.Routes = append(s.Routes, pl.Prefix)
	}
	return s
}

func (p macvlanPlane) deleteNetwork(n *network) error {
	if err := macvlan.DeleteShim(shimName(n)); err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	if removeParent(n, p.sharing(n)) {
		if err := macvlan.DeleteVLAN(n.Options.Parent); err != nil {
			return fmt.Errorf("dualstack: %w", err)
		}
	}
	return nil
}

func (p macvlanPlane) restoreNetwork(n *network) error {
	exists, err := macvlan.Exists(n.Options.Parent)
	if err != nil {
		return err
	}
	if !exists {
		if !n.CreatedParent {
			return fmt.Errorf("parent %s is gone from the host: containers on the network cannot start until it is back", n.Options.Parent)
		}
		if err := macvlan.CreateVLAN(n.Options.Parent); err != nil {
			return err
		}
	}
	if n.Options.HostLink {
		return macvlan.EnsureShim(p.shim(n))
	}
	return nil
}

// restoreEndpoint has nothing to do: a child lives in its container.
func (macvlanPlane) restoreEndpoint(*network, *endpoint, hostLinks) error { return nil }

// open has nothing to do: macvlan traffic never crosses the host's filter.
func (macvlanPlane) open(*network) error { return nil }

func (macvlanPlane) createEndpoint(n *network, ep *endpoint) error {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("dualstack: bad MAC address %q for endpoint %s", ep.MAC, short(ep.ID))
	}
	err = macvlan.CreateChild(macvlan.ChildConfig{Name: ep.PeerVeth, Parent: n.Options.Parent, Mode: n.Options.MacvlanMode, MTU: n.Options.MTU, MAC: mac})
	if err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	return nil
}

// deleteEndpoint deletes the child if it is still on the host; once in a
// container, it goes with the container's namespace.
func (macvlanPlane) deleteEndpoint(_ *network, ep *endpoint) error {
	if err := macvlan.DeleteChild(ep.PeerVeth); err != nil {
		return fmt.Errorf("dualstack: %w", err)
	}
	return nil
}

func (macvlanPlane) removeOrphans(networks map[string]*network, endpoints map[string]*endpoint, links hostLinks, log logrus.FieldLogger) {
	claimed := map[string]bool{}
	for _, n := range networks {
		if n.Options.Mode == ModeMacvlan && n.Options.HostLink {
			claimed[shimName(n)] = true
		}
	}
	for _, ep := range endpoints {
		claimed[ep.PeerVeth] = true
	}
	removeUnclaimed(links, claimed, log, func(l netlink.Link) func(string) error {
		name := l.Attrs().Name
		if l.Type() == "macvlan" && (strings.HasPrefix(name, shimPrefix) || strings.HasPrefix(name, peerVethPrefix)) {
			return macvlan.DeleteChild
		}
		return nil
	})
}

// dropAutoGateways gives back the gateway addresses dualstack's IPAM picked
// for n's subnets: on a macvlan network the router is outside the host,
// and only a gateway the user named (--gateway) exists.
func (d *Driver) dropAutoGateways(n *network) error {
	for _, pools := range [][]pool{n.V4, n.V6} {
		for i := range pools {
			if pools[i].PoolID == "" || !pools[i].Gateway.IsValid() {
				continue
			}
			a, released, err := d.cfg.IPAM.ReleaseAutoGateway(pools[i].PoolID)
			if err != nil {
				return fmt.Errorf("dualstack: give back the gateway address of %s: %w", pools[i].Prefix, err)
			}
			if released && a == pools[i].Gateway.Addr() {
				pools[i].Gateway = netip.Prefix{}
			}
		}
	}
	return nil
}

// allocateShim gives n's host link one address per family.
func (d *Driver) allocateShim(n *network) error {
	owner := "host-link:" + n.ID
	for _, pools := range [][]pool{n.V4, n.V6} {
		if len(pools) == 0 {
			continue
		}
		if pools[0].PoolID == "" {
			return fmt.Errorf("dualstack: host_link=true needs dualstack's IPAM for the shim's addresses (--ipam-driver %s)", "dualstack:latest")
		}
		a, err := d.cfg.IPAM.AllocateFor(pools[0].PoolID, owner)
		if err != nil {
			return fmt.Errorf("dualstack: address for the host link in %s: %w", pools[0].Prefix, err)
		}
		n.ShimAddrs = append(n.ShimAddrs, extraAddr{PoolID: pools[0].PoolID, Addr: a})
	}
	return nil
}

func (d *Driver) releaseShim(n *network) {
	for _, a := range n.ShimAddrs {
		if err := d.cfg.IPAM.Release(a.PoolID, a.Addr.Addr()); err != nil {
			d.log.WithField("network", short(n.ID)).Warnf("release host link address %s: %v", a.Addr, err)
		}
	}
}
