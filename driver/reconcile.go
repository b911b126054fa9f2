package driver

import (
	"errors"
	"fmt"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/state"
)

// hostLinks is the host's links by name, listed once for a reconcile.
type hostLinks map[string]netlink.Link

func listLinks() (hostLinks, error) {
	list, err := kernel.Links()
	if err != nil {
		return nil, err
	}
	links := make(hostLinks, len(list))
	for _, l := range list {
		links[l.Attrs().Name] = l
	}
	return links, nil
}

// reconcile brings the kernel in line with the persisted state before the
// plugin serves: missing bridges and their gateways are created again (after
// a reboot, say), surviving endpoints are put back on them, links named by
// dualstack that no record claims are deleted, published host ports are
// reserved again, the firewall's chains are made to hold exactly the rules
// of the networks and published ports (none at all without networks), and
// then, and only then, forwarding and route_localnet are turned on where
// networks need them (guardThenOpen). It reads the host's links once and
// the firewall with one iptables-save per family, and changes only what
// differs: a start with hundreds of endpoints in place costs little more
// than one without. The container side of joins is ResumeJoins' work.
func (d *Driver) reconcile() {
	start := time.Now()
	// The first start of a version that marks its links takes the
	// recorded ones as they are, unmarked, and marks them: once.
	adopt := !d.linksMarked()
	for _, n := range d.networks {
		if err := d.plane(n).restoreNetwork(n, adopt); err != nil {
			d.log.WithField("network", short(n.ID)).WithError(err).Warn("restore")
		}
		d.routersUp(n)
	}
	links, err := listLinks()
	if err != nil {
		d.log.WithError(err).Warn("list the host's links to restore endpoints")
	}
	d.links = links
	networksDone := time.Now()
	for _, ep := range d.endpoints {
		n := d.networks[ep.NetworkID]
		if err := d.plane(n).restoreEndpoint(n, ep, links, adopt); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).WithError(err).Warn("restore")
		}
		if err := d.reservePublished(ep); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).WithError(err).Warn("reserve published host ports again")
		}
	}
	d.forgetGone(links)
	d.ndpRestore()
	d.delegatedRestore()
	endpointsDone := time.Now()
	if err == nil {
		d.removeOrphans(links)
	}
	if adopt {
		if err := save(d.cfg.DB, "links marked", func(tx state.Tx) error { return put(tx, bucketMeta, keyLinksMarked, true) }); err != nil {
			d.log.WithError(err).Warn("record that the links are marked")
		}
	}
	orphansDone := time.Now()
	if err := d.guardThenOpen(); err != nil {
		d.log.WithError(err).Error("put the firewall in place: forwarding and route_localnet stay off until the firewall follower succeeds (it tries again every second)")
	}
	d.links = nil
	d.log.WithFields(logrus.Fields{"networks": len(d.networks), "endpoints": len(d.endpoints), "took": time.Since(start).Round(time.Millisecond)}).Info("state restored")
	d.log.WithFields(logrus.Fields{
		"networks_took":  networksDone.Sub(start),
		"endpoints_took": endpointsDone.Sub(networksDone),
		"orphans_took":   orphansDone.Sub(endpointsDone),
		"firewall_took":  time.Since(orphansDone),
	}).Debug("restore steps")
}

