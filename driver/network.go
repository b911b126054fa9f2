package driver

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/state"
	"github.com/dualstack-net/dualstack/validate"
)

// CreateNetwork builds the network through its mode's data plane (a
// bridge with its gateways; for a macvlan network, only the parent or the
// host link it needs, if any), guards it with the firewall and records
// it; on any failure nothing is left behind.
func (d *Driver) CreateNetwork(req *api.CreateNetworkRequest) error {
	n, foreign, err := d.newNetwork(req)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.networks[n.ID]; ok {
		// Docker retries a CreateNetwork whose answer a plugin crash lost:
		// the network it asks for is there already.
		if sameDefinition(old, n) {
			d.log.WithField("network", short(n.ID)).Info("network exists already as asked (a retried request)")
			return nil
		}
		return fmt.Errorf("network %s exists already with another definition (subnets %s, options %+v)", short(n.ID), old.subnets(), old.Options)
	}
	if err := d.createNetwork(n); err != nil {
		return err
	}
	d.cfg.Book.Attach(n.ID, n.poolIDs())
	d.routesFollow(n) // to the blocks other hosts hold already
	log := d.plane(n).describe(n, d.log.WithField("network", short(n.ID)).WithField("mode", n.Options.Mode).WithField("subnets", n.subnets()))
	if len(foreign) > 0 {
		log = log.WithField("extra-subnets-without-addresses", strings.Join(foreign, ","))
		log.Warn("network created; another IPAM driver holds some IPv6 subnets, so containers get no address of their own in them (use --ipam-driver dualstack:latest)")
	} else {
		log.Info("network created")
	}
	return nil
}

// newNetwork reads the network req asks for: its options and subnets,
// and the pools of dualstack's IPAM they are in; foreign lists the IPv6
// subnets another IPAM driver holds.
func (d *Driver) newNetwork(req *api.CreateNetworkRequest) (n *network, foreign []string, err error) {
	if req.NetworkID == "" {
		return nil, nil, errors.New("CreateNetwork without a network ID")
	}
	opts, err := parseOptions(req.NetworkID, req.Options)
	if err != nil {
		return nil, nil, err
	}
	if err := d.checkBGP(opts); err != nil {
		return nil, nil, err
	}
	n = &network{ID: req.NetworkID, Options: opts}
	if opts.IPv4 {
		if n.V4, err = parsePools(req.IPv4Data, true); err != nil {
			return nil, nil, err
		}
	}
	if opts.IPv6 {
		if n.V6, err = parsePools(req.IPv6Data, false); err != nil {
			return nil, nil, err
		}
	}
	if len(n.V4) == 0 && len(n.V6) == 0 {
		return nil, nil, errors.New("the network has no subnet: give it an IPv4 or an IPv6 subnet")
	}
	if len(n.V4) > 1 {
		return nil, nil, fmt.Errorf("the network has %d IPv4 subnets: a network takes one (and any number of IPv6 subnets)", len(n.V4))
	}
	for i := range n.V4 {
		n.V4[i].PoolID, _ = d.cfg.Book.PoolFor(n.V4[i].Space, n.V4[i].Prefix)
	}
	for i := range n.V6 {
		if id, ok := d.cfg.Book.PoolFor(n.V6[i].Space, n.V6[i].Prefix); ok {
			n.V6[i].PoolID = id
		} else {
			foreign = append(foreign, n.V6[i].Prefix.String())
		}
	}
	if err := d.onLinkPools(n); err != nil {
		return nil, nil, err
	}
	return n, foreign, nil
}

// onLinkPools turns ndp_proxy on for a network whose IPv6 pools the IPAM
// carved from a host interface's on-link prefix (--ipam-opt
// ndp_proxy=IF), and refuses one whose -o ndp_proxy names another.
func (d *Driver) onLinkPools(n *network) error {
	for _, p := range n.pools() {
		link := d.cfg.Book.OnLinkOf(p.PoolID)
		switch {
		case link == "" || link == n.Options.NDPProxy:
		case n.Options.NDPProxy == "":
			n.Options.NDPProxy = link
		default:
			return fmt.Errorf("bad network options: ndp_proxy=%s: the IPAM took subnet %s from %s's on-link prefix (--ipam-opt ndp_proxy=%s): name the same interface, or drop -o ndp_proxy", n.Options.NDPProxy, p.Prefix, link, link)
		}
	}
	if n.Options.Mode != ModeBridge && n.Options.NDPProxy != "" {
		return fmt.Errorf("bad network options: --ipam-opt ndp_proxy=%s: only bridge networks answer on a link for their containers; drop it, or make a bridge network", n.Options.NDPProxy)
	}
	if errs := ndpConflicts(n.Options); len(errs) > 0 {
		return fmt.Errorf("bad network options: %s", strings.Join(errs, "; "))
	}
	return nil
}

