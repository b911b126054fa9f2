package driver

import "github.com/dualstack-net/dualstack/driver/firewall"

// reconcile brings the kernel in line with the persisted state before the
// plugin serves: missing bridges and their gateways are created again (after
// a reboot, say), surviving endpoints are put back on them, forwarding is
// enabled where networks need it, links named by dualstack that no record
// claims are deleted, and the firewall chain is rebuilt.
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
	for _, ep := range d.endpoints {
		if err := d.plane.restoreEndpoint(d.networks[ep.NetworkID], ep); err != nil {
			d.log.WithField("endpoint", short(ep.ID)).Warnf("restore: %v", err)
		}
	}
	d.plane.removeOrphans(d.networks, d.endpoints, d.log)
	if fw := d.cfg.Firewall; fw != nil {
		var nets []firewall.Network
		for _, n := range d.networks {
			nets = append(nets, fwNetwork(n))
		}
		if err := fw.Reset(nets); err != nil {
			d.log.Warnf("restore firewall rules: %v", err)
		}
	}
}