// forgetGone forgets the endpoints whose containers are gone: their links
// are not on the host (a bridge endpoint's host veth goes with its
// container's namespace; a macvlan child leaves the host at Join) and
// their container's namespace is gone. Docker deletes an endpoint when its
// container goes; a delete that failed, or that came while the plugin was
// down, never comes again. (After a reboot, Docker cleans up and creates
// new endpoints for the containers it starts.) Each is logged.
func (d *Driver) forgetGone(host hostLinks) {
	if host == nil {
		return // the links could not be listed: nothing can be said
	}
	for _, ep := range d.endpoints {
		if _, ok := host[ep.HostVeth]; ok && ep.HostVeth != "" {
			continue
		}
		if _, ok := host[ep.PeerVeth]; ok {
			continue
		}
		if ep.Sandbox != "" {
			if ns, err := d.sandboxes.Resolve(ep.Sandbox, 0); err != nil || netns.Check(ns.Path) == nil {
				continue // the container lives (or cannot be looked at)
			}
		}
		log := d.log.WithField("endpoint", short(ep.ID)).WithField("network", short(ep.NetworkID))
		if err := d.unpublish(ep); err != nil {
			log.WithError(err).Warn("revoke the published ports of an endpoint whose container is gone")
		}
		if err := d.forget(ep); err != nil {
			log.WithError(err).Warn("forget an endpoint whose container is gone")
			continue
		}
		log.Info("forgot an endpoint whose container is gone (Docker's delete of it never reached the plugin)")
	}
}

// linksMarked reports whether an earlier start marked the recorded links
// as dualstack's (links.Mark).
func (d *Driver) linksMarked() bool {
	marked := false
	_ = d.cfg.DB.View(func(tx state.Tx) error {
		marked = tx.Get(driverPath(bucketMeta), []byte(keyLinksMarked)) != nil
		return nil
	})
	return marked
}

// removeOrphans deletes the links on the host that dualstack marked
// (links.Mark) and that no record claims any more: what a crash between a
// link's creation and its record left. Links dualstack did not mark are
// never touched, whatever their names.
func (d *Driver) removeOrphans(host hostLinks) {
	claimed := map[string]bool{}
	for _, n := range d.networks {
		for _, o := range d.plane(n).owners(n) {
			claimed[o] = true
		}
	}
	for _, ep := range d.endpoints {
		claimed[endpointOwner(ep)] = true
	}
	for name, l := range host {
		owner := links.Owner(l)
		if owner == "" || claimed[owner] {
			continue
		}
		log := d.log.WithField("link", name).WithField("owner", owner)
		if err := links.Delete(name, l.Type(), owner); err != nil {
			log.WithError(err).Warn("remove orphan")
		} else {
			log.Info("removed a link of dualstack's that no network or endpoint claims")
		}
	}
}

// guardThenOpen puts the firewall in place for every network, then turns
// on forwarding and route_localnet where networks need them: a start never
// lets traffic through before the rules that guard it exist. On success
// the driver is open. The driver's lock is held (or the driver not yet
// serving).
func (d *Driver) guardThenOpen() error {
	var forward4, forward6 bool
	for _, n := range d.networks {
		v4, v6 := d.plane(n).forwards(n)
		forward4, forward6 = forward4 || v4, forward6 || v6
	}
	if err := d.applyFirewall(d.forwardDrop(forward4, forward6)); err != nil {
		return err
	}
	var errs []error
	if err := d.enableForwarding(forward4, forward6, d.links); err != nil {
		errs = append(errs, fmt.Errorf("restore forwarding: %w", err))
	}
	for _, n := range d.networks {
		if err := d.plane(n).open(n); err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", short(n.ID), err))
		}
	}
	d.opened = true
	return errors.Join(errs...)
}

// ResumeJoins finishes the container side of joins a previous plugin
// process may have left undone (killed between Join and the interface's
// arrival): for every joined endpoint the extra addresses and settings are
// put in place again, which changes nothing where they already are. The
// plugin calls it once it serves: the work runs in the background, a few
// containers at a time. A container still starting (Engine 20.10 makes its
// namespace only then) is waited for as at Join; one that stopped
// meanwhile never shows up, and its wait ends with the join timeout.
func (d *Driver) ResumeJoins() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ep := range d.endpoints {
		if ep.Sandbox == "" {
			continue
		}
		ns, err := d.sandboxes.Resolve(ep.Sandbox, 0)
		if err == nil {
			err = d.joins.resume(d.log, ns, d.networks[ep.NetworkID], ep)
		}
		if err != nil {
			d.log.WithField("endpoint", short(ep.ID)).WithError(err).Warn("resume the container side of the join")
		}
	}
}
