package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/kernel"
)

// delegated_prefix networks: a bridge network with a /64 of the prefix
// that an uplink's router delegates by DHCPv6 (package delegation runs
// one client per uplink, shared by the networks naming it). The /64 is
// the prefix with the network's subnet ID after it (DelegatedID, kept in
// the network's record); each container gets, besides its addresses in
// the network's subnets, one global address per valid delegated prefix:
// that /64 with the host part (the low 64 bits) of its address in the
// network's first IPv6 subnet, and the bridge likewise for the gateway.
// Those addresses are derived, not allocated: the address book knows
// nothing of them, and nothing in it moves when the prefix changes.
//
// Their lifetimes are the prefix's: the current prefix's are refreshed at
// each renewal; a prefix no longer delegated is deprecated (preferred
// lifetime 0) and keeps the valid lifetime last granted, and the kernel
// removes its addresses when that ends. The driver follows the clients'
// leases (PrefixChanged) on a goroutine of its own (followLeases).

// Delegations are the DHCPv6 prefix-delegation clients of the host's
// uplinks (delegation.Clients).
type Delegations interface {
	// Hold starts uplink's client for holder unless it runs, and returns
	// what it holds now.
	Hold(uplink, holder string) (delegation.Lease, error)
	// Drop lets holder go; the last holder's releases the prefix.
	Drop(uplink, holder string) error
	// Lease is what uplink's client holds now.
	Lease(uplink string) (delegation.Lease, bool)
}

// DelegatedProtocol marks the unreachable routes of delegated prefixes
// (ip -6 route show proto 216): what of a prefix no network uses is
// answered as unreachable instead of going back upstream (RFC 7084,
// WPD-5).
const DelegatedProtocol = netlink.RouteProtocol(216)

// delegatedConflicts checks delegated_prefix against the other options:
// its containers' global addresses are routed to the host as they are,
// and the prefix is this host's.
func delegatedConflicts(o netOptions) []string {
	if o.Delegated == "" {
		if o.DelegatedSubnet != "" {
			return []string{"delegated_subnet is an option of delegated_prefix networks: add -o delegated_prefix=IF"}
		}
		return nil
	}
	return refusals("delegated_prefix="+o.Delegated, []refusal{
		{!o.IPv6, "needs IPv6: add --ipv6 and an IPv6 --subnet (a ULA /64 such as fd00:1::/64) whose host parts the global addresses take"},
		{o.Internal, "an --internal network reaches nothing outside its host, so it has no use for a global prefix; drop one of the two"},
		{o.IPv6Mode == IPv6ModeNAT, "ipv6_mode=nat hides the containers' addresses behind the host's; drop one of the two"},
		{o.Cluster != "", "a cluster network spans hosts, and the prefix is delegated to this one; drop one of the two"},
		{o.Announce, "announce=true announces the network's subnets, whereas the delegated prefix is routed to the host by its router already; drop one of the two"},
		{o.NDPProxy != "", "ndp_proxy answers for subnets of an on-link prefix; a network takes its global addresses from one of the two; drop one"},
	})
}

