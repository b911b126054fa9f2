package firewall

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Host is what the host's own rules tell dualstack, read from
// iptables-save at each Apply.
type Host struct {
	// DockerUser: filter FORWARD jumps to Docker's DOCKER-USER chain.
	// dualstack's hook goes right after that jump, so that the user's
	// rules there apply to dualstack's containers as to Docker's.
	DockerUser bool
	// DockerBridges are the bridges of Docker's own networks (the
	// interfaces its rules send to its DOCKER chain or isolate), sorted.
	DockerBridges []string
}

// chain is one of dualstack's chains and its rules, each written exactly
// as iptables-save prints it (without "-A NAME "), so that the rules in
// the kernel can be compared with the wanted ones as text.
type chain struct {
	table, name string
	rules       []string
}

// hook is a jump from a built-in chain into one of dualstack's.
type hook struct {
	table, chain, spec string
	// afterDockerUser places the hook right after the jump to
	// DOCKER-USER, or first if there is none; other hooks only need to be
	// in their chain once (they are inserted at the top).
	afterDockerUser bool
}

// tables are the tables dualstack uses in family f, in the order of a
// restore file.
func tables(Family) []string {
	return []string{"filter", "nat", "raw"}
}

// hooks lists the jumps into dualstack's chains of family f.
func hooks(f Family) []hook {
	out := []hook{
		{table: "filter", chain: "FORWARD", spec: "-j " + ChainForward, afterDockerUser: true},
		{table: "nat", chain: "PREROUTING", spec: "-m addrtype --dst-type LOCAL -j " + ChainDNAT},
		{table: "nat", chain: "OUTPUT", spec: "-m addrtype --dst-type LOCAL -j " + ChainDNAT},
		{table: "nat", chain: "POSTROUTING", spec: "-j " + ChainPostrouting},
		{table: "raw", chain: "PREROUTING", spec: "-j " + ChainPrerouting},
	}
	return out
}

// chainNames lists dualstack's chains of family f, by table, in order.
func chainNames(f Family) []chain {
	out := []chain{
		{table: "filter", name: ChainForward},
		{table: "filter", name: ChainAllow},
		{table: "filter", name: ChainDrop},
		{table: "nat", name: ChainDNAT},
		{table: "nat", name: ChainPostrouting},
		{table: "raw", name: ChainPrerouting},
	}
	return out
}

// Rules returns every chain of dualstack's in family f with its rules, for
// the state s on a host whose rules tell h. It is a pure function: the
// same state and host give the same rules, in the same order. With no
// network it returns nothing: a host without dualstack networks keeps no
// chain of dualstack's.
func Rules(s State, f Family, h Host) []chain {
	if len(s.Networks) == 0 {
		return nil
	}
	nets := slices.Clone(s.Networks)
	slices.SortFunc(nets, func(a, b Network) int { return strings.Compare(a.Bridge, b.Bridge) })
	ports := slices.Clone(s.Ports)
	slices.SortFunc(ports, comparePorts)

	r := ruleSet{}
	r.networks(nets, f, h)
	r.ports(s, ports, f)
	r.unprotected(nets, f, h)
	r.postrouting(nets, f)
	r.prerouting(nets, f)
	out := chainNames(f)
	for i := range out {
		out[i].rules = r[out[i].name]
	}
	return out
}

// ruleSet holds the rules of each of dualstack's chains, in order.
type ruleSet map[string][]string

// add appends a rule (its words) to chain name, unless it is there.
func (r ruleSet) add(name string, spec ...string) {
	rule := strings.Join(spec, " ")
	if !slices.Contains(r[name], rule) {
		r[name] = append(r[name], rule)
	}
}

