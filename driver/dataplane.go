package driver

import (
	"fmt"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/links"
)

// dataplane is a network mode: what it does in the kernel, and the rules
// that differ between modes, which the driver never decides by mode
// itself (its IPAM preparation, its part in the firewall, forwarding,
// published ports, the LAN it shares). The driver calls it with its lock
// held; others are the driver's other networks.
type dataplane interface {
	// checkFree fails if n's links are taken by something else, or n
	// clashes with another network.
	checkFree(n *network, others map[string]*network) error
	// prepare readies n's addresses in the IPAM before anything is built.
	prepare(n *network, ipam *addrbook.Book) error
	// createNetwork builds the network; undo removes what it built.
	createNetwork(n *network, others map[string]*network) (undo func(), err error)
	deleteNetwork(n *network, others map[string]*network) error
	// restoreNetwork recreates what is missing of a recorded network, and
	// takes what is there if it carries the network's mark (links.Mark),
	// or no mark at all with adopt (links made before dualstack marked
	// them).
	restoreNetwork(n *network, adopt bool) error
	// restoreEndpoint reconnects a recorded endpoint whose links still
	// exist; links is the host's links, listed after restoreNetwork.
	restoreEndpoint(n *network, ep *endpoint, links hostLinks, adopt bool) error
	// createEndpoint names and builds ep's links.
	createEndpoint(n *network, ep *endpoint) error
	deleteEndpoint(n *network, ep *endpoint) error
	// owners lists the owners of the links n has on the host besides its
	// endpoints' (links.Mark), so that the orphan sweep spares them.
	owners(n *network) []string
	// filter is n's part in the host's packet filter; false when n's
	// traffic never crosses it.
	filter(n *network) (firewall.Network, bool)
	// forwards says which families n routes through the host.
	forwards(n *network) (v4, v6 bool)
	// publishes reports whether n's containers publish ports through the
	// host.
	publishes(n *network) bool
	// lan is the host interface whose network n's subnets share by design
	// ("" for none).
	lan(n *network) string
	// open turns on what lets traffic into the network that only the
	// firewall guards; the driver calls it once the firewall is in place.
	open(n *network) error
	// describe adds n's mode's fields to its log lines.
	describe(n *network, log logrus.FieldLogger) logrus.FieldLogger
	// routed reports whether the host routes to n's containers, which
	// sit behind it: no route of dualstack's goes into n's subnets, and
	// in a cluster network each host's blocks are routed, their gateways
	// on the host (true); or whether n's containers are on a LAN whose
	// router is outside the host, its blocks mere ranges (false).
	routed(n *network) bool
	// define adds the mode's part to the definition of n's cluster
	// network, which every host's must match.
	define(n *network, def *cluster.Definition)
	// putGateways puts the gateways of the blocks a routed cluster
	// network holds now (n.blockGateways) on its links.
	putGateways(n *network) error
}

// plane is n's mode.
func (d *Driver) plane(n *network) dataplane { return d.planes[n.Options.Mode] }

// The owners of dualstack's links (links.Mark): a network's bridge, an
// endpoint's veth pair or macvlan child, a macvlan network's host link, a
// parent dualstack created. An endpoint and a host link own their
// addresses in the IPAM under the same names.
func networkOwner(n *network) string    { return "network:" + n.ID }
func endpointOwner(ep *endpoint) string { return "endpoint:" + ep.ID }
func hostLinkOwner(n *network) string   { return "host-link:" + n.ID }
func parentOwner(parent string) string  { return "parent:" + parent }

// claim checks that link is owner's, marking it first if it carries no
// mark at all and adopt says so (a link made before dualstack marked its
// links).
func claim(link netlink.Link, kind, owner string, adopt bool) error {
	if adopt && links.Owner(link) == "" && link.Type() == kind {
		if err := netlink.LinkSetAlias(link, links.Mark(owner)); err != nil {
			return fmt.Errorf("mark %s as dualstack's: %w", link.Attrs().Name, err)
		}
		return nil
	}
	return links.Check(link, kind, owner)
}
