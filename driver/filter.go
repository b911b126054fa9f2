package driver

import (
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver/firewall"
	"github.com/dualstack-net/dualstack/driver/sysctl"
	"github.com/dualstack-net/dualstack/state"
)

// The packet filter follows the driver's state through one path: every
// change (a network created or removed, ports published or revoked), the
// start and the periodic check hand the firewall the whole state, and the
// firewall makes its rules that state's (see driver/firewall).

// filterSync orders the applies: the changes of requests apply with the
// driver's lock held, in order; the periodic check takes its state under
// the lock and applies it outside, unless a newer state was applied
// meanwhile.
type filterSync struct {
	mu      sync.Mutex // held while applying
	taken   uint64     // the latest state taken (under the driver's lock)
	applied uint64     // the latest state applied
}

// firewallState is the firewall's part of every bridge network and the
// ports published on them (macvlan traffic never crosses the host). The
// driver's lock is held.
func (d *Driver) firewallState() firewall.State {
	var s firewall.State
	for _, n := range d.networks {
		if fn, ok := d.plane(n).filter(n); ok {
			s.Networks = append(s.Networks, fn)
		}
	}
	for _, ep := range d.endpoints {
		s.Ports = append(s.Ports, ep.Published...)
	}
	return s
}

// applyFirewall makes the rules those of the driver's state now, with
// FORWARD policy DROP in the families of drop. The driver's lock is held.
func (d *Driver) applyFirewall(drop map[firewall.Family]bool) error {
	fw := d.cfg.Firewall
	if fw == nil {
		return nil
	}
	s := d.firewallState()
	s.ForwardDrop = drop
	d.filter.taken++
	v := d.filter.taken
	d.filter.mu.Lock()
	defer d.filter.mu.Unlock()
	if err := fw.Apply(s); err != nil {
		return fmt.Errorf("%w", err)
	}
	d.filter.applied = v
	for f := range drop {
		d.log.WithField("family", f).Info("filter FORWARD policy set to DROP, as Docker sets it when it turns forwarding on (FORWARD_DROP=false leaves the policy alone)")
	}
	return nil
}

// SyncFirewall puts back rules and hooks of dualstack's that someone
// removed or changed since (a firewall manager reloading, say), and follows
// the host's own rules (Docker's networks, DOCKER-USER), changing nothing
// when all is in place. The plugin calls it periodically. It holds the
// driver's lock only to take the state. A start that could not apply the
// firewall turns forwarding and route_localnet on once this succeeds.
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
	d.filter.taken++
	v := d.filter.taken
	d.mu.Unlock()

	d.filter.mu.Lock()
	defer d.filter.mu.Unlock()
	if d.filter.applied > v {
		return nil // a newer state is in place
	}
	if err := fw.Apply(s); err != nil {
		return err
	}
	d.filter.applied = v
	return nil
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

// The state file records in driver/meta the firewall backend, and that the
// links dualstack made are marked (links.Mark).
var (
	bucketMeta     = "meta"
	keyBackend     = "firewall-backend"
	keyLinksMarked = "links-marked"
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
