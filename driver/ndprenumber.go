package driver

import (
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/ndp"
)

// An ndp_proxy network follows its link's prefix as a delegated_prefix
// network follows its uplink's (renumber.go): when the provider
// renumbers the link (its router advertises a new /64, and the old one
// with a preferred lifetime of 0), each container gets an address in the
// new /64 with the host part of its address in the network's first IPv6
// subnet, in the subnet's place there (its "part", as long as the
// subnet), answered for on the link like the container's own; and the
// container's own addresses in the old /64 are deprecated once the
// host's are. The host's addresses on the link tell the /64s and their
// lifetimes (ndp.Prefixes); a watch of them (ndp.Watch) has the driver
// take them up again at each change, each router advertisement included.
//
// The network's subnets stay what Docker knows: the /64 that holds them
// is the network's home. Its own addresses there are never removed, only
// deprecated (their valid lifetimes stay infinite): the containers'
// default routes go through the gateway there.

// onLinkParts lists n's parts of its link's /64s other than its home.
func (d *Driver) onLinkParts(n *network, now time.Time) []timedPart {
	if len(n.V6) == 0 {
		return nil
	}
	home := n.V6[0].Prefix
	var out []timedPart
	for _, t := range d.onLink[n.Options.NDPProxy] {
		if t.Prefix.Contains(home.Addr()) || home.Bits() < 64 {
			continue
		}
		part := netip.PrefixFrom(withHost(t.Prefix, home.Addr()).Addr(), home.Bits())
		tp := timedPart{Part: part, Preferred: kernel.Forever, Valid: kernel.Forever,
			Prefix: delegation.Prefix{Prefix: t.Prefix, Preferred: t.Preferred, Valid: t.Valid}}
		if !t.Permanent {
			tp.Preferred, tp.Valid = max(t.Preferred.Sub(now), 0), t.Valid.Sub(now)
		}
		if tp.Valid > 0 {
			out = append(out, tp)
		}
	}
	return out
}

// homeDeprecated reports whether the host's addresses in n's home /64
// are deprecated: the provider renumbers the link.
func (d *Driver) homeDeprecated(n *network, now time.Time) bool {
	if n.Options.NDPProxy == "" || len(n.V6) == 0 {
		return false
	}
	for _, t := range d.onLink[n.Options.NDPProxy] {
		if t.Prefix.Contains(n.V6[0].Prefix.Addr()) {
			return t.Deprecated(now)
		}
	}
	return false
}

// onLinkUp reads link's /64s and starts the watch of its addresses,
// unless it runs (the link's first ndp_proxy network).
func (d *Driver) onLinkUp(link string) {
	if _, ok := d.onLinkStop[link]; ok {
		return
	}
	log := d.log.WithField("interface", link)
	l, err := netlink.LinkByName(link)
	if err != nil {
		log.WithError(err).Warn("follow the on-link prefixes")
		return
	}
	stop := make(chan struct{})
	if err := ndp.Watch(l.Attrs().Index, func() { d.changed(source{onLink: true, link: link}) }, stop); err != nil {
		log.WithError(err).Warn("follow the on-link prefixes: a renumbered link is seen at the next restart only")
		return
	}
	d.onLinkStop[link] = stop
	if d.onLink[link], err = ndp.Prefixes(link, time.Now()); err != nil {
		log.WithError(err).Warn("read the on-link prefixes")
	}
}

// onLinkDown stops the watch of link's addresses (its last ndp_proxy
// network went).
func (d *Driver) onLinkDown(link string) {
	if stop, ok := d.onLinkStop[link]; ok {
		close(stop)
		delete(d.onLinkStop, link)
	}
	delete(d.onLink, link)
}

