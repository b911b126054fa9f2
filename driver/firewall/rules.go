package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
)

// dualstack's chains. Every rule dualstack adds lives in one of them; the
// built-in chains only get one jump each (the hooks).
const (
	// ChainForward is jumped to first from filter FORWARD. It runs Allow,
	// then Drop, then accepts what leaves a non-internal network.
	ChainForward = "DUALSTACK-FORWARD"
	// ChainAllow accepts traffic to containers: replies, published ports
	// and, with icc, traffic between containers of one network.
	ChainAllow = "DUALSTACK-ALLOW"
	// ChainDrop drops everything else that goes to a dualstack network
	// (new connections from outside, from other networks, and within a
	// network without icc) and everything that leaves an internal one.
	ChainDrop = "DUALSTACK-DROP"
	// ChainDNAT (nat) maps published host ports to containers.
	ChainDNAT = "DUALSTACK-DNAT"
	// ChainPostrouting (nat) masquerades what leaves a network, and
	// hairpin and loopback connections to published ports.
	ChainPostrouting = "DUALSTACK-POSTROUTING"
	// ChainPrerouting (raw, IPv4) drops packets to 127.0.0.0/8 that come
	// from a bridge: route_localnet, which loopback port publishing needs,
	// would otherwise let containers reach the host's loopback services.
	ChainPrerouting = "DUALSTACK-PREROUTING"
)

// Family is an IP family: 4 or 6.
type Family int

// The two families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

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
}

// Port is one published port of one family: HostIP:HostPort (any local
// address if HostIP is invalid) goes to Container:ContainerPort.
type Port struct {
	Bridge        string     `json:"bridge"`
	Proto         string     `json:"proto"` // tcp, udp or sctp
	HostIP        netip.Addr `json:"hostIP"`
	HostPort      uint16     `json:"hostPort"`
	Container     netip.Addr `json:"container"`
	ContainerPort uint16     `json:"containerPort"`
}

// Family is the family of the port's container address.
func (p Port) Family() Family {
	if p.Container.Is4() {
		return IPv4
	}
	return IPv6
}

func (p Port) String() string {
	host := "*"
	if p.HostIP.IsValid() {
		host = p.HostIP.String()
	}
	return fmt.Sprintf("%s:%d/%s -> %s", host, p.HostPort, p.Proto, netip.AddrPortFrom(p.Container, p.ContainerPort))
}

// rule is one rule in one of dualstack's chains, written exactly as
// iptables-save prints it, so that the rules found in a chain can be
// compared with the wanted ones as text.
type rule struct {
	table, chain string
	spec         []string
}

// hook is a jump from a built-in chain into one of dualstack's chains.
type hook rule

// chains lists dualstack's chains of family f, by table.
func chains(f Family) []hook {
	out := []hook{
		{table: "filter", chain: ChainForward},
		{table: "filter", chain: ChainAllow},
		{table: "filter", chain: ChainDrop},
		{table: "nat", chain: ChainDNAT},
		{table: "nat", chain: ChainPostrouting},
	}
	if f == IPv4 {
		out = append(out, hook{table: "raw", chain: ChainPrerouting})
	}
	return out
}

// hooks lists the jumps into dualstack's chains of family f. Each is
// inserted at the top of its built-in chain, once.
func hooks(f Family) []hook {
	out := []hook{
		{table: "filter", chain: "FORWARD", spec: []string{"-j", ChainForward}},
		{table: "nat", chain: "PREROUTING", spec: []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainDNAT}},
		{table: "nat", chain: "OUTPUT", spec: []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", ChainDNAT}},
		{table: "nat", chain: "POSTROUTING", spec: []string{"-j", ChainPostrouting}},
	}
	if f == IPv4 {
		out = append(out, hook{table: "raw", chain: "PREROUTING", spec: []string{"-j", ChainPrerouting}})
	}
	return out
}

// skeleton is the fixed head of ChainForward: Allow, then Drop. The rules
// a network appends to ChainForward come after it.
var skeleton = [][]string{{"-j", ChainAllow}, {"-j", ChainDrop}}

func hostRoute(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}

// networkRules returns the rules of n in family f. Apart from the
// skeleton, the rules of each chain may come in any order: a chain holds
// rules of one verdict, or rules that match disjoint packets.
func networkRules(n Network, f Family) []rule {
	b := n.Bridge
	var out []rule
	add := func(table, chain string, spec ...string) {
		out = append(out, rule{table: table, chain: chain, spec: spec})
	}
	if !n.Internal {
		add("filter", ChainAllow, "-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
	}
	if n.ICC {
		add("filter", ChainAllow, "-i", b, "-o", b, "-j", "ACCEPT")
	}
	add("filter", ChainDrop, "-o", b, "-j", "DROP")
	if n.Internal {
		add("filter", ChainDrop, "-i", b, "-j", "DROP")
		return out
	}
	add("filter", ChainForward, "-i", b, "!", "-o", b, "-j", "ACCEPT")

	masquerade := n.Masquerade4
	if f == IPv6 {
		masquerade = n.NAT6
	}
	for _, s := range n.Subnets {
		if s.Addr().Is4() != (f == IPv4) {
			continue
		}
		if masquerade {
			add("nat", ChainPostrouting, "-s", s.Masked().String(), "!", "-o", b, "-j", "MASQUERADE")
		}
		// A container reaching a published port of its own network
		// through a host address: without this the reply would come
		// straight from the other container and be dropped.
		add("nat", ChainPostrouting, "-s", s.Masked().String(), "-o", b, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE")
	}
	if f == IPv4 {
		// The host reaching a port published on 127.0.0.1.
		add("nat", ChainPostrouting, "-s", "127.0.0.0/8", "-o", b, "-j", "MASQUERADE")
		add("raw", ChainPrerouting, "-d", "127.0.0.0/8", "-i", b, "-j", "DROP")
	}
	return out
}

// portRules returns the rules of a published port (of the port's family).
func portRules(p Port) []rule {
	port := strconv.Itoa(int(p.ContainerPort))
	to := netip.AddrPortFrom(p.Container, p.ContainerPort).String()
	dnat := []string{}
	if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
		dnat = append(dnat, "-d", hostRoute(p.HostIP))
	}
	dnat = append(dnat, "-p", p.Proto, "-m", p.Proto, "--dport", strconv.Itoa(int(p.HostPort)), "-j", "DNAT", "--to-destination", to)
	return []rule{
		{table: "nat", chain: ChainDNAT, spec: dnat},
		{table: "filter", chain: ChainAllow, spec: []string{"-d", hostRoute(p.Container), "-o", p.Bridge, "-p", p.Proto, "-m", p.Proto, "--dport", port, "-j", "ACCEPT"}},
	}
}
