package driver

import (
	"fmt"

	"net"
	"net/netip"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver/bridge"
	"github.com/dualstack-net/dualstack/driver/macvlan"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/kernel"
)

// macvlanPlane is the macvlan mode: containers appear on the parent
// interface's LAN, each with a macvlan child of the parent; the router is
// outside the host. The host reaches the network through a shim interface
// (host_link=true), as a parent cannot talk to its own children.
type macvlanPlane struct{}

// shimPrefix names host shims: dsh + 12 characters of the network ID;
// isolatedPrefix an internal network's own parent: dsi + the same.
const (
	shimPrefix     = "dsh"
	isolatedPrefix = "dsi"
)

func shimName(n *network) string { return shimPrefix + short(n.ID) }

// parentOf is the link n's children hang from: the parent the user gave,
// or, for an internal network, a bridge of the network's own without any
// port: its containers reach each other through it, and nothing else (as
// Docker's own internal macvlan does with a dummy link, which not every
// kernel has).
func parentOf(n *network) string {
	if n.Options.Internal {
		return isolatedPrefix + short(n.ID)
	}
	return n.Options.Parent
}

// sharing lists the other networks on n's parent.
func sharing(n *network, others map[string]*network) []*network {
	var out []*network
	for _, o := range others {
		if o.ID != n.ID && o.Options.Mode == ModeMacvlan && parentOf(o) == parentOf(n) {
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
		return false, false, fmt.Errorf("parent %s does not exist on the host: give an existing interface (ip link), or IF.VLAN for an 802.1q sub-interface dualstack creates", parent)
	}
	return true, true, nil
}

// removeParent reports whether the network going away is the last one on
// a parent that dualstack created.
func removeParent(n *network, sharing []*network) bool {
	return n.CreatedParent && len(sharing) == 0
}

// checkParent refuses a parent whose "LAN" is no LAN for containers: the
// loopback, one of dualstack's own links, the bridge of a Docker network
// (checkBridgeParent), or a port of a bridge (the bridge itself is the
// LAN's interface then).
func checkParent(name string) error {
	l, err := netlink.LinkByName(name)
	if links.NotFound(err) {
		if base, _, ok := macvlan.VLAN(name); ok {
			return checkParent(base) // an IF.VID dualstack creates on IF
		}
		return nil // refused later: it does not exist
	}
	if err != nil {
		return fmt.Errorf("look up parent %s: %w", name, err)
	}
	a := l.Attrs()
	switch {
	case a.Flags&net.FlagLoopback != 0 || l.Type() == "loopback":
		return fmt.Errorf("parent %s is the loopback interface: no LAN is behind it; give the interface of the LAN the containers join (ip link)", name)
	case links.Owner(l) != "":
		return fmt.Errorf("parent %s is one of dualstack's own links (%s): give the interface of the LAN the containers join", name, links.Owner(l))
	case l.Type() == "bridge" && kernel.DockerBridgeName(name):
		return fmt.Errorf("parent %s is the bridge of a Docker network: its containers' network is no LAN of the host's; give the interface of a LAN", name)
	case l.Type() == "bridge":
		all, err := kernel.Links()
		if err != nil {
			return fmt.Errorf("list the ports of parent %s: %w", name, err)
		}
		return checkBridgeParent(name, kernel.PortsOf(l, all))
	case a.MasterIndex != 0:
		master := fmt.Sprint(a.MasterIndex)
		if m, err := netlink.LinkByIndex(a.MasterIndex); err == nil {
			master = m.Attrs().Name
		}
		return fmt.Errorf("parent %s is a port of %s: its LAN's interface is %s; give that as the parent", name, master, master)
	}
	return nil
}

// checkBridgeParent refuses as a parent a bridge (name, with its ports)
// with no port but veths: the bridge of a Docker network, whatever its
// name (-o com.docker.network.bridge.name), or of dualstack's, has only
// containers' veths as ports, or none at all, and no LAN behind it; a
// bridge that is a host's LAN interface (br0 over eth0) has a port of
// another kind: a physical interface, a bond, a VLAN, a tunnel. The shape
// of the bridge is what tells, not the names in Docker's rules, which
// differ with Docker's version and firewall backend (iptables or
// nftables) and are absent with --iptables=false. The price: a LAN
// bridge whose only uplink is a veth (a host made of namespaces) is
// refused too.
func checkBridgeParent(name string, ports []netlink.Link) error {
	veths, only := kernel.VethPorts(ports)
	if !only {
		return nil
	}
	what := "no port"
	if len(veths) > 0 {
		what = "no port but veths (" + strings.Join(veths, ", ") + ")"
	}
	return fmt.Errorf("parent %s is a bridge with %s, as the bridge of a Docker network is, whatever its name: its containers' network is no LAN of the host's; give the interface of a LAN (a physical interface, a bond, a VLAN, or a bridge with one of those as a port)", name, what)
}

func (macvlanPlane) checkFree(n *network, others map[string]*network) error {
	if !n.Options.Internal {
		if err := checkParent(n.Options.Parent); err != nil {
			return err
		}
	}
	for _, o := range sharing(n, others) {
		if o.Options.MacvlanMode == "passthru" || n.Options.MacvlanMode == "passthru" {
			return fmt.Errorf("parent %s is used by network %s (macvlan_mode=%s): passthru takes the whole parent, so no other network can share it; choose another parent", n.Options.Parent, short(o.ID), o.Options.MacvlanMode)
		}
	}
	if len(n.V4) > 1 {
		return nil // reported by CreateNetwork
	}
	if _, err := netlink.LinkByName(shimName(n)); n.Options.HostLink && err == nil {
		return fmt.Errorf("a link named %s already exists on the host: remove it", shimName(n))
	}
	return nil
}

func (p macvlanPlane) createNetwork(n *network, others map[string]*network) (func(), error) {
	if n.Options.Internal {
		created, err := bridge.Ensure(isolatedParent(n))
		if err != nil {
			return nil, fmt.Errorf("the internal network's own parent: %w", err)
		}
		return func() {
			if created {
				_ = bridge.Delete(parentOf(n), isolatedOwner(n))
			}
		}, nil
	}
	exists, err := macvlan.Exists(n.Options.Parent)
	if err != nil {
		return nil, err
	}
	create, owned, err := planParent(n.Options.Parent, exists, sharing(n, others))
	if err != nil {
		return nil, err
	}
	if create {
		if err := macvlan.CreateVLAN(n.Options.Parent, parentOwner(n.Options.Parent)); err != nil {
			return nil, err
		}
	}
	n.CreatedParent = owned
	undo := func() {
		if create {
			_ = macvlan.DeleteVLAN(n.Options.Parent, parentOwner(n.Options.Parent))
		}
	}
	if n.Options.HostLink {
		if err := macvlan.EnsureShim(p.shim(n, false)); err != nil {
			undo()
			return nil, err
		}
		parentUndo := undo
		undo = func() { _ = macvlan.DeleteShim(shimName(n), hostLinkOwner(n)); parentUndo() }
	}
	return undo, nil
}

// shim is n's host link: its addresses and routes to every subnet. adopt
// takes an unmarked link of its name (made before dualstack marked its
// links).
func (p macvlanPlane) shim(n *network, adopt bool) macvlan.Shim {
	s := macvlan.Shim{Name: shimName(n), Parent: n.Options.Parent, Owner: hostLinkOwner(n), Adopt: adopt}
	for _, a := range n.ShimAddrs {
		s.Addrs = append(s.Addrs, a.Addr)
	}
	for _, pl := range n.pools() {
		s.Routes = append(s.Routes, pl.Prefix)
	}
	return s
}

// isolatedParent is an internal network's own parent: a bridge with no
// port and no address.
func isolatedParent(n *network) bridge.Config {
	return bridge.Config{Name: parentOf(n), Owner: isolatedOwner(n), Portless: true}
}

func isolatedOwner(n *network) string { return "isolated-parent:" + n.ID }

func (macvlanPlane) deleteNetwork(n *network, others map[string]*network) error {
	if n.Options.Internal {
		if err := bridge.Delete(parentOf(n), isolatedOwner(n)); err != nil {
			return err
		}
		return nil
	}
	if err := macvlan.DeleteShim(shimName(n), hostLinkOwner(n)); err != nil {
		return err
	}
	if removeParent(n, sharing(n, others)) {
		if err := macvlan.DeleteVLAN(n.Options.Parent, parentOwner(n.Options.Parent)); err != nil {
			return err
		}
	}
	return nil
}

func (p macvlanPlane) restoreNetwork(n *network, adopt bool) error {
	if n.Options.Internal {
		_, err := bridge.Ensure(isolatedParent(n))
		return err
	}
	parent, err := netlink.LinkByName(n.Options.Parent)
	switch {
	case links.NotFound(err):
		if !n.CreatedParent {
			return fmt.Errorf("parent %s is gone from the host: containers on the network cannot start until it is back", n.Options.Parent)
		}
		if err := macvlan.CreateVLAN(n.Options.Parent, parentOwner(n.Options.Parent)); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("look up parent %s: %w", n.Options.Parent, err)
	case n.CreatedParent:
		if err := claim(parent, "vlan", parentOwner(n.Options.Parent), adopt); err != nil {
			return err
		}
	}
	if n.Options.HostLink {
		return macvlan.EnsureShim(p.shim(n, adopt))
	}
	return nil
}

// restoreEndpoint has nothing to do: a child lives in its container.
func (macvlanPlane) restoreEndpoint(*network, *endpoint, hostLinks, bool) error { return nil }

// open has nothing to do: macvlan traffic never crosses the host's filter.
func (macvlanPlane) open(*network) error { return nil }

// filter: macvlan traffic never crosses the host's packet filter.
func (macvlanPlane) filter(*network) (firewall.Network, bool) { return firewall.Network{}, false }

// forwards: the router is outside the host.
func (macvlanPlane) forwards(*network) (v4, v6 bool) { return false, false }

// publishes: containers are on the LAN themselves, as with Docker's
// macvlan.
func (macvlanPlane) publishes(*network) bool { return false }

// lan: the parent's network is the containers' own; an internal network
// has none.
// routed: a macvlan network's containers are on the parent's LAN, whose
// router is outside the host; a cluster network's blocks are ranges of
// that LAN.
func (macvlanPlane) routed(*network) bool { return false }

// define: a LAN's gateway is its router, the same for every host.
func (macvlanPlane) define(n *network, def *cluster.Definition) {
	for _, p := range n.pools() {
		if p.Gateway.IsValid() {
			if def.Gateways == nil {
				def.Gateways = map[netip.Prefix]netip.Addr{}
			}
			def.Gateways[p.Prefix] = p.Gateway.Addr()
		}
	}
}

// putGateways has nothing to do: a LAN's blocks have no gateway of the
// host's.
func (macvlanPlane) putGateways(*network) error { return nil }

func (macvlanPlane) lan(n *network) string {
	if n.Options.Internal {
		return ""
	}
	return n.Options.Parent
}

func (macvlanPlane) describe(n *network, log logrus.FieldLogger) logrus.FieldLogger {
	return log.WithField("parent", parentOf(n)).WithField("macvlan_mode", n.Options.MacvlanMode).WithField("gateways", prefixes(n.gateways()))
}

func (macvlanPlane) createEndpoint(n *network, ep *endpoint) error {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("bad MAC address %q for endpoint %s", ep.MAC, short(ep.ID))
	}
	err = macvlan.CreateChild(macvlan.ChildConfig{Name: ep.PeerVeth, Parent: parentOf(n), Mode: n.Options.MacvlanMode, MTU: n.Options.MTU, MAC: mac, Owner: endpointOwner(ep)})
	if err != nil {
		return err
	}
	return nil
}

