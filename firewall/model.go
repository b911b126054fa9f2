// Package firewall owns dualstack's packet-filter rules, in both families,
// through the iptables backend the host uses (nft or legacy).
//
// The rules are declarative, as kube-proxy's are: Rules computes every rule
// of dualstack's chains from a State (networks, published ports, and what
// the host's own rules say of Docker), and Apply makes the kernel hold
// exactly that with one iptables-restore --noflush per family, which
// rewrites dualstack's chains and fixes its hooks in one atomic step and
// touches nothing else. When the kernel holds it already (a restart, a
// change of the host's rules that left dualstack's alone), Apply reads one
// iptables-save per family and changes nothing. The same path serves
// creating and removing networks, joins and leaves, the start and the
// follower of the host's rules (Watch); with no network left, it removes
// every chain and hook of dualstack's.
//
// What the rules guarantee, in both families, as Docker 28 does for its own
// networks:
//   - a container is reached from outside its network only through a
//     published port: translated from the host address it was published on
//     (a port published on 127.0.0.1 is for the host alone), or, for IPv6
//     in routed mode and a port published without a host address, at the
//     container's own address;
//   - dualstack networks are isolated from each other and from Docker's
//     own bridge networks, in both directions; published ports stay
//     reachable from everywhere;
//   - internal networks reach nothing outside the network;
//   - a packet whose source lies in a network's subnets is dropped unless
//     it comes in where the routing table says that source lives (a
//     strict reverse-path check, both families);
//   - Docker's DOCKER-USER chain comes first: dualstack's hook in FORWARD
//     sits right after the jump to it, wherever the engine made one;
//   - forwarding that dualstack turns on comes with FORWARD policy DROP
//     for that family (State.ForwardDrop), set in the same restore, before
//     the sysctl.
package firewall

import (
	"fmt"
	"net/netip"
)

// dualstack's chains. Every rule dualstack adds lives in one of them; the
// built-in chains get one jump each (the hooks).
const (
	// ChainForward is jumped to from filter FORWARD, right after Docker's
	// DOCKER-USER. It runs Allow, then Drop, then accepts what leaves a
	// non-internal network.
	ChainForward = "DUALSTACK-FORWARD"
	// ChainAllow accepts traffic to containers: replies, published ports
	// and, with icc, traffic between containers of one network.
	ChainAllow = "DUALSTACK-ALLOW"
	// ChainDrop drops everything else that goes to a dualstack network
	// (new connections from outside, from other networks, and within a
	// network without icc), everything that leaves an internal one, and
	// new connections from a dualstack network into Docker's own bridge
	// networks that are not to a published port.
	ChainDrop = "DUALSTACK-DROP"
	// ChainDNAT (nat) maps published host ports to containers.
	ChainDNAT = "DUALSTACK-DNAT"
	// ChainPostrouting (nat) masquerades what leaves a network, and
	// hairpin and loopback connections to published ports.
	ChainPostrouting = "DUALSTACK-POSTROUTING"
	// ChainPrerouting (raw) drops packets whose source lies in a
	// network's subnets but that arrive where the routing table says that
	// source does not live (rpfilter: forged sources), and, in IPv4,
	// packets to 127.0.0.0/8 that come from a bridge: route_localnet,
	// which loopback port publishing needs, would otherwise let
	// containers reach the host's loopback services.
	ChainPrerouting = "DUALSTACK-PREROUTING"
)

// Family is an IP family: 4 or 6.
type Family int

// The two families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

