package driver

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/ndp"
	"github.com/dualstack-net/dualstack/state"
)

// ndp_proxy networks (ndp.go has the mechanism): a bridge network whose
// IPv6 subnets are parts of a host interface's on-link prefix. The host
// answers on that interface for each running container's addresses
// (answer, silence), has the link probed for addresses other nodes hold
// (ndp.Screen, on the network's pools), routes those back to the link and
// answers for them on the bridge (onLinkFound), and keeps the
// interface's NDP sysctls as it found them in the state file
// (bucketNDPLinks), to put them back when its last such network goes.

// bucketNDPLinks holds, for each interface an ndp_proxy network answers
// on, its NDP sysctls as dualstack found them (ndp.Saved).
const bucketNDPLinks = "ndp-links"

// Screens are the screens that probe the links of ndp_proxy networks,
// for the IPAM driver to screen the pools it carves from them.
func (d *Driver) Screens() *ndp.Screens { return d.cfg.Screens }

// ndpNetworks lists the networks that answer on link, but skip.
func (d *Driver) ndpNetworks(link string, skip *network) []*network {
	return d.networksWhere(skip, func(n *network) bool { return n.Options.NDPProxy == link })
}

// networksWhere lists the networks for which match holds, but skip.
func (d *Driver) networksWhere(skip *network, match func(*network) bool) []*network {
	var out []*network
	for _, n := range d.networks {
		if n != skip && match(n) {
			out = append(out, n)
		}
	}
	return out
}

// checkNDP refuses an ndp_proxy network the link cannot serve: an
// interface that is missing or a container network's bridge; a subnet in
// none of its on-link prefixes, or as large as one; a subnet that
// overlaps another ndp_proxy network's.
func (d *Driver) checkNDP(n *network) error {
	link := n.Options.NDPProxy
	if link == "" {
		return nil
	}
	if err := checkUplink(optNDPProxy, link, "name the interface that holds the on-link IPv6 prefix (see ip -6 addr)"); err != nil {
		return err
	}
	onLink, err := ndp.OnLink(link)
	if err != nil {
		return err
	}
	for _, p := range n.V6 {
		if err := inOnLink(link, p.Prefix, onLink); err != nil {
			return err
		}
		for _, o := range d.networks {
			for _, q := range o.V6 {
				if o.Options.NDPProxy != "" && q.Prefix.Overlaps(p.Prefix) {
					return fmt.Errorf("ndp_proxy=%s: subnet %s overlaps subnet %s of network %s, which the host answers for on %s already: choose a subnet that does not overlap", link, p.Prefix, q.Prefix, short(o.ID), o.Options.NDPProxy)
				}
			}
		}
	}
	return nil
}

// inOnLink checks that subnet is a part of one of link's on-link
// prefixes, smaller than it.
func inOnLink(link string, subnet netip.Prefix, onLink []netip.Prefix) error {
	for _, q := range onLink {
		if !q.Contains(subnet.Addr()) || q.Bits() > subnet.Bits() {
			continue
		}
		if q.Bits() == subnet.Bits() {
			hint := q
			if q.Bits() < 80 {
				hint = netip.PrefixFrom(q.Addr(), 80)
				hint = netip.PrefixFrom(nextPrefix(hint), 80)
			}
			return fmt.Errorf("ndp_proxy=%s: subnet %s is the whole on-link prefix of %s, which the host keeps on %s: give a part of it, such as %s", link, subnet, link, link, hint)
		}
		return nil
	}
	have := "none"
	if len(onLink) > 0 {
		have = prefixes(onLink)
	}
	return fmt.Errorf("ndp_proxy=%s: subnet %s lies in no on-link prefix of %s (it has %s): give a subnet inside one, such as a /80 of its /64, or --ipam-opt ndp_proxy=%s for a free one", link, subnet, link, have, link)
}

// nextPrefix is the address just after p.
func nextPrefix(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As16()
	for i := p.Bits()/8 - 1; i >= 0; i-- {
		if a[i]++; a[i] != 0 {
			break
		}
	}
	return netip.AddrFrom16(a)
}

// ndpUp readies a new or restored ndp_proxy network n: the link's NDP
// sysctls (recorded as found, the first time), the bridge's (it answers
// for the link's nodes found in n's subnets), the screens on n's pools;
// with probe, the link probed ahead of n's first containers, and n's
// gateways checked against what answers (a new network).
func (d *Driver) ndpUp(n *network, probe bool) error {
	link := n.Options.NDPProxy
	if link == "" {
		return nil
	}
	if err := d.ndpLinkUp(link); err != nil {
		return err
	}
	d.onLinkUp(link)
	if err := ndp.Apply(n.Options.Bridge); err != nil {
		return err
	}
	screen := d.cfg.Screens.For(link)
	for _, p := range n.V6 {
		if p.PoolID == "" {
			continue
		}
		if err := d.cfg.Book.SetScreen(p.PoolID, screen); err != nil {
			return err
		}
		if !probe {
			continue
		}
		screen.Warm(p.Prefix.Addr().Next())
		if p.Gateway.IsValid() && screen.Taken(p.Gateway.Addr()) {
			return fmt.Errorf("ndp_proxy=%s: gateway %s of subnet %s is held by another node of %s's link: give --gateway an address of the subnet that is free", link, p.Gateway.Addr(), p.Prefix, link)
		}
		// What the probes found before the network existed (the IPAM's,
		// for its gateway) was reported to no network.
		for _, nb := range screen.Held(p.Prefix) {
			d.routeBack(n, p, nb.Addr, nb.MAC)
		}
	}
	return nil
}