// takeOnLink renumbers the ndp_proxy networks on link after its /64s.
func (d *Driver) takeOnLink(link string) {
	now := time.Now()
	prefixes, err := ndp.Prefixes(link, now)
	d.mu.Lock()
	defer d.mu.Unlock()
	nets := d.ndpNetworks(link, nil)
	if _, watched := d.onLinkStop[link]; !watched || len(nets) == 0 {
		return
	}
	if err != nil {
		d.log.WithField("interface", link).WithError(err).Warn("read the on-link prefixes")
		return
	}
	old := d.onLink[link]
	d.onLink[link] = prefixes
	if !sameOnLink(old, prefixes, now) {
		d.log.WithField("interface", link).WithField("prefixes", onLinkString(prefixes, now)).Info("on-link prefixes changed: ndp_proxy networks renumbered")
	}
	for _, n := range nets {
		d.renumber(n)
		d.deprecateHome(n, now)
		d.answerParts(n)
	}
	if err := d.applyFirewall(nil); err != nil {
		d.log.WithError(err).WithField("interface", link).Warn("apply the firewall to the on-link prefixes' addresses (the firewall follower tries again)")
	}
}

// sameOnLink reports whether a and b hold the same /64s, deprecated
// alike.
func sameOnLink(a, b []ndp.Timed, now time.Time) bool {
	return slices.EqualFunc(a, b, func(x, y ndp.Timed) bool {
		return x.Prefix == y.Prefix && x.Deprecated(now) == y.Deprecated(now)
	})
}

func onLinkString(ts []ndp.Timed, now time.Time) string {
	var s []string
	for _, t := range ts {
		x := t.Prefix.String()
		if t.Deprecated(now) {
			x += " (deprecated)"
		}
		s = append(s, x)
	}
	return strings.Join(s, ", ")
}

// deprecateHome deprecates, in n's running containers, their own
// addresses in n's home /64 while the host's there are deprecated, and
// makes them preferred again when the host's are (valid lifetimes stay
// infinite). The driver's lock is held.
func (d *Driver) deprecateHome(n *network, now time.Time) {
	preferred := kernel.Forever
	if d.homeDeprecated(n, now) {
		preferred = 0
	}
	for _, ep := range d.endpoints {
		if ep.NetworkID != n.ID || ep.Sandbox == "" {
			continue
		}
		var addrs []sandbox.Timed
		for _, a := range ep.addresses() {
			if a.Addr().Is6() {
				addrs = append(addrs, sandbox.Timed{Prefix: a, Preferred: preferred, Valid: kernel.Forever})
			}
		}
		if err := d.setTimed(ep, addrs); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).WithError(err).Debug("set the preferred lifetime of the container's own addresses")
		}
	}
}

// answerParts has the host answer on n's link for the addresses of its
// running containers in n's parts, and for nothing else of n's there,
// and tells the link of the new ones. The driver's lock is held.
func (d *Driver) answerParts(n *network) {
	link := n.Options.NDPProxy
	want := map[netip.Addr]bool{}
	for _, ep := range d.endpoints {
		if ep.NetworkID == n.ID && ep.Sandbox != "" {
			for _, a := range d.ndpAddrs(n, ep) {
				want[a] = true
			}
		}
	}
	added := d.ndpEntries(n, want)
	if len(added) > 0 {
		netns.Go(func() {
			if err := ndp.Advertise(link, added); err != nil {
				d.log.WithField("interface", link).WithError(err).Warn("advertise the containers' new addresses on the link")
			}
		})
	}
}

// ownsEntry reports whether a proxy entry for a on n's link is n's: its
// host part lies in one of n's subnets, whatever its /64.
func ownsEntry(n *network, a netip.Addr) bool {
	for _, p := range n.V6 {
		if p.Prefix.Bits() >= 64 && p.Prefix.Contains(withHost(netip.PrefixFrom(p.Prefix.Addr(), 64), a).Addr()) {
			return true
		}
	}
	return false
}

// setTimed puts addrs in ep's container with their lifetimes. The
// driver's lock is held.
func (d *Driver) setTimed(ep *endpoint, addrs []sandbox.Timed) error {
	if len(addrs) == 0 {
		return nil
	}
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return err
	}
	ns, err := d.sandboxes.Resolve(ep.Sandbox, 0)
	if err != nil {
		return err
	}
	return sandbox.SetTimed(ns.Path, sandbox.InterfaceMatch{MAC: mac}, addrs)
}