// networks adds the filter rules of each network in family f: replies
// and traffic within the network let in, everything else to it dropped,
// what leaves it accepted unless it goes into one of Docker's networks
// (replies and published ports aside) or leaves an internal one.
func (r ruleSet) networks(nets []Network, f Family, h Host) {
	r.add(ChainForward, "-j", ChainAllow)
	r.add(ChainForward, "-j", ChainDrop)
	for _, n := range nets {
		b := n.Bridge
		if !n.Internal {
			r.add(ChainAllow, "-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
		}
		if n.ICC {
			r.add(ChainAllow, "-i", b, "-o", b, "-j", "ACCEPT")
			if n.Cluster && !n.Internal {
				// The network's containers on the other hosts, routed
				// here from their own addresses.
				for _, sub := range subnetsOf(n, f) {
					r.add(ChainAllow, "-s", sub, "-o", b, "-j", "ACCEPT")
				}
			}
		}
	}
	for _, n := range nets {
		b := n.Bridge
		r.add(ChainDrop, "-o", b, "-j", "DROP")
		if n.Internal {
			r.add(ChainDrop, "-i", b, "-j", "DROP")
			continue
		}
		for _, d := range h.DockerBridges {
			// Into Docker's own networks: replies and published ports only.
			r.add(ChainDrop, "-i", b, "-o", d, "-m", "conntrack", "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "DROP")
		}
		r.add(ChainForward, "-i", b, "-j", "ACCEPT")
	}
}

// ports adds what the published ports of family f let in, and their
// translations.
func (r ruleSet) ports(s State, ports []Port, f Family) {
	// A published port is reached only through the translation from the
	// host address it is published on; a routed IPv6 port published
	// without a host address also at the container's own address (which
	// covers the translated connections too). A port published on
	// 127.0.0.1 is for the host alone: the host's own connections are
	// translated in nat OUTPUT and never pass FORWARD.
	// The same, in IPv4, for a routed network (gateway mode routed); and,
	// where a port is reached only through the translation, from the
	// network's trusted host interfaces at the container's address too.
	direct := map[string]bool{}
	for _, p := range ports {
		if n, _ := s.network(p.Bridge); p.Family() == f && n.routed(f) && p.anyHost() {
			direct[portMatch(p)] = true
		}
	}
	for _, p := range ports {
		if p.Family() != f || p.HostIP.IsLoopback() {
			continue
		}
		m := portMatch(p)
		if n, _ := s.network(p.Bridge); !direct[m] && p.anyHost() {
			for _, in := range n.Trusted {
				r.add(ChainAllow, portMatchFrom(p, in), "-j", "ACCEPT")
			}
		}
		if direct[m] {
			r.add(ChainAllow, m, "-j", "ACCEPT")
			for _, a := range p.Also {
				q := p
				q.Container = a
				r.add(ChainAllow, portMatch(q), "-j", "ACCEPT")
			}
		} else {
			r.add(ChainAllow, m, "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT")
		}
	}
	for _, p := range ports {
		if p.Family() != f {
			continue
		}
		var spec []string
		if !p.anyHost() {
			spec = append(spec, "-d", hostRoute(p.HostIP))
		}
		spec = append(spec, "-p", p.Proto, "-m", p.Proto, "--dport", strconv.Itoa(int(p.HostPort)),
			"-j", "DNAT", "--to-destination", netip.AddrPortFrom(p.Container, p.ContainerPort).String())
		r.add(ChainDNAT, spec...)
	}
}

// unprotected lets into each nat-unprotected network of family f what
// comes from outside to any port, after replies, published ports and
// icc: what comes from another network (dualstack's or Docker's), or from
// the network itself without icc, returns to be dropped as before.
func (r ruleSet) unprotected(nets []Network, f Family, h Host) {
	for _, n := range nets {
		if n.Internal || !n.unprotected(f) {
			continue
		}
		for _, o := range nets {
			if o.Bridge != n.Bridge || !n.ICC {
				r.add(ChainAllow, "-i", o.Bridge, "-o", n.Bridge, "-j", "RETURN")
			}
		}
		for _, d := range h.DockerBridges {
			r.add(ChainAllow, "-i", d, "-o", n.Bridge, "-j", "RETURN")
		}
		r.add(ChainAllow, "-o", n.Bridge, "-j", "ACCEPT")
	}
}

// postrouting adds the masquerading of what leaves each non-internal
// network in family f, and of hairpin and loopback connections to
// published ports.
func (r ruleSet) postrouting(nets []Network, f Family) {
	for _, n := range nets {
		if n.Internal {
			continue
		}
		b := n.Bridge
		masquerade := n.Masquerade4
		if f == IPv6 {
			masquerade = n.NAT6
		}
		for _, s := range subnetsOf(n, f) {
			if masquerade && n.Cluster {
				// Between the hosts of a cluster network, containers
				// keep their own addresses.
				r.add(ChainPostrouting, "-s", s, "-d", s, "!", "-o", b, "-j", "RETURN")
			}
			if masquerade {
				r.add(ChainPostrouting, "-s", s, "!", "-o", b, "-j", "MASQUERADE")
			}
			// A container reaching a published port of its own network
			// through a host address: without this the reply would come
			// straight from the other container and be dropped.
			r.add(ChainPostrouting, "-s", s, "-o", b, "-m", "conntrack", "--ctstate", "DNAT", "-j", "MASQUERADE")
		}
		if f == IPv4 {
			// The host reaching a port published on 127.0.0.1.
			r.add(ChainPostrouting, "-s", "127.0.0.0/8", "-o", b, "-j", "MASQUERADE")
		}
	}
}

// prerouting adds the raw table's drops in family f: forged sources, and
// containers' packets to the host's loopback addresses.
func (r ruleSet) prerouting(nets []Network, f Family) {
	for _, n := range nets {
		// A source in a network's subnets comes only from where the
		// routing table says it lives: the bridge for the host's own
		// containers, the way to their host for a cluster's others. A
		// packet forged with such a source (CAP_NET_RAW, which Docker
		// grants containers, is enough) from the LAN or from another
		// network of the host's is dropped before anything else sees
		// it; IPv6 has no rp_filter sysctl to do it.
		for _, sub := range subnetsOf(n, f) {
			// Neighbour discovery from a node of an ndp_proxy network's
			// link that holds an address of its subnet (the kernel
			// takes it only with hop limit 255: sent on the link) comes
			// before its route back to the link exists.
			if n.OnLink != "" && f == IPv6 {
				for _, t := range []string{"neighbour-solicitation", "neighbour-advertisement"} {
					r.add(ChainPrerouting, "-i", n.OnLink, "-s", sub, "-p", "ipv6-icmp", "-m", "icmp6", "--icmpv6-type", t, "-j", "RETURN")
				}
			}
			if n.isolated(f) {
				// No route says where the subnet lives: its bridge.
				r.add(ChainPrerouting, "-s", sub, "!", "-i", n.Bridge, "-j", "DROP")
				continue
			}
			r.add(ChainPrerouting, "-s", sub, "-m", "rpfilter", "--invert", "-j", "DROP")
		}
	}
	if f != IPv4 {
		return
	}
	for _, n := range nets {
		if !n.Internal {
			// route_localnet, which a port published on 127.0.0.1
			// needs, must not open the host's loopback services.
			r.add(ChainPrerouting, "-d", "127.0.0.0/8", "-i", n.Bridge, "-j", "DROP")
		}
	}
}

// subnetsOf returns n's subnets of family f, masked, as rules write them.
func subnetsOf(n Network, f Family) []string {
	var out []string
	for _, sub := range n.Subnets {
		if sub.Addr().Is4() == (f == IPv4) {
			out = append(out, sub.Masked().String())
		}
	}
	return out
}

// portMatch matches the packets of p's connections on their way to the
// container.
func portMatch(p Port) string { return portMatchFrom(p, "") }

// portMatchFrom is portMatch for the packets that come in on host
// interface in ("" for any), in iptables-save's order.
func portMatchFrom(p Port, in string) string {
	spec := []string{"-d", hostRoute(p.Container)}
	if in != "" {
		spec = append(spec, "-i", in)
	}
	spec = append(spec, "-o", p.Bridge, "-p", p.Proto, "-m", p.Proto, "--dport", strconv.Itoa(int(p.ContainerPort)))
	return strings.Join(spec, " ")
}

func comparePorts(a, b Port) int {
	if c := strings.Compare(a.Bridge, b.Bridge); c != 0 {
		return c
	}
	if c := a.Container.Compare(b.Container); c != 0 {
		return c
	}
	if c := strings.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	if c := int(a.ContainerPort) - int(b.ContainerPort); c != 0 {
		return c
	}
	if c := a.HostIP.Compare(b.HostIP); c != 0 {
		return c
	}
	return int(a.HostPort) - int(b.HostPort)
}

func hostRoute(a netip.Addr) string {
	return netip.PrefixFrom(a, a.BitLen()).String()
}
