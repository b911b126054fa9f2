package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/ipamcheck"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/ndp"
	"github.com/dualstack-net/dualstack/routes"
)

// The plugin's side of `dualstack ipam check`: its view of its networks,
// endpoints, addresses, links and routes (GET /dualstack/ipam), and the
// release of exactly the leaked addresses and left links the CLI names
// (POST /dualstack/ipam/release). Both read the kernel once and the
// state file once; a release asked again changes nothing.

// namedLink matches the names dualstack gives its links: a default
// bridge, the two sides of an endpoint's veth pair, a macvlan network's
// host link and an internal macvlan network's own parent, each with 12
// characters of an ID.
var namedLink = regexp.MustCompile(`^(` + bridgePrefix + `|` + hostVethPrefix + `|` + peerVethPrefix + `|` + shimPrefix + `|` + isolatedPrefix + `)[0-9a-f]{12}$`)

// IPAMView is the plugin's view for `dualstack ipam check` (without the
// cluster store's part, which the caller adds).
func (d *Driver) IPAMView() *ipamcheck.PluginView {
	installed := d.installedRoutes()
	d.mu.Lock()
	v := d.ownView()
	keep := d.routeKeeper(installed)
	d.mu.Unlock()
	for _, info := range d.cfg.Book.PoolsInfo() {
		v.Pools = append(v.Pools, poolView(info))
	}
	if err := kernelLinks(v); err != nil {
		v.Errors = append(v.Errors, err.Error())
	}
	if err := kernelRoutes(v, keep); err != nil {
		v.Errors = append(v.Errors, err.Error())
	}
	return v
}

// installedRoutes are the host-gw and learned routes the route keeper
// installed (read without d.mu: the keeper's locks are its own).
func (d *Driver) installedRoutes() map[int]map[netip.Prefix]routes.Hop {
	return map[int]map[netip.Prefix]routes.Hop{
		int(routes.HostGW): d.routes.Installed(routes.HostGW), int(routes.Learned): d.routes.Installed(routes.Learned),
	}
}

// routeKeeper says which routes of dualstack's protocols the plugin
// keeps: those the route keeper installed, the delegated prefixes'
// unreachable routes, the NDP proxy's routes back to its networks'
// links. d.mu is held.
func (d *Driver) routeKeeper(installed map[int]map[netip.Prefix]routes.Hop) func(ipamcheck.Route) bool {
	delegated := d.delegatedWanted(time.Now())
	onLinks := map[string]bool{}
	for _, n := range d.networks {
		if n.Options.NDPProxy != "" {
			onLinks[n.Options.NDPProxy] = true
		}
	}
	return func(r ipamcheck.Route) bool {
		switch r.Protocol {
		case int(DelegatedProtocol):
			return delegated[r.Dst]
		case int(ndp.RouteProtocol):
			return onLinks[r.Dev]
		}
		_, ok := installed[r.Protocol][r.Dst]
		return ok
	}
}

// ownView lists the driver's networks and endpoints, with d.mu held.
func (d *Driver) ownView() *ipamcheck.PluginView {
	v := &ipamcheck.PluginView{Networks: []ipamcheck.Network{}, Endpoints: []ipamcheck.Endpoint{}, Pools: []ipamcheck.Pool{}, Links: []ipamcheck.Link{}, Routes: []ipamcheck.Route{}, Rules: []ipamcheck.Rule{}}
	for _, n := range d.networks {
		nv := ipamcheck.Network{ID: n.ID, Mode: n.Options.Mode, Cluster: n.Options.Cluster, Owners: d.plane(n).owners(n)}
		if n.Options.Mode == ModeBridge {
			nv.Bridge = n.Options.Bridge
			nv.Links = append(nv.Links, n.Options.Bridge)
			nv.Owners = append(nv.Owners, networkOwner(n))
		} else {
			nv.Parent = parentOf(n)
			if n.Options.Internal || n.CreatedParent {
				nv.Links = append(nv.Links, parentOf(n))
			}
			if n.Options.HostLink {
				nv.Links = append(nv.Links, shimName(n))
			}
		}
		for _, p := range n.pools() {
			nv.Subnets = append(nv.Subnets, ipamcheck.Subnet{Prefix: p.Prefix, Gateway: p.Gateway.Addr(), Pool: p.PoolID})
		}
		v.Networks = append(v.Networks, nv)
	}
	for _, ep := range d.endpoints {
		ev := ipamcheck.Endpoint{ID: ep.ID, Network: ep.NetworkID, MAC: ep.MAC, HostLink: ep.HostVeth, PeerLink: ep.PeerVeth, Owner: endpointOwner(ep), Joined: ep.Sandbox != ""}
		for _, a := range ep.addresses() {
			ev.Addresses = append(ev.Addresses, a.Addr())
		}
		v.Endpoints = append(v.Endpoints, ev)
	}
	sort.Slice(v.Networks, func(i, j int) bool { return v.Networks[i].ID < v.Networks[j].ID })
	sort.Slice(v.Endpoints, func(i, j int) bool { return v.Endpoints[i].ID < v.Endpoints[j].ID })
	return v
}