// deleteEndpoint deletes the child if it is still on the host; once in a
// container, it goes with the container's namespace.
func (macvlanPlane) deleteEndpoint(_ *network, ep *endpoint) error {
	if err := macvlan.DeleteChild(ep.PeerVeth, endpointOwner(ep)); err != nil {
		return err
	}
	return nil
}

func (macvlanPlane) owners(n *network) []string {
	var out []string
	if n.Options.Internal {
		out = append(out, isolatedOwner(n))
	}
	if n.Options.HostLink {
		out = append(out, hostLinkOwner(n))
	}
	if n.CreatedParent {
		out = append(out, parentOwner(n.Options.Parent))
	}
	return out
}

// prepare gives back the gateways the IPAM picked itself (the router is
// outside the host), and takes the host link's addresses.
func (macvlanPlane) prepare(n *network, ipam *addrbook.Book) error {
	if err := dropAutoGateways(ipam, n.V4, n.V6); err != nil {
		return err
	}
	if n.Options.HostLink {
		return allocateShim(n, ipam)
	}
	return nil
}

// dropAutoGateways gives back the gateway addresses dualstack's IPAM picked
// for the subnets of families (a network's V4, V6), and forgets them: on
// a macvlan network the router is outside the host, and an isolated
// family has no gateway; only a gateway the user named (--gateway) is
// kept.
func dropAutoGateways(ipam *addrbook.Book, families ...[]pool) error {
	for _, pools := range families {
		for i := range pools {
			if pools[i].PoolID == "" || !pools[i].Gateway.IsValid() {
				continue
			}
			a, released, err := ipam.ReleaseAutoGateway(pools[i].PoolID)
			if err != nil {
				return fmt.Errorf("give back the gateway address of %s: %w", pools[i].Prefix, err)
			}
			if released && a == pools[i].Gateway.Addr() {
				pools[i].Gateway = netip.Prefix{}
			}
		}
	}
	return nil
}

