package driver

import (
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/ndp"
)

// A network whose containers sit on a LAN with a router outside the host
// (macvlan), accept its advertisements (accept_ra) and have an IPv6
// subnet without a --gateway gets the LAN's router from the parent's
// advertisements, and Join gives it to Docker as the container's IPv6
// gateway: Docker counts an endpoint as having an IPv6 gateway only if
// Join names one (or a route to ::/0), and otherwise never makes it the
// container's gateway endpoint and stops forwarding external DNS over
// IPv6. The containers keep their own default route from the
// advertisements as well, below Docker's (sandbox.RADefaultMetric).

// raGatewayWait bounds how long the first container of a network waits
// for the routers of its parent to answer; later ones do not wait.
const raGatewayWait = time.Second

// raGateways is the routers the driver follows for its networks.
type raGateways struct {
	routers *ndp.Routers
	log     logrus.FieldLogger
	mu      sync.Mutex
	// warned are the networks told that their parent has no router.
	warned map[string]bool
}

func newRAGateways(log logrus.FieldLogger) *raGateways {
	return &raGateways{routers: ndp.NewRouters(log), log: log, warned: map[string]bool{}}
}

// routerLink is the link whose advertised router is n's containers'
// IPv6 gateway, or "" when n's containers get none that way.
func (d *Driver) routerLink(n *network) string {
	plane := d.plane(n)
	_, forwards6 := plane.forwards(n)
	lan := plane.lan(n)
	if forwards6 || lan == "" || n.Options.AcceptRA == 0 {
		return ""
	}
	for _, p := range n.V6 {
		if !p.Gateway.IsValid() {
			return lan
		}
	}
	return ""
}

// routersUp starts following the routers of n's parent, for a new or
// restored network that learns its gateway from them. A parent that
// cannot be followed leaves its containers without an IPv6 gateway from
// Docker (they still take the advertisements' route themselves).
func (d *Driver) routersUp(n *network) {
	link := d.routerLink(n)
	if link == "" {
		return
	}
	if err := d.ra.routers.Follow(link, n.ID); err != nil {
		d.log.WithField("network", short(n.ID)).WithField("parent", link).WithError(err).
			Warn("learn the parent's routers: containers get no IPv6 gateway from Docker; give the network --gateway")
	}
}

// routersDown stops following the routers of n's parent for n.
func (d *Driver) routersDown(n *network) {
	if link := d.routerLink(n); link != "" {
		d.ra.routers.Unfollow(link, n.ID)
	}
	d.ra.mu.Lock()
	delete(d.ra.warned, n.ID)
	d.ra.mu.Unlock()
}

// learnedGateway is the IPv6 gateway Join gives a container of n whose
// subnet has none of the user's: the link-local address of the parent's
// router whose lifetime ends last, or "" (logged once per network at
// warn) when the parent has none.
func (d *Driver) learnedGateway(n *network) string {
	link := d.routerLink(n)
	if link == "" {
		return ""
	}
	if a, ok := d.ra.routers.Router(link, n.ID, raGatewayWait); ok {
		return a.String()
	}
	d.ra.mu.Lock()
	defer d.ra.mu.Unlock()
	if !d.ra.warned[n.ID] {
		d.ra.warned[n.ID] = true
		d.log.WithField("network", short(n.ID)).WithField("parent", link).
			Warnf("no router advertises on parent %s (within %s of the network's creation): containers get no IPv6 gateway from Docker, so it neither makes this network their IPv6 gateway nor forwards their DNS queries over IPv6; give the network --gateway, or have a router advertise on %s", link, raGatewayWait, link)
	}
	return ""
}
