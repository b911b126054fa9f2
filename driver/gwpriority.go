package driver

import (
	"bytes"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/driver/portmap"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/state"
)

// Gateway priority (Docker 28's gw_priority).
//
// A container has a gateway endpoint per family, the same one or two.
// Docker sends ProgramExternalConnectivity to an endpoint when it becomes
// the gateway of either family, or of the other one too, or stops being one
// of them, and RevokeExternalConnectivity when it is the gateway of
// neither any more. The published ports follow (see ports.go), in the
// families the endpoint is the gateway of: the other family's host ports
// are the other gateway network's to publish. Docker tells a remote driver
// one case (no_proxy_6to4: the endpoint is the IPv4 gateway, another the
// IPv6 one); the other one (the IPv6 gateway only) shows in the container's
// IPv4 default route, which Docker sets before it calls: it leaves through
// another interface.

// optNoProxy6To4 is set in ProgramExternalConnectivity's options of an
// endpoint that is the container's IPv4 gateway while another endpoint is
// its IPv6 gateway (moby's remote driver; netlabel.NoProxy6To4).
const optNoProxy6To4 = "com.docker.network.driver.private.no_proxy_6to4"

// gateway is what an endpoint is to publish as its container's gateway.
type gateway struct {
	// ports are the container's bindings, if given (current engines).
	ports []portmap.Binding
	given bool
	// only is the family the endpoint is the gateway of, 0 for both.
	only firewall.Family
}

// gatewayOf reads ProgramExternalConnectivity's options of ep, and the
// container's IPv4 default route where they do not tell.
func (d *Driver) gatewayOf(ep *endpoint, opts map[string]interface{}) (gateway, error) {
	var g gateway
	var err error
	if g.ports, err = portmap.Parse(opts); err != nil {
		return g, err
	}
	_, g.given = opts[portmap.Option]
	if only4, _ := opts[optNoProxy6To4].(bool); only4 {
		g.only = firewall.IPv4
	} else if ep.IPv6.IsValid() && g.hasPorts(ep) && d.otherIPv4Gateway(ep) {
		// Read only when there is something to publish: most
		// containers publish nothing, and their start pays no visit to
		// their namespace.
		g.only = firewall.IPv6
	}
	return g, nil
}

// hasPorts reports whether ep has ports to publish or published.
func (g gateway) hasPorts(ep *endpoint) bool {
	if g.given {
		return len(g.ports) > 0 || len(ep.Published) > 0
	}
	return len(ep.Ports) > 0 || len(ep.Published) > 0
}

// otherIPv4Gateway reports whether ep's container has an IPv4 default route
// and none through ep's interface: another endpoint is its IPv4 gateway.
// A namespace not there yet (Engine 20.10, whose single gateway endpoint
// is both families') or that cannot be read says no.
func (d *Driver) otherIPv4Gateway(ep *endpoint) bool {
	ns, err := d.sandboxes.Resolve(ep.Sandbox, 0)
	if err != nil || netns.Check(ns.Path) != nil {
		return false
	}
	mac, _ := net.ParseMAC(ep.MAC)
	other := false
	_ = netns.Do(ns.Path, func() error {
		routes, err := kernel.Routes(netlink.FAMILY_V4, nil, 0)
		if err != nil {
			return err
		}
		for _, r := range routes {
			if !isDefault(r) {
				continue
			}
			l, err := netlink.LinkByIndex(r.LinkIndex)
			if err != nil {
				continue
			}
			if bytes.Equal(l.Attrs().HardwareAddr, mac) {
				other = false
				return nil
			}
			other = true
		}
		return nil
	})
	return other
}

// isDefault reports whether r is a default route.
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// publishGateway publishes ep's ports as its container's gateway: in the
// families it is the gateway of, again if they changed, and nothing new
// for a retried call.
func (d *Driver) publishGateway(ep *endpoint, opts map[string]interface{}) error {
	g, err := d.gatewayOf(ep, opts)
	if err != nil {
		return fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	had := len(ep.Published) > 0
	if had {
		if ep.PublishedOnly == g.only {
			return nil
		}
		if err := d.unpublish(ep); err != nil {
			return fmt.Errorf("endpoint %s: revoke its ports to publish them in %s: %w", short(ep.ID), familyNames(g.only), err)
		}
	}
	if g.given {
		ep.Ports = g.ports
	}
	if err := d.publish(d.networks[ep.NetworkID], ep, ep.Sandbox, g.only); err != nil {
		return fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	if len(ep.Published) == 0 && !had {
		return nil
	}
	if len(ep.Published) > 0 {
		ep.PublishedOnly = g.only
	}
	if err := save(d.cfg.DB, "endpoint "+ep.ID, func(tx state.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) }); err != nil {
		_ = d.unpublish(ep)
		return err
	}
	if len(ep.Published) > 0 {
		d.log.WithField("endpoint", short(ep.ID)).WithField("ports", publishedString(ep.Published)).WithField("families", familyNames(g.only)).Info("ports published")
	}
	return nil
}

// familyNames names the families only stands for (0: both).
func familyNames(only firewall.Family) string {
	if only == 0 {
		return "IPv4 and IPv6"
	}
	return only.String()
}