// createNetwork builds n and records it, with d.mu held. Each step
// registers its undo as it succeeds; when a later step fails, the undos
// run, the last first.
func (d *Driver) createNetwork(n *network) (err error) {
	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	plane := d.plane(n)
	if err := plane.checkFree(n, d.networks); err != nil {
		return err
	}
	if err := d.checkNDP(n); err != nil {
		return err
	}
	if err := d.checkDelegated(n); err != nil {
		return err
	}
	if err := d.stickyPools(n); err != nil {
		return err
	}
	host, err := checkHost(n, plane.lan(n))
	if err != nil {
		return err
	}
	// What prepare, joinCluster and holdHostAddrs hold goes back on
	// failure, whichever of them fails.
	undo.add(func() { d.releaseHeld(n) })
	if err := plane.prepare(n, d.cfg.Book); err != nil {
		return err
	}
	// After prepare: a LAN's gateways are what is left of Docker's.
	if err := d.joinCluster(n); err != nil {
		return err
	}
	if err := d.holdHostAddrs(n, host); err != nil {
		return err
	}
	undoLinks, err := plane.createNetwork(n, d.networks)
	if err != nil {
		return err
	}
	undo.add(undoLinks)
	d.routersUp(n)
	undo.add(func() { d.routersDown(n) })
	// The firewall guards the network before anything lets traffic in:
	// forwarding, route_localnet.
	forward4, forward6 := plane.forwards(n)
	undoGuard, err := d.guard(n, forward4, forward6)
	if err != nil {
		return err
	}
	undo.add(undoGuard)
	if err := d.enableForwarding(forward4, forward6, nil); err != nil {
		return err
	}
	if err := plane.open(n); err != nil {
		return err
	}
	undo.add(func() { _ = d.ndpDown(n) })
	if err := d.ndpUp(n, true); err != nil {
		return err
	}
	undo.add(func() { _ = d.delegatedDown(n) })
	if err := d.delegatedUp(n); err != nil {
		return err
	}
	if err := save(d.cfg.DB, "network "+n.ID, func(tx state.Tx) error { return put(tx, bucketNetworks, n.ID, n) }); err != nil {
		return err
	}
	if n.Options.Delegated != "" {
		d.writePrefixStatus()
	}
	return nil
}

// guard adds n to the networks and applies the firewall with n's rules
// (and the policy DROP in the families whose forwarding n is about to turn
// on, if FORWARD_DROP asks for it); undo takes n out and applies the
// firewall without it.
func (d *Driver) guard(n *network, forward4, forward6 bool) (undo func(), err error) {
	d.networks[n.ID] = n
	if err := d.applyFirewall(d.forwardDrop(forward4, forward6)); err != nil {
		delete(d.networks, n.ID)
		return nil, err
	}
	return func() {
		delete(d.networks, n.ID)
		if err := d.applyFirewall(nil); err != nil {
			d.log.WithField("network", short(n.ID)).WithError(err).Warn("remove the rules of a network whose creation failed (the firewall follower tries again)")
		}
	}, nil
}

// sameDefinition reports whether a network asked for again is the one
// recorded: the same options and subnets. (The gateways may differ: a
// macvlan network gives back those the IPAM picked itself.)
func sameDefinition(recorded, asked *network) bool {
	return recorded.Options == asked.Options && recorded.subnets() == asked.subnets()
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
			return nil, fmt.Errorf("bad pool %q from Docker", d.Pool)
		}
		if err := validate.Subnet(p.Masked()); err != nil {
			return nil, err
		}
		pl := pool{Space: d.AddressSpace, Prefix: p.Masked()}
		if d.Gateway != "" {
			g, err := parseAddrOrPrefix(d.Gateway, p.Bits())
			if err != nil || !p.Contains(g.Addr()) {
				return nil, fmt.Errorf("bad gateway %q for pool %s", d.Gateway, p)
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
	return d.deleteNetwork(n)
}

// deleteNetwork removes n with its endpoints, links, rules and record.
func (d *Driver) deleteNetwork(n *network) error {
	for _, ep := range d.endpoints {
		if ep.NetworkID == n.ID {
			if err := d.deleteEndpoint(ep); err != nil {
				return err
			}
		}
	}
	if err := d.ndpDown(n); err != nil {
		return err
	}
	if err := d.delegatedDown(n); err != nil {
		return err
	}
	if n.Options.Delegated != "" {
		defer d.writePrefixStatus()
	}
	if err := d.plane(n).deleteNetwork(n, d.networks); errors.Is(err, links.ErrNotOwned) {
		// Ours is gone; the name is somebody else's now.
		d.log.WithField("network", short(n.ID)).WithError(err).Warn("network deleted; a link of its name that is not its own is left alone")
	} else if err != nil {
		return err
	}
	delete(d.networks, n.ID)
	if err := d.applyFirewall(nil); err != nil {
		d.networks[n.ID] = n
		return err
	}
	if err := save(d.cfg.DB, "network "+n.ID, func(tx state.Tx) error { return del(tx, bucketNetworks, n.ID) }); err != nil {
		d.networks[n.ID] = n
		return err
	}
	d.routersDown(n)
	d.releaseHeld(n)
	d.cfg.Book.Detach(n.ID)
	d.routesFollow(n)
	d.log.WithField("network", short(n.ID)).Info("network deleted")
	return nil
}

// AllocateNetwork is a swarm call; dualstack networks are local.
func (d *Driver) AllocateNetwork(*api.AllocateNetworkRequest) (*api.AllocateNetworkResponse, error) {
	return nil, errors.New("dualstack networks are local: swarm-scoped networks are not supported")
}

// FreeNetwork succeeds: nothing is allocated by AllocateNetwork.
func (d *Driver) FreeNetwork(*api.FreeNetworkRequest) error { return nil }