func poolView(info addrbook.PoolInfo) ipamcheck.Pool {
	pv := ipamcheck.Pool{ID: info.ID, Subnet: info.Prefix, Range: info.Range, Network: info.Network, Cluster: info.Cluster, Blocks: info.Blocks, Allocations: []ipamcheck.Allocation{}}
	for a, o := range info.Allocations {
		id := o.ID
		if o.Kind == addrbook.Other {
			id = o.String()
		}
		pv.Allocations = append(pv.Allocations, ipamcheck.Allocation{Address: a, Kind: o.Kind.String(), ID: id})
	}
	sort.Slice(pv.Allocations, func(i, j int) bool { return pv.Allocations[i].Address.Less(pv.Allocations[j].Address) })
	return pv
}

// dualstacks reports whether l looks like one of dualstack's links:
// marked as its own, or named as it names them.
func dualstacks(l netlink.Link) bool {
	return links.Owner(l) != "" || namedLink.MatchString(l.Attrs().Name)
}

// kernelLinks adds the host's links that look like dualstack's.
func kernelLinks(v *ipamcheck.PluginView) error {
	all, err := kernel.Links()
	if err != nil {
		return fmt.Errorf("list the host's links: %w", err)
	}
	names := map[int]string{}
	for _, l := range all {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	for _, l := range all {
		if !dualstacks(l) {
			continue
		}
		v.Links = append(v.Links, ipamcheck.Link{Name: l.Attrs().Name, Type: l.Type(), Mark: links.Owner(l), Master: names[l.Attrs().MasterIndex]})
	}
	sort.Slice(v.Links, func(i, j int) bool { return v.Links[i].Name < v.Links[j].Name })
	return nil
}

// routeProtocols are the protocols of dualstack's routes.
var routeProtocols = map[int]bool{int(routes.HostGW): true, int(routes.Learned): true, int(DelegatedProtocol): true, int(ndp.RouteProtocol): true}

// ownRoutes lists the main table's routes of dualstack's protocols, and
// the host's link names by index.
func ownRoutes() ([]netlink.Route, map[int]string, error) {
	all, err := kernel.Routes(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, nil, fmt.Errorf("list the host's routes: %w", err)
	}
	names, err := kernel.LinkNames()
	if err != nil {
		return nil, nil, fmt.Errorf("list the host's links: %w", err)
	}
	var own []netlink.Route
	for _, r := range all {
		if _, ok := kernel.Prefix(r.Dst); ok && routeProtocols[int(r.Protocol)] {
			own = append(own, r)
		}
	}
	return own, names, nil
}

// routeView is r as the check sees it.
func routeView(r netlink.Route, names map[int]string) ipamcheck.Route {
	dst, _ := kernel.Prefix(r.Dst)
	via, _ := netip.AddrFromSlice(r.Gw)
	rv := ipamcheck.Route{Dst: dst, Dev: names[r.LinkIndex], Via: via.Unmap(), Protocol: int(r.Protocol)}
	if r.Type == unix.RTN_UNREACHABLE {
		rv.Type = "unreachable"
	}
	return rv
}

// kernelRoutes adds the main table's routes and the policy rules of
// dualstack's protocols; keep says which routes the plugin keeps.
func kernelRoutes(v *ipamcheck.PluginView, keep func(ipamcheck.Route) bool) error {
	own, names, err := ownRoutes()
	if err != nil {
		return err
	}
	for _, r := range own {
		rv := routeView(r, names)
		rv.Wanted = keep(rv)
		v.Routes = append(v.Routes, rv)
	}
	rules, err := netlink.RuleList(netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list the host's policy rules: %w", err)
	}
	for _, r := range rules {
		if !routeProtocols[int(r.Protocol)] {
			continue
		}
		rv := ipamcheck.Rule{Family: "ipv4", Priority: r.Priority, Table: r.Table, Protocol: int(r.Protocol)}
		if r.Family == netlink.FAMILY_V6 {
			rv.Family = "ipv6"
		}
		if r.Src != nil {
			rv.Src, _ = kernel.Prefix(r.Src)
		}
		if r.Dst != nil {
			rv.Dst, _ = kernel.Prefix(r.Dst)
		}
		v.Rules = append(v.Rules, rv)
	}
	return nil
}

// IPAMRelease releases exactly what req names, all or nothing: the
// leaked addresses (addrbook.ReleaseLeaked says which it refuses), the
// left links, refusing a link that a network or endpoint of the plugin
// uses (by name or mark) and one that does not look like dualstack's,
// and the left routes, refusing one of another protocol or one the
// plugin keeps. What is gone already is listed as gone: asked again, it
// changes nothing.
func (d *Driver) IPAMRelease(req ipamcheck.Release) (*ipamcheck.Released, error) {
	installed := d.installedRoutes()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := &ipamcheck.Released{Addresses: []ipamcheck.PoolAddress{}, Links: []string{}}
	delLinks, refused, err := d.releasableLinks(req.Links, out)
	if err != nil {
		return nil, err
	}
	delRoutes, refusedRoutes, err := d.releasableRoutes(req.Routes, d.routeKeeper(installed), out)
	if err != nil {
		return nil, err
	}
	if refused = append(refused, refusedRoutes...); len(refused) > 0 {
		return nil, &ipamcheck.RefusedError{Reasons: refused}
	}
	if err := d.releaseLeaked(req.Addresses, out); err != nil {
		return nil, err
	}
	for _, l := range delLinks {
		name := l.Attrs().Name
		if err := netlink.LinkDel(l); links.NotFound(err) {
			out.Gone = append(out.Gone, "link "+name) // a veth's peer, deleted with it
			continue
		} else if err != nil {
			return out, fmt.Errorf("delete link %s: %w", name, err)
		}
		out.Links = append(out.Links, name)
		d.log.WithField("link", name).WithField("owner", links.Owner(l)).Info("removed a left link (dualstack ipam check --release)")
	}
	for _, r := range delRoutes {
		spec := routeSpec(r)
		if err := netlink.RouteDel(&r); errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
			out.Gone = append(out.Gone, "route "+spec.String())
			continue
		} else if err != nil {
			return out, fmt.Errorf("delete route %s: %w", spec, err)
		}
		out.Routes = append(out.Routes, spec)
		d.log.WithField("route", spec.Dst).WithField("protocol", spec.Protocol).Info("removed a left route (dualstack ipam check --release)")
	}
	return out, nil
}

