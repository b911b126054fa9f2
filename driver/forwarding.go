package driver

import (
	"fmt"
	"strings"

	"github.com/dualstack-net/dualstack/internal/sysctl"
)

// The forwarding sysctls.
const (
	forwardKey4 = "net/ipv4/ip_forward"
	forwardKey6 = "net/ipv6/conf/all/forwarding"
)

// enableForwarding turns on forwarding for the families a network routes.
// Call it only once the firewall guards the networks (applyFirewall, with
// forwardDrop's families): forwarding never comes first.
//
// With IPv6 forwarding on, the kernel ignores router advertisements on
// interfaces whose accept_ra is 1, so a host that learns its default route
// from them would lose it (moby#43466). So first, unless UPLINK_ACCEPT_RA is
// false, every host interface whose accept_ra is 1 is set to 2, which keeps
// accepting advertisements with forwarding on. links is the host's links,
// or nil to list them.
func (d *Driver) enableForwarding(v4, v6 bool, links hostLinks) error {
	if v6 && d.cfg.UplinkAcceptRA {
		if links == nil {
			var err error
			if links, err = listLinks(); err != nil {
				return fmt.Errorf("list host interfaces: %w", err)
			}
		}
		for _, l := range links {
			name := l.Attrs().Name
			// Bridge ports (dualstack's veths among them) do no IPv6 of
			// their own, and container ends are about to leave.
			if l.Attrs().MasterIndex != 0 || strings.HasPrefix(name, peerVethPrefix) {
				continue
			}
			key := "net/ipv6/conf/" + name + "/accept_ra"
			if v, err := sysctl.Get(key); err != nil || v != "1" {
				continue
			}
			if err := sysctl.Set(key, "2"); err != nil {
				return fmt.Errorf("keep router advertisements on %s with forwarding on: %w (or set UPLINK_ACCEPT_RA=false)", name, err)
			}
			d.log.WithField("interface", name).Info("accept_ra 1 -> 2, so the interface keeps its router-advertised routes with IPv6 forwarding on")
		}
	}
	for _, f := range []struct {
		on  bool
		key string
	}{{v4, forwardKey4}, {v6, forwardKey6}} {
		if !f.on {
			continue
		}
		if v, err := sysctl.Get(f.key); err == nil && v == "1" {
			continue
		}
		if err := sysctl.Set(f.key, "1"); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
		d.log.WithField("sysctl", f.key).Info("forwarding enabled")
	}
	return nil
}