// Families are both families, IPv4 first.
var Families = []Family{IPv4, IPv6}

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// Network is what the rules of one network depend on.
type Network struct {
	Bridge  string
	Subnets []netip.Prefix // of both families
	// Internal networks reach nothing outside the network and nothing
	// outside reaches them.
	Internal bool
	// ICC lets containers of the network reach each other.
	ICC bool
	// Masquerade4 masquerades IPv4 traffic that leaves the network.
	Masquerade4 bool
	// NAT6 masquerades IPv6 traffic that leaves the network (ipv6_mode=nat);
	// otherwise IPv6 is routed, and only replies and published ports come in.
	NAT6 bool
	// Cluster: the network spans hosts (-o cluster), and Subnets are the
	// whole cluster's. Containers of the other hosts come in from their
	// own addresses as the network's own containers do (with ICC), and
	// nothing bound for them is masqueraded.
	Cluster bool
	// OnLink is the host interface whose link shares the network's IPv6
	// subnets (ndp_proxy): other nodes of the link hold addresses there,
	// and their neighbour discovery comes in through it.
	OnLink string
	// Routed4 (Docker's gateway mode routed for IPv4): a port published
	// without a host address is reached at the container's own IPv4
	// address too, as routed IPv6's is. (Masquerade4 is false then.)
	Routed4 bool
	// Unprotected4 and Unprotected6 (gateway mode nat-unprotected): every
	// port of the network's containers is reached from outside in that
	// family; other networks, and the network itself without ICC, stay
	// out as before.
	Unprotected4, Unprotected6 bool
	// Isolated4 and Isolated6 (gateway mode isolated, an internal
	// network's): the family has no gateway on the bridge, so the host
	// has no route to its subnets, and a source in them comes only from
	// the bridge.
	Isolated4, Isolated6 bool
	// Trusted are host interfaces (trusted_host_interfaces) whose
	// packets reach a port published without a host address at the
	// container's own address too, in a family where it is otherwise
	// reached only through the translation.
	Trusted []string
}

// routed reports whether n's containers are reached at their own
// addresses in family f: published ports directly, not only through the
// translation.
func (n Network) routed(f Family) bool {
	if f == IPv4 {
		return n.Routed4
	}
	return !n.NAT6
}

// isolated reports whether n's family f has no gateway (see Isolated4).
func (n Network) isolated(f Family) bool {
	if f == IPv4 {
		return n.Isolated4
	}
	return n.Isolated6
}

// unprotected reports whether every port of n's containers is open in
// family f.
func (n Network) unprotected(f Family) bool {
	if f == IPv4 {
		return n.Unprotected4
	}
	return n.Unprotected6
}

// Port is one published port of one family: HostIP:HostPort (any local
// address if HostIP is invalid or unspecified) goes to
// Container:ContainerPort.
type Port struct {
	Bridge        string     `json:"bridge"`
	Proto         string     `json:"proto"` // tcp, udp or sctp
	HostIP        netip.Addr `json:"hostIP"`
	HostPort      uint16     `json:"hostPort"`
	Container     netip.Addr `json:"container"`
	ContainerPort uint16     `json:"containerPort"`
	// Also are the container's other routed IPv6 addresses (the global
	// addresses of a delegated prefix): a port published without a host
	// address on a routed IPv6 network is reached directly at each of
	// them too. Not recorded: the driver sets them for each apply.
	Also []netip.Addr `json:"-"`
}

// Family is the family of the port's container address.
func (p Port) Family() Family {
	if p.Container.Is4() {
		return IPv4
	}
	return IPv6
}

// anyHost reports whether the port is published on every host address.
func (p Port) anyHost() bool { return !p.HostIP.IsValid() || p.HostIP.IsUnspecified() }

func (p Port) String() string {
	host := "*"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	return fmt.Sprintf("%s:%d/%s -> %s", host, p.HostPort, p.Proto, netip.AddrPortFrom(p.Container, p.ContainerPort))
}

// State is everything dualstack's rules depend on that the plugin knows.
// (What the host's own rules say of Docker is read at Apply.)
type State struct {
	Networks []Network
	Ports    []Port
	// ForwardDrop sets filter FORWARD's policy to DROP in that family:
	// dualstack is about to turn forwarding on there. Set in the same
	// restore as the rules that accept dualstack's own traffic.
	ForwardDrop map[Family]bool
}

// network returns the network whose bridge is name.
func (s State) network(name string) (Network, bool) {
	for _, n := range s.Networks {
		if n.Bridge == name {
			return n, true
		}
	}
	return Network{}, false
}