// checkDelegated refuses a delegated_prefix network the uplink cannot
// serve, and gives it its subnet ID: the one asked for, or the lowest
// from 1 that no other network on the uplink has.
func (d *Driver) checkDelegated(n *network) error {
	uplink := n.Options.Delegated
	if uplink == "" {
		return nil
	}
	if d.cfg.Delegations == nil {
		return fmt.Errorf("delegated_prefix=%s: this plugin runs no DHCPv6 client: drop -o delegated_prefix", uplink)
	}
	if err := checkUplink(optDelegated, uplink, "name the interface toward the router that delegates the prefix (see ip link)"); err != nil {
		return err
	}
	for _, p := range n.V6 {
		if p.Prefix.Bits() < 64 {
			return fmt.Errorf("delegated_prefix=%s: subnet %s is larger than a /64, so the host parts of its addresses (their last 64 bits) would not tell containers apart in the network's /64: give a /64 or smaller subnet", uplink, p.Prefix)
		}
	}
	taken := map[uint64]string{}
	for _, o := range d.networks {
		if o.Options.Delegated == uplink {
			taken[o.DelegatedID] = o.ID
		}
	}
	if n.Options.DelegatedSubnet != "" {
		id, _ := strconv.ParseUint(n.Options.DelegatedSubnet, 10, 64)
		if other, ok := taken[id]; ok {
			return fmt.Errorf("delegated_subnet=%d: network %s on %s has subnet ID %d already: give another, or leave delegated_subnet out for a free one", id, short(other), uplink, id)
		}
		n.DelegatedID = id
	} else {
		n.DelegatedID = 1
		for taken[n.DelegatedID] != "" {
			n.DelegatedID++
		}
	}
	if l, ok := d.leases[uplink]; ok && l.Current != nil {
		if _, fits := subnet64(l.Current.Prefix, n.DelegatedID); !fits {
			return fmt.Errorf("delegated_prefix=%s: subnet ID %d does not fit in the prefix %s delegated now, which has %s: give -o delegated_subnet one that fits, or ask the router for a shorter prefix", uplink, n.DelegatedID, l.Current.Prefix, idRange(l.Current.Prefix))
		}
	}
	return nil
}

// checkUplink refuses, for option opt, a link that is missing or that is
// a container network's bridge; what says what to name instead.
func checkUplink(opt, link, what string) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("%s=%s: there is no interface %s on the host: %s", opt, link, link, what)
	}
	all, err := kernel.Links()
	if err != nil {
		return err
	}
	if links.Owner(l) != "" || kernel.ContainerBridge(l, all) {
		return fmt.Errorf("%s=%s: %s is the bridge of a container network (Docker's or dualstack's), not an uplink: %s", opt, link, link, what)
	}
	return nil
}

// idRange says which subnet IDs prefix p has room for.
func idRange(p netip.Prefix) string {
	if p.Bits() > 64 {
		return "no /64 in it"
	}
	if p.Bits() == 64 {
		return "subnet ID 0 alone"
	}
	return fmt.Sprintf("subnet IDs 0 to %d", uint64(1)<<(64-p.Bits())-1)
}

// subnet64 is the /64 of p with subnet ID id, if p has room for it.
func subnet64(p netip.Prefix, id uint64) (netip.Prefix, bool) {
	if !p.Addr().Is6() || p.Bits() > 64 || (p.Bits() < 64 && id >= uint64(1)<<(64-p.Bits())) || (p.Bits() == 64 && id != 0) {
		return netip.Prefix{}, false
	}
	a := p.Masked().Addr().As16()
	binary.BigEndian.PutUint64(a[:8], binary.BigEndian.Uint64(a[:8])|id)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64), true
}

// withHost is the address of part (a /64, or a part of one) with the
// host part (the low 64 bits) of a, with part's length.
func withHost(part netip.Prefix, a netip.Addr) netip.Prefix {
	p, h := part.Addr().As16(), a.As16()
	copy(p[8:], h[8:])
	return netip.PrefixFrom(netip.AddrFrom16(p), part.Bits())
}

// timedPart is a network's part of a prefix that changes (its /64 of a
// delegated prefix, its subnet's place in an on-link /64), with the
// lifetimes left.
type timedPart struct {
	Part             netip.Prefix
	Preferred, Valid time.Duration
	// Prefix is the prefix it is part of.
	Prefix delegation.Prefix
}

// parts lists n's parts of the prefixes of its uplink (delegated.go)
// or its link (ndprenumber.go), the one preferred longest first, with the
// lifetimes left at now.
func (d *Driver) parts(n *network, now time.Time) []timedPart {
	switch {
	case n.Options.Delegated != "":
		return d.delegatedParts(n, now)
	case n.Options.NDPProxy != "":
		return d.onLinkParts(n, now)
	}
	return nil
}