// allocateShim gives n's host link one address per family.
func allocateShim(n *network, book *addrbook.Book) error {
	owner := addrbook.HostLinkOwner(n.ID)
	for _, pools := range [][]pool{n.V4, n.V6} {
		if len(pools) == 0 {
			continue
		}
		if pools[0].PoolID == "" {
			return fmt.Errorf("host_link=true needs dualstack's IPAM for the shim's addresses (--ipam-driver %s)", "dualstack:latest")
		}
		a, err := book.Allocate(pools[0].PoolID, owner)
		if err != nil {
			return fmt.Errorf("address for the host link in %s: %w", pools[0].Prefix, err)
		}
		n.ShimAddrs = append(n.ShimAddrs, extraAddr{PoolID: pools[0].PoolID, Addr: a})
	}
	return nil
}

// releaseHeld gives back the addresses n holds besides its endpoints':
// its host link's and the host's own.
func (d *Driver) releaseHeld(n *network) {
	for _, a := range append(append([]extraAddr{}, n.ShimAddrs...), n.HostAddrs...) {
		if err := d.cfg.Book.Release(a.PoolID, a.Addr.Addr()); err != nil {
			d.log.WithField("network", short(n.ID)).WithError(err).Warnf("release %s", a.Addr)
		}
	}
}