// ndpLinkUp turns the kernel's NDP proxy on for link, recording the
// sysctls as it finds them unless a record exists already (the plugin
// restarted, or another network answers on link).
func (d *Driver) ndpLinkUp(link string) error {
	saved, found, err := d.ndpSaved(link)
	if err != nil {
		return err
	}
	if !found {
		if saved, err = ndp.Read(link); err != nil {
			return err
		}
		if err := save(d.cfg.DB, "NDP sysctls of "+link, func(tx state.Tx) error { return put(tx, bucketNDPLinks, link, saved) }); err != nil {
			return err
		}
	}
	if err := ndp.Apply(link); err != nil {
		return err
	}
	if !found {
		d.log.WithField("interface", link).WithField("found", fmt.Sprintf("%+v", saved)).Info("NDP proxy on (proxy_ndp=1, proxy_delay=0)")
	}
	return nil
}

// ndpDown undoes what n's answering put on the host: its proxy entries
// and routes back; and, when n was the last network answering on its
// link, the link's NDP sysctls as they were found.
func (d *Driver) ndpDown(n *network) error {
	link := n.Options.NDPProxy
	if link == "" {
		return nil
	}
	entries, err := ndp.Entries(link)
	if err != nil && !links.NotFound(err) {
		return err
	}
	entries = slices.DeleteFunc(entries, func(a netip.Addr) bool { return !ownsEntry(n, a) })
	if err := ndp.DelEntries(link, entries); err != nil {
		return err
	}
	for _, p := range n.V6 {
		back, err := ndp.RoutesBack(link, p.Prefix)
		if err != nil {
			return err
		}
		for _, a := range back {
			if err := ndp.DelRouteBack(link, a); err != nil {
				return err
			}
		}
		if p.PoolID != "" {
			_ = d.cfg.Book.SetScreen(p.PoolID, nil)
		}
	}
	if len(d.ndpNetworks(link, n)) > 0 {
		return nil
	}
	d.onLinkDown(link)
	return d.ndpLinkDown(link)
}

// ndpSaved reads link's NDP sysctls as recorded when first found.
func (d *Driver) ndpSaved(link string) (saved ndp.Saved, found bool, err error) {
	err = d.cfg.DB.View(func(tx state.Tx) error {
		found, err = get(tx, bucketNDPLinks, link, &saved)
		return err
	})
	return saved, found, err
}

// ndpLinkDown puts link's NDP sysctls back as recorded and forgets them.
func (d *Driver) ndpLinkDown(link string) error {
	saved, found, err := d.ndpSaved(link)
	if err != nil || !found {
		return err
	}
	if err := ndp.Restore(link, saved); err != nil && !linkGone(link) {
		return err
	}
	if err := save(d.cfg.DB, "NDP sysctls of "+link, func(tx state.Tx) error { return del(tx, bucketNDPLinks, link) }); err != nil {
		return err
	}
	d.log.WithField("interface", link).WithField("restored", fmt.Sprintf("%+v", saved)).Info("NDP proxy off: sysctls as they were found")
	return nil
}

func linkGone(name string) bool {
	_, err := netlink.LinkByName(name)
	return err != nil
}

// ndpAddrs lists ep's IPv6 addresses that n answers for on its link:
// those in its subnets, and those in its parts of the link's other /64s
// (ndprenumber.go).
func (d *Driver) ndpAddrs(n *network, ep *endpoint) []netip.Addr {
	var out []netip.Addr
	for _, a := range ep.addresses() {
		for _, p := range n.V6 {
			if p.Prefix.Contains(a.Addr()) {
				out = append(out, a.Addr())
			}
		}
	}
	for _, g := range d.globals(n, ep, time.Now()) {
		out = append(out, g.Prefix.Addr())
	}
	return out
}

// answer has the host answer on n's link for ep's addresses, and tells
// the link at once (an unsolicited advertisement, in the background).
func (d *Driver) answer(n *network, ep *endpoint) error {
	link := n.Options.NDPProxy
	addrs := d.ndpAddrs(n, ep)
	if link == "" || len(addrs) == 0 {
		return nil
	}
	if err := ndp.AddEntries(link, addrs); err != nil {
		return fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	netns.Go(func() {
		if err := ndp.Advertise(link, addrs); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).WithField("interface", link).WithError(err).Warn("advertise the endpoint's addresses on the link (the router learns them at its next solicitation)")
		}
	})
	return nil
}

