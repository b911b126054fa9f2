package driver

import (
	"slices"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/internal/statusfile"
)

// Renumbering (see delegated.go): the clients report each change of a
// lease (PrefixChanged); a goroutine of the driver's (followLeases) takes
// the uplink's lease as it is then, and, under the driver's lock, puts
// the global addresses with their lifetimes on the bridges and in the
// running containers, the routes and the firewall in step, and writes
// the status file.

// PrefixChanged tells the driver that uplink's lease changed (the
// clients' OnChange). It never waits for the driver's lock: the lease is
// taken up on the driver's own goroutine.
func (d *Driver) PrefixChanged(l delegation.Lease) { d.changed(source{link: l.Uplink}) }

// source is where a network's changing prefixes come from: an uplink's
// DHCPv6 lease, or (onLink) a link's on-link prefixes.
type source struct {
	onLink bool
	link   string
}

// changed has followLeases take up src's prefixes.
func (d *Driver) changed(src source) {
	d.leaseMu.Lock()
	defer d.leaseMu.Unlock()
	if d.leaseChanged == nil {
		return // closed
	}
	d.leaseDirty[src] = true
	select {
	case d.leaseChanged <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// followLeases takes up the changed sources until Close.
func (d *Driver) followLeases(wake <-chan struct{}) {
	for range wake {
		d.leaseMu.Lock()
		dirty := d.leaseDirty
		d.leaseDirty = map[source]bool{}
		d.leaseMu.Unlock()
		for src := range dirty {
			if src.onLink {
				d.takeOnLink(src.link)
			} else {
				d.takeLease(src.link)
			}
		}
	}
}

// takeLease renumbers the networks on uplink after its lease.
func (d *Driver) takeLease(uplink string) {
	if d.cfg.Delegations == nil {
		return
	}
	l, ok := d.cfg.Delegations.Lease(uplink)
	d.mu.Lock()
	defer d.mu.Unlock()
	nets := d.delegatedNetworks(uplink, nil)
	if !ok || len(nets) == 0 {
		return
	}
	// The clients log the lease's changes; the driver, the networks'.
	old := d.leases[uplink]
	d.leases[uplink] = l
	if l.Error != "" && old.Error == "" {
		// Once, when the client meets a problem (no server answers): at
		// the default level, the first sign that no prefix comes.
		log := d.log.WithField("uplink", uplink).WithField("state", l.State).WithField("problem", l.Error)
		if l.Current == nil {
			log.Warn("no delegated prefix on the uplink for now: containers get their global addresses once a server delegates one (dualstack prefixes shows the state)")
		} else {
			log.WithField("prefix", l.Current.Prefix).Warn("the DHCPv6 server does not renew the delegated prefix for now: it is kept until its valid lifetime ends (dualstack prefixes shows the state)")
		}
	}
	if samePrefixes(old, l) {
		// Only the client's state or its last problem changed (each
		// Solicit unanswered): nothing to renumber.
		d.writePrefixStatus()
		return
	}
	for _, n := range nets {
		d.logRenumbered(n, old, l, d.renumber(n))
	}
	d.delegatedRoutes()
	if err := d.applyFirewall(nil); err != nil {
		d.log.WithError(err).WithField("uplink", uplink).Warn("apply the firewall to the delegated prefix's addresses (the firewall follower tries again)")
	}
	d.writePrefixStatus()
}

// samePrefixes reports whether a and b hold the same prefixes with the
// same lifetimes.
func samePrefixes(a, b delegation.Lease) bool {
	if (a.Current == nil) != (b.Current == nil) || (a.Current != nil && *a.Current != *b.Current) {
		return false
	}
	return slices.Equal(a.Stale, b.Stale)
}

// renumber puts n's global addresses, with the lifetimes of their
// prefixes, on its bridge and in each of its running containers, and
// returns how many containers got them. The driver's lock is held.
func (d *Driver) renumber(n *network) int {
	d.bridgeGlobals(n)
	now := time.Now()
	done := 0
	for _, ep := range d.endpoints {
		if ep.NetworkID != n.ID || ep.Sandbox == "" {
			continue
		}
		if err := d.setGlobals(n, ep, now); err != nil {
			// A join still under way puts them in place itself.
			d.log.WithField("endpoint", short(ep.ID)).WithError(err).Debug("put the global addresses in the container")
			continue
		}
		done++
	}
	return done
}

// logRenumbered says at info that n took its /64 of the prefix l
// delegates now, unlike old, with how many containers got their address
// there (done); or, at warning, that its subnet ID does not fit the
// prefix.
func (d *Driver) logRenumbered(n *network, old, l delegation.Lease, done int) {
	if l.Current == nil || (old.Current != nil && old.Current.Prefix == l.Current.Prefix) {
		return
	}
	log := d.log.WithField("network", short(n.ID))
	if part, fits := subnet64(l.Current.Prefix, n.DelegatedID); fits {
		log.WithField("subnet", part).WithField("containers", done).Info("network renumbered")
		return
	}
	log.WithField("prefix", l.Current.Prefix).Warnf("subnet ID %d does not fit in the delegated prefix, which has %s: the network's containers get no global address; recreate the network with -o delegated_subnet one that fits", n.DelegatedID, idRange(l.Current.Prefix))
}

// setGlobals puts ep's global addresses in its container. The driver's
// lock is held.
func (d *Driver) setGlobals(n *network, ep *endpoint, now time.Time) error {
	return d.setTimed(ep, d.globals(n, ep, now))
}

// joinGlobals puts the global addresses of endpoint id in its container
// once its join configured the interface (joins.configured): under the
// driver's lock, so that a renumbering meanwhile is never undone.
func (d *Driver) joinGlobals(id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[id]
	if !ok || ep.Sandbox == "" {
		return nil
	}
	n := d.networks[ep.NetworkID]
	if n == nil || !n.changingPrefix() {
		return nil
	}
	return d.setGlobals(n, ep, time.Now())
}

// PrefixStatus is what the status file (STATE_DIR/prefixes.json) holds:
// each uplink's lease and each delegated_prefix network's /64s. The
// `dualstack prefixes` command prints it.
type PrefixStatus struct {
	Written  time.Time          `json:"written"`
	Uplinks  []delegation.Lease `json:"uplinks"`
	Networks []NetworkPrefixes  `json:"networks"`
}

// NetworkPrefixes are a network's /64s of its uplink's prefixes.
type NetworkPrefixes struct {
	Network  string `json:"network"`
	Bridge   string `json:"bridge"`
	Uplink   string `json:"uplink"`
	SubnetID uint64 `json:"subnetID"`
	// Current is the /64 of the prefix delegated now; Deprecated those of
	// prefixes delegated before, until their valid lifetimes end.
	Current    *delegation.Prefix  `json:"current,omitempty"`
	Deprecated []delegation.Prefix `json:"deprecated,omitempty"`
}

// prefixStatus is the status now. The driver's lock is held.
func (d *Driver) prefixStatus() PrefixStatus {
	now := time.Now()
	s := PrefixStatus{Written: now.UTC()}
	for _, l := range d.leases {
		s.Uplinks = append(s.Uplinks, l)
	}
	slices.SortFunc(s.Uplinks, func(a, b delegation.Lease) int { return strings.Compare(a.Uplink, b.Uplink) })
	for _, n := range d.networks {
		if n.Options.Delegated == "" {
			continue
		}
		np := NetworkPrefixes{Network: n.ID, Bridge: n.Options.Bridge, Uplink: n.Options.Delegated, SubnetID: n.DelegatedID}
		for _, t := range d.parts(n, now) {
			p := delegation.Prefix{Prefix: t.Part, Preferred: now.Add(t.Preferred), Valid: t.Prefix.Valid}
			if t.Preferred > 0 && np.Current == nil {
				np.Current = &p
			} else {
				np.Deprecated = append(np.Deprecated, p)
			}
		}
		s.Networks = append(s.Networks, np)
	}
	slices.SortFunc(s.Networks, func(a, b NetworkPrefixes) int { return strings.Compare(a.Network, b.Network) })
	return s
}

// PrefixStatusFile is the status file's name in the state directory.
const PrefixStatusFile = "prefixes.json"

// writePrefixStatus writes the status file, whole (a rename), when the
// driver has one. The driver's lock is held.
func (d *Driver) writePrefixStatus() {
	if d.cfg.StateDir == "" {
		return
	}
	if err := statusfile.Write(d.cfg.StateDir, PrefixStatusFile, d.prefixStatus()); err != nil {
		d.log.WithError(err).Warn("write the delegated prefixes' status file")
	}
}