// releaseLeaked releases the leaked addresses addrs, all or none.
func (d *Driver) releaseLeaked(addrs []ipamcheck.PoolAddress, out *ipamcheck.Released) error {
	byPool := map[string][]netip.Addr{}
	for _, a := range addrs {
		byPool[a.Pool] = append(byPool[a.Pool], a.Address)
	}
	released, gone, err := d.cfg.Book.ReleaseLeaked(byPool)
	if errors.Is(err, addrbook.ErrNotLeaked) {
		return &ipamcheck.RefusedError{Reasons: []string{err.Error()}}
	}
	if err != nil {
		return err
	}
	for id, as := range released {
		for _, a := range as {
			out.Addresses = append(out.Addresses, ipamcheck.PoolAddress{Pool: id, Address: a})
			d.log.WithField("pool", id).WithField("address", a).Info("released a leaked address (dualstack ipam check --release)")
		}
	}
	for id, as := range gone {
		for _, a := range as {
			out.Gone = append(out.Gone, fmt.Sprintf("address %s of pool %s", a, id))
		}
	}
	return nil
}

func routeSpec(r netlink.Route) ipamcheck.RouteSpec {
	dst, _ := kernel.Prefix(r.Dst)
	return ipamcheck.RouteSpec{Dst: dst, Protocol: int(r.Protocol)}
}

// releasableRoutes finds the routes specs name, with d.mu held: those to
// delete, and why any is refused; gone ones go to out.
func (d *Driver) releasableRoutes(specs []ipamcheck.RouteSpec, keep func(ipamcheck.Route) bool, out *ipamcheck.Released) (del []netlink.Route, refused []string, err error) {
	if len(specs) == 0 {
		return nil, nil, nil
	}
	own, names, err := ownRoutes()
	if err != nil {
		return nil, nil, err
	}
	for _, s := range specs {
		if !routeProtocols[s.Protocol] {
			refused = append(refused, fmt.Sprintf("route %s is not of dualstack's protocols", s))
			continue
		}
		found := false
		for _, r := range own {
			if routeSpec(r) != s {
				continue
			}
			found = true
			if keep(routeView(r, names)) {
				refused = append(refused, fmt.Sprintf("route %s: the plugin keeps it", s))
			} else {
				del = append(del, r)
			}
		}
		if !found {
			out.Gone = append(out.Gone, "route "+s.String())
		}
	}
	return del, refused, nil
}

// releasableLinks looks up the links names, with d.mu held: those to
// delete, and why any is refused; gone ones go to out.
func (d *Driver) releasableLinks(names []string, out *ipamcheck.Released) (del []netlink.Link, refused []string, err error) {
	v := d.ownView()
	for _, name := range names {
		l, err := netlink.LinkByName(name)
		if links.NotFound(err) {
			out.Gone = append(out.Gone, "link "+name)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("look up link %s: %w", name, err)
		}
		mark := links.Owner(l)
		if user := v.LinkUser(name, mark); user != "" {
			refused = append(refused, fmt.Sprintf("link %s: %s uses it", name, user))
			continue
		}
		if !dualstacks(l) {
			refused = append(refused, fmt.Sprintf("link %s is not dualstack's: it carries no mark and is not named as dualstack names its links", name))
			continue
		}
		del = append(del, l)
	}
	return del, refused, nil
}