// silence stops the host answering on n's link for ep's addresses.
func (d *Driver) silence(n *network, ep *endpoint) error {
	link := n.Options.NDPProxy
	if link == "" {
		return nil
	}
	if err := ndp.DelEntries(link, d.ndpAddrs(n, ep)); err != nil {
		return fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	return nil
}

// onLinkFound is told by a screen that another node of link holds addr.
// In each network answering on link whose subnet holds addr, the address
// is held for that node, so that no container gets it, routed back to
// the link, and answered for on the bridge, so that containers reach it.
func (d *Driver) onLinkFound(link string, addr netip.Addr, mac net.HardwareAddr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range d.ndpNetworks(link, nil) {
		for _, p := range n.V6 {
			if p.Prefix.Contains(addr) && p.PoolID != "" {
				d.routeBack(n, p, addr, mac)
			}
		}
	}
}

// routeBack holds addr of n's pool p for the node of n's link that holds
// it, and routes it back to the link.
func (d *Driver) routeBack(n *network, p pool, addr netip.Addr, mac net.HardwareAddr) {
	link := n.Options.NDPProxy
	log := d.log.WithField("network", short(n.ID)).WithField("interface", link).WithField("address", addr).WithField("mac", mac.String())
	if err := d.cfg.Book.Hold(p.PoolID, addr, addrbook.OnLinkOwner(link)); err != nil {
		log.WithField("holder", d.holder(addr)).WithError(err).Error("another node of the link holds an address the network has handed out: the two collide; remove that container, or the node's address")
		return
	}
	if err := ndp.RouteBack(link, addr); err != nil {
		log.WithError(err).Warn("route the address back to the link")
		return
	}
	if err := ndp.AddEntries(n.Options.Bridge, []netip.Addr{addr}); err != nil {
		log.WithError(err).Warn("answer for the address on the bridge")
		return
	}
	log.Info("address held by another node of the link: never handed out, routed to the link")
}

// ndpRestore puts back, at start, what the kernel lost of the ndp_proxy
// networks (after a reboot) or what changed while the plugin was down:
// sysctls, screens, the entries of the endpoints recorded (and no other
// entry in the networks' subnets), the routes back of the addresses held
// for the link's nodes.
func (d *Driver) ndpRestore() {
	for _, n := range d.networks {
		link := n.Options.NDPProxy
		if link == "" {
			continue
		}
		log := d.log.WithField("network", short(n.ID)).WithField("interface", link)
		if err := d.ndpUp(n, false); err != nil {
			log.WithError(err).Warn("restore the NDP proxy")
			continue
		}
		// A restarted plugin knows nothing of the link: the next
		// addresses are probed before a container asks for one.
		screen := d.cfg.Screens.For(link)
		for _, p := range n.V6 {
			if next, ok := d.cfg.Book.Next(p.PoolID); ok {
				netns.Go(func() { screen.Warm(next) })
			}
		}
		want := map[netip.Addr]bool{}
		for _, ep := range d.endpoints {
			if ep.NetworkID == n.ID {
				for _, a := range d.ndpAddrs(n, ep) {
					want[a] = true
				}
			}
		}
		d.ndpReconcile(n, want)
	}
}

// ndpReconcile makes n's proxy entries on its link those of want
// (ndpEntries), and routes back the addresses held for the link's nodes.
func (d *Driver) ndpReconcile(n *network, want map[netip.Addr]bool) {
	d.ndpEntries(n, want)
	for _, p := range n.V6 {
		for a, o := range d.cfg.Book.Allocations(p.PoolID) {
			if o.Kind == addrbook.OnLink {
				d.routeBack(n, p, a, nil)
			}
		}
	}
}

// ndpEntries makes the proxy entries on n's link that are n's (ownsEntry:
// in its subnets, or in its parts of the link's other /64s) those of
// want, and returns those it added.
func (d *Driver) ndpEntries(n *network, want map[netip.Addr]bool) []netip.Addr {
	link := n.Options.NDPProxy
	log := d.log.WithField("network", short(n.ID)).WithField("interface", link)
	have, err := ndp.Entries(link)
	if err != nil {
		log.WithError(err).Warn("list the proxy entries")
		return nil
	}
	var add, drop []netip.Addr
	for a := range want {
		if !slices.Contains(have, a) {
			add = append(add, a)
		}
	}
	for _, a := range have {
		if ownsEntry(n, a) && !want[a] {
			drop = append(drop, a)
		}
	}
	if err := ndp.DelEntries(link, drop); err != nil {
		log.WithError(err).Warn("remove stale proxy entries")
	}
	if err := ndp.AddEntries(link, add); err != nil {
		log.WithError(err).Warn("put the proxy entries back")
		return nil
	}
	if len(drop) > 0 {
		log.WithField("removed", len(drop)).Info("proxy entries of containers that are gone removed")
	}
	return add
}

// NDPLinks lists, sorted, the host interfaces that ndp_proxy networks
// answer on (the metrics count their proxy entries).
func (d *Driver) NDPLinks() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, n := range d.networks {
		if l := n.Options.NDPProxy; l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}
