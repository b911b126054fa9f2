package driver

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/firewall"
)

// What `dualstack doctor` asks of the driver: its networks as they matter
// to the host, the firewall backend it applies its rules with and how it
// reaches container network namespaces.

// DoctorNetwork is one of the driver's networks, as the host sees it.
type DoctorNetwork struct {
	ID   string
	Mode string
	// Link is the network's own host link: its bridge (bridge mode) or its
	// parent (macvlan).
	Link string
	// LAN is the host interface whose network the network shares by
	// design (a macvlan network's parent, an ndp_proxy network's
	// interface), "" for none: routes through it are the LAN's.
	LAN string
	// Routed: the network expects routes into its subnets made by others
	// (host_overlap=true, cluster_routes=none).
	Routed  bool
	Subnets []netip.Prefix
	// Forward4 and Forward6: the network needs forwarding in the family.
	Forward4, Forward6 bool
}

// DoctorNetworks lists the driver's networks, sorted by ID.
func (d *Driver) DoctorNetworks() []DoctorNetwork {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]DoctorNetwork, 0, len(d.networks))
	for _, n := range d.networks {
		plane := d.plane(n)
		dn := DoctorNetwork{
			ID: n.ID, Mode: n.Options.Mode, Link: n.Options.Bridge,
			Routed: n.Options.HostOverlap || n.Options.ClusterRoutes == clusterRoutesNone,
		}
		if n.Options.Mode == ModeMacvlan {
			dn.Link = n.Options.Parent
		}
		if plane != nil {
			dn.LAN = plane.lan(n)
			dn.Forward4, dn.Forward6 = plane.forwards(n)
		}
		for _, p := range n.pools() {
			dn.Subnets = append(dn.Subnets, p.Prefix)
		}
		out = append(out, dn)
	}
	slices.SortFunc(out, func(a, b DoctorNetwork) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// FirewallBackend is the backend the driver's firewall applies its rules
// with, "" when it has none (or one that does not say).
func (d *Driver) FirewallBackend() firewall.Backend {
	if fw, ok := d.cfg.Firewall.(interface{ Backend() firewall.Backend }); ok {
		return fw.Backend()
	}
	return ""
}

// Sandboxes is how the driver reaches container network namespaces.
func (d *Driver) Sandboxes() *sandboxkey.Resolver { return d.sandboxes }
