package driver

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/state"
)

// The packet filter follows the driver's state through one path: every
// change (a network created or removed, ports published or revoked), the
// start and the follower (FollowFirewall) hand the firewall the whole
// state, and the firewall makes its rules that state's (see
// package firewall). firewall.Order keeps the applies in the order of the
// states: those of requests apply under the driver's lock, the
// follower's outside it, unless a newer state was applied meanwhile.

// firewallState is the firewall's part of every bridge network and the
// ports published on them (macvlan traffic never crosses the host), with
// FORWARD policy DROP in the families whose forwarding dualstack turned
// on. The driver's lock is held.
func (d *Driver) firewallState() firewall.State {
	var s firewall.State
	now := time.Now()
	for _, n := range d.networks {
		if fn, ok := d.plane(n).filter(n); ok {
			for _, t := range d.parts(n, now) {
				fn.Subnets = append(fn.Subnets, t.Part)
			}
			s.Networks = append(s.Networks, fn)
		}
	}
	for _, ep := range d.endpoints {
		s.Ports = append(s.Ports, d.routedPorts(ep, now)...)
	}
	if d.cfg.ForwardDrop && len(d.dropped) > 0 {
		s.ForwardDrop = maps.Clone(d.dropped)
	}
	return s
}

// applyFirewall makes the rules those of the driver's state now, with
// FORWARD policy DROP in the families of drop (about to get forwarding)
// and those recorded. A failed apply leaves the rules as they were (the
// firewall goes back to its last good rules) and fails the request. The
// driver's lock is held.
func (d *Driver) applyFirewall(drop map[firewall.Family]bool) error {
	fw := d.cfg.Firewall
	if fw == nil {
		return nil
	}
	s := d.firewallState()
	s.ForwardDrop = union(s.ForwardDrop, drop)
	if err := d.filter.Apply(fw, s, d.filter.Take()); err != nil {
		return err
	}
	for f := range drop {
		d.log.WithField("family", f).Info("filter FORWARD policy set to DROP, as Docker sets it when it turns forwarding on (FORWARD_DROP=false leaves the policy alone)")
	}
	if err := d.recordDropped(drop); err != nil {
		d.log.WithError(err).Warn("the FORWARD policy is DROP now, but is kept so only until the plugin restarts")
	}
	return nil
}

// recordDropped records the families of drop among those whose FORWARD
// policy dualstack keeps at DROP. The driver's lock is held.
func (d *Driver) recordDropped(drop map[firewall.Family]bool) error {
	all := union(d.dropped, drop)
	if len(all) == len(d.dropped) {
		return nil
	}
	if err := save(d.cfg.DB, "FORWARD policy families", func(tx state.Tx) error { return put(tx, bucketMeta, keyForwardDrop, all) }); err != nil {
		return err
	}
	d.dropped = all
	return nil
}

// union returns the families of a and of b (nil when none).
func union(a, b map[firewall.Family]bool) map[firewall.Family]bool {
	if len(b) == 0 {
		return a
	}
	out := maps.Clone(a)
	if out == nil {
		out = map[firewall.Family]bool{}
	}
	maps.Copy(out, b)
	return out
}

// SyncFirewall puts back rules and hooks of dualstack's that someone
// removed, changed or moved since (dockerd restarting, a firewall manager
// reloading), and follows the host's own rules (Docker's networks,
// DOCKER-USER), changing nothing when all is in place. FollowFirewall
// calls it. It holds the driver's lock only to take the state. A start
// that could not apply the firewall turns forwarding and route_localnet
// on once this succeeds.
func (d *Driver) SyncFirewall() error {
	fw := d.cfg.Firewall
	if fw == nil {
		return nil
	}
	d.mu.Lock()
	if !d.opened {
		defer d.mu.Unlock()
		return d.guardThenOpen()
	}
	s := d.firewallState()
	v := d.filter.Take()
	d.mu.Unlock()

	changed, err := d.filter.Repair(fw, s, v)
	if err != nil {
		return err
	}
	if len(changed) > 0 {
		d.log.WithField("families", changed).Info("firewall: the host's rules changed (a Docker network, dockerd starting, another manager): dualstack's rules and hooks are in place again")
	}
	return nil
}

// firewallSyncInterval is how often FollowFirewall checks the rules even
// when the host reports no change.
const firewallSyncInterval = 30 * time.Second

// FollowFirewall keeps dualstack's rules in place until ctx is done: at
// once when the host's rules change by another hand (see the firewall's
// Follow), and every firewallSyncInterval in any case. It runs on the
// calling goroutine, which must be in the host's network namespace.
func (d *Driver) FollowFirewall(ctx context.Context) {
	fw := d.cfg.Firewall
	if fw == nil {
		return
	}
	fw.Follow(ctx, firewallSyncInterval, func() error {
		err := d.SyncFirewall()
		if err != nil {
			d.log.WithError(err).Warn("firewall: put dualstack's rules back in place (tried again in a second)")
		}
		return err
	}, func(err error) {
		d.log.WithError(err).Warn("firewall: cannot listen to the host's rule changes; comparing them every few hundred milliseconds instead")
	})
}

// forwardDrop lists the families whose forwarding the driver is about to
// turn on (off now, wanted by v4/v6), if FORWARD_DROP asks for the policy
// DROP then.
func (d *Driver) forwardDrop(v4, v6 bool) map[firewall.Family]bool {
	if !d.cfg.ForwardDrop {
		return nil
	}
	var drop map[firewall.Family]bool
	for _, f := range []struct {
		on     bool
		key    string
		family firewall.Family
	}{{v4, forwardKey4, firewall.IPv4}, {v6, forwardKey6, firewall.IPv6}} {
		if v, err := sysctl.Get(f.key); f.on && err == nil && v != "1" {
			if drop == nil {
				drop = map[firewall.Family]bool{}
			}
			drop[f.family] = true
		}
	}
	return drop
}

// The state file records in driver/meta the firewall backend, that the
// links dualstack made are marked (links.Mark), and the families whose
// FORWARD policy dualstack set to DROP.
var (
	bucketMeta     = "meta"
	keyBackend     = "firewall-backend"
	keyLinksMarked = "links-marked"
	keyForwardDrop = "forward-drop"
)

// ChooseFirewall returns the firewall of this start: its backend is the
// FIREWALL_BACKEND setting ("" for auto), or the one recorded at an
// earlier start, unless the host's rules moved to the other backend since
// (then dualstack's rules in the old one are removed), or at the first
// start the one holding the host's rules. The choice is recorded and
// logged.
func ChooseFirewall(db state.Store, setting firewall.Backend, log logrus.FieldLogger) (*firewall.Firewall, error) {
	var recorded firewall.Backend
	err := db.View(func(tx state.Tx) error {
		_, err := get(tx, bucketMeta, keyBackend, &recorded)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the recorded firewall backend: %w", err)
	}
	use, old, why := firewall.Choose(setting, recorded)
	if old != "" {
		if err := firewall.New(old).Apply(firewall.State{}); err != nil {
			log.WithField("backend", old).WithError(err).Warn("remove dualstack's rules from the backend it used before")
		} else {
			log.WithField("backend", old).Info("removed dualstack's rules from the backend it used before")
		}
	}
	if use != recorded {
		if err := save(db, "firewall backend", func(tx state.Tx) error { return put(tx, bucketMeta, keyBackend, use) }); err != nil {
			return nil, err
		}
	}
	log.WithField("backend", use).WithField("why", why).Info("firewall backend")
	return firewall.New(use), nil
}
