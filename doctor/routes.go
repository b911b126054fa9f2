package doctor

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/kernel"
)

// ownProtocols are the route protocols of dualstack's own routes: the
// cluster's host-gw routes (213), routes learned over BGP (214), the NDP
// proxy's (215) and delegated prefixes' (216).
var ownProtocols = []int{213, 214, 215, 216}

// checkRouteCollision: a route of the host into a dualstack network's
// subnet sends (part of) that network's traffic elsewhere: its containers
// are cut off the host, or the host off the place the route leads to.
// Not the host's own: dualstack's routes, the routes on container bridges
// (dualstack's and Docker's), the default route, link-local, loopback and
// multicast ones, policy routes (blackhole, unreachable, ...), routes
// through the LAN a network shares by design, and any route into a
// network that expects them (host_overlap=true, cluster_routes=none).
func checkRouteCollision(h Host) []Finding {
	var out []Finding
	for _, r := range h.Routes {
		if !hostRoute(h, r) {
			continue
		}
		for _, n := range h.Networks {
			if n.Routed || r.Dev == n.Link || r.Dev == n.LAN {
				continue
			}
			for _, s := range n.Subnets {
				if !s.Overlaps(r.Dst) {
					continue
				}
				out = append(out, collision(r, n, s.String()))
				break
			}
		}
	}
	return out
}

// hostRoute reports whether r is a route the host's administrator (or
// another program) made to a network.
func hostRoute(h Host, r Route) bool {
	a := r.Dst.Addr()
	if r.Type != unix.RTN_UNICAST || r.Dst.Bits() == 0 || r.Dev == "" || slices.Contains(ownProtocols, r.Proto) ||
		a.IsLinkLocalUnicast() || a.IsLoopback() || a.IsMulticast() {
		return false
	}
	l := h.Links[r.Dev]
	return !l.Dualstack && !l.ContainerBridge
}

// collision is the finding of route r into subnet of network n.
func collision(r Route, n Network, subnet string) Finding {
	route := r.Dst.String()
	if r.Via.IsValid() {
		route += " via " + r.Via.String()
	}
	route += " dev " + r.Dev
	remove := "ip route del " + route
	if r.Proto == unix.RTPROT_KERNEL {
		remove = "remove the address of " + r.Dev + " in " + r.Dst.String() + " that brings the route (ip addr del ADDRESS dev " + r.Dev + ")"
	}
	return Finding{
		Check: CheckRouteCollision, Severity: SeverityError, Object: route,
		Problem: fmt.Sprintf("the host's route %s (proto %s) overlaps subnet %s of dualstack's %s: "+
			"the host sends that part of the network's traffic elsewhere, cutting its containers off the host or the host off %s",
			route, kernel.ProtoName(r.Proto), subnet, networkName(n), r.Dst),
		Fix: remove + ", or recreate the network with another subnet (docker network rm, then docker network create --subnet ...); " +
			"or with -o host_overlap=true if you route it there on purpose",
	}
}
