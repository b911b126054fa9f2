package driver

import "github.com/dualstack-net/dualstack/driver/firewall"

// reconcile brings the kernel in line with the persisted state before the
// plugin serves: missing bridges and their gateways are created again (after
// a reboot, say), surviving endpoints are put back on them, forwarding is
// enabled where networks need it, links named by dualstack that no record
// claims are deleted, published host ports are reserved again, and the
// firewall's chains are made to hold exactly the rules of the networks and
// published ports (none at all without networks).
func (d *Driver) reconcile() {
	for _, n := range d.networks {
		log := d.log.WithField("network", short(n.ID))
		if err := d.plane.restoreNetwork(n); err != nil {
			log.Warnf("restore: %v", err)
			continue
		}
		if !n.Options.Internal {
			if err := d.enableForwarding(len(n.V4) > 0, len(n.V6) > 0); err != nil {
				log.Warnf("restore forwarding: %v", err)
			}
		}
	}
	var ports []firewall.Port
	for _, ep := range d.endpoints {
		if err := d.plane.restoreEndpoint(d.networks[ep.NetworkID], ep); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).Warnf("restore: %v", err)
		}
		if err := d.reservePublished(ep); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).Warnf("reserve published host ports again: %v", err)
		}
		ports = append(ports, ep.Published...)
	}
	d.plane.removeOrphans(d.networks, d.endpoints, d.log)
	if fw := d.cfg.Firewall; fw != nil {
		var nets []firewall.Network
		for _, n := range d.networks {
			nets = append(nets, fwNetwork(n))
		}
		if err := fw.Reset(nets, ports); err != nil {
			d.log.Warnf("restore firewall rules: %v", err)
		}
	}
}

// SyncFirewall puts back rules and hooks of dualstack's that someone
// removed since (a firewall manager reloading, say), changing nothing when
// all is in place. The plugin calls it periodically.
func (d *Driver) SyncFirewall() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	fw := d.cfg.Firewall
	if fw == nil || len(d.networks) == 0 {
		return nil
	}
	var nets []firewall.Network
	var ports []firewall.Port
	for _, n := range d.networks {
		nets = append(nets, fwNetwork(n))
	}
	for _, ep := range d.endpoints {
		ports = append(ports, ep.Published...)
	}
	return fw.Reset(nets, ports)
}