// delegatedParts lists n's /64s of the prefixes its uplink's lease
// holds, the current one first; a prefix no longer delegated has a
// preferred lifetime of 0.
func (d *Driver) delegatedParts(n *network, now time.Time) []timedPart {
	l := d.leases[n.Options.Delegated]
	var out []timedPart
	add := func(p delegation.Prefix, current bool) {
		part, ok := subnet64(p.Prefix, n.DelegatedID)
		valid := p.Valid.Sub(now)
		if !ok || valid <= 0 || slices.ContainsFunc(out, func(t timedPart) bool { return t.Part == part }) {
			return
		}
		t := timedPart{Part: part, Valid: valid, Prefix: p}
		if current {
			t.Preferred = max(p.Preferred.Sub(now), 0)
		}
		out = append(out, t)
	}
	if l.Current != nil {
		add(*l.Current, true)
	}
	for _, p := range l.Stale {
		add(p, false)
	}
	return out
}

// changingPrefix reports whether n's containers get addresses in
// prefixes that change (its parts): those of a delegated prefix, or of
// its link's other on-link /64s.
func (n *network) changingPrefix() bool {
	return n.Options.Delegated != "" || n.Options.NDPProxy != ""
}

// hostPart is the address of ep whose host part its global addresses
// take: the one in n's first IPv6 subnet.
func hostPart(n *network, ep *endpoint) (netip.Addr, bool) {
	if len(n.V6) == 0 {
		return netip.Addr{}, false
	}
	for _, a := range ep.addresses() {
		if n.V6[0].Prefix.Contains(a.Addr()) {
			return a.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// globals are ep's global addresses with their lifetimes.
func (d *Driver) globals(n *network, ep *endpoint, now time.Time) []sandbox.Timed {
	h, ok := hostPart(n, ep)
	if !ok {
		return nil
	}
	var out []sandbox.Timed
	for _, t := range d.parts(n, now) {
		out = append(out, sandbox.Timed{Prefix: withHost(t.Part, h), Preferred: t.Preferred, Valid: t.Valid})
	}
	return out
}

// delegatedUp starts (or takes up again) n's uplink's client and puts
// n's global gateways on its bridge.
func (d *Driver) delegatedUp(n *network) error {
	uplink := n.Options.Delegated
	if uplink == "" {
		return nil
	}
	if d.cfg.Delegations == nil {
		return fmt.Errorf("delegated_prefix=%s: this plugin runs no DHCPv6 client", uplink)
	}
	l, err := d.cfg.Delegations.Hold(uplink, n.ID)
	if err != nil {
		return fmt.Errorf("delegated_prefix=%s: %w", uplink, err)
	}
	d.leases[uplink] = l
	d.bridgeGlobals(n)
	d.delegatedRoutes()
	return nil
}

// delegatedDown lets n's uplink's client go (the last network on it
// releases the prefix) and its routes with it.
func (d *Driver) delegatedDown(n *network) error {
	uplink := n.Options.Delegated
	if uplink == "" || d.cfg.Delegations == nil {
		return nil
	}
	if err := d.cfg.Delegations.Drop(uplink, n.ID); err != nil && !errors.Is(err, delegation.ErrNotHeld) {
		return fmt.Errorf("delegated_prefix=%s: %w", uplink, err)
	}
	if len(d.delegatedNetworks(uplink, n)) == 0 {
		delete(d.leases, uplink)
	}
	d.delegatedRoutes()
	return nil
}

// delegatedNetworks lists the networks on uplink, but skip.
func (d *Driver) delegatedNetworks(uplink string, skip *network) []*network {
	return d.networksWhere(skip, func(n *network) bool { return n.Options.Delegated == uplink })
}

// bridgeGlobals puts n's global gateways on its bridge, with the
// lifetimes of their prefixes.
func (d *Driver) bridgeGlobals(n *network) {
	if len(n.V6) == 0 || !n.V6[0].Gateway.IsValid() {
		return
	}
	log := d.log.WithField("network", short(n.ID)).WithField("bridge", n.Options.Bridge)
	br, err := netlink.LinkByName(n.Options.Bridge)
	if err != nil {
		log.WithError(err).Warn("put the global gateway addresses on the bridge")
		return
	}
	for _, t := range d.parts(n, time.Now()) {
		a := withHost(t.Part, n.V6[0].Gateway.Addr())
		if err := kernel.ReplaceTimed(br, a, t.Preferred, t.Valid); err != nil {
			log.WithError(err).WithField("address", a).Warn("put a global gateway address on the bridge")
		}
	}
}

// delegatedWanted are the prefixes whose unreachable routes of protocol
// 216 the driver keeps: the valid ones of the uplinks' leases.
func (d *Driver) delegatedWanted(now time.Time) map[netip.Prefix]bool {
	want := map[netip.Prefix]bool{}
	for _, l := range d.leases {
		if l.Current != nil && l.Current.Valid.After(now) {
			want[l.Current.Prefix.Masked()] = true
		}
		for _, p := range l.Stale {
			if p.Valid.After(now) {
				want[p.Prefix.Masked()] = true
			}
		}
	}
	return want
}

// delegatedRoutes makes the unreachable routes of protocol 216 those of
// the valid prefixes of the uplinks that have networks.
func (d *Driver) delegatedRoutes() {
	want := d.delegatedWanted(time.Now())
	have, err := kernel.Routes(netlink.FAMILY_V6, &netlink.Route{Protocol: DelegatedProtocol, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		d.log.WithError(err).Warn("list the unreachable routes of delegated prefixes")
		return
	}
	for _, r := range have {
		p, ok := kernel.Prefix(r.Dst)
		if ok && want[p] {
			delete(want, p)
			continue
		}
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) && !errors.Is(err, unix.ENOENT) {
			d.log.WithError(err).WithField("route", r.Dst).Warn("remove the unreachable route of a delegated prefix no longer valid")
		}
	}
	for p := range want {
		r := &netlink.Route{Dst: kernel.IPNet(p), Type: unix.RTN_UNREACHABLE, Protocol: DelegatedProtocol, Table: unix.RT_TABLE_MAIN}
		if err := netlink.RouteReplace(r); err != nil {
			d.log.WithError(err).WithField("route", p).Warn("add the unreachable route of a delegated prefix")
		}
	}
}

// delegatedRestore takes up, at start, the clients of the
// delegated_prefix networks (a lease recorded and still valid is held at
// once) and puts the bridges' global gateways back; the containers' come
// back with the joins ResumeJoins resumes.
func (d *Driver) delegatedRestore() {
	found := false
	for _, n := range d.networks {
		if n.Options.Delegated == "" {
			continue
		}
		found = true
		if err := d.delegatedUp(n); err != nil {
			d.log.WithField("network", short(n.ID)).WithError(err).Warn("restore the delegated prefix")
		}
	}
	if found {
		d.writePrefixStatus()
	}
}

// routedPorts are the ports ep publishes, each IPv6 one reached also at
// ep's global addresses (firewall.Port.Also).
func (d *Driver) routedPorts(ep *endpoint, now time.Time) []firewall.Port {
	n := d.networks[ep.NetworkID]
	if n == nil || !n.changingPrefix() || len(ep.Published) == 0 {
		return ep.Published
	}
	var also []netip.Addr
	for _, g := range d.globals(n, ep, now) {
		also = append(also, g.Prefix.Addr())
	}
	out := slices.Clone(ep.Published)
	for i := range out {
		if out[i].Family() == firewall.IPv6 {
			out[i].Also = also
		}
	}
	return out
}
