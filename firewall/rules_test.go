package firewall

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the code computes now")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./firewall -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("rules differ from %s (go test ./firewall -update rewrites it):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

var (
	subnet4  = netip.MustParsePrefix("192.0.2.0/24")
	subnet6a = netip.MustParsePrefix("fd00:1::/64")
	subnet6b = netip.MustParsePrefix("fd00:2::/64")
	c4       = netip.MustParseAddr("192.0.2.2")
	c6       = netip.MustParseAddr("fd00:1::2")
)

// publish is what `docker run -p 8080:80 -p 127.0.0.1:8081:80 -p
// [::]:8082:80 -p [fd00:9::1]:8083:80 -p 5353:53/udp` publishes for a
// container with c4 and c6.
func publish(bridge string) []Port {
	return []Port{
		{Bridge: bridge, Proto: "tcp", HostPort: 8080, Container: c4, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostPort: 8080, Container: c6, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8081, Container: c4, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostIP: netip.IPv6Unspecified(), HostPort: 8082, Container: c6, ContainerPort: 80},
		{Bridge: bridge, Proto: "tcp", HostIP: netip.MustParseAddr("fd00:9::1"), HostPort: 8083, Container: c6, ContainerPort: 80},
		{Bridge: bridge, Proto: "udp", HostPort: 5353, Container: c4, ContainerPort: 53},
		{Bridge: bridge, Proto: "udp", HostPort: 5353, Container: c6, ContainerPort: 53},
	}
}

// combination is one network of every combination of ipv6_mode, icc,
// ip_masquerade, internal and published ports.
type combination struct {
	name  string
	state State
}

func combinations() []combination {
	var out []combination
	for _, nat6 := range []bool{false, true} {
		for _, icc := range []bool{true, false} {
			for _, masq := range []bool{true, false} {
				for _, internal := range []bool{false, true} {
					for _, ports := range []bool{false, true} {
						n := Network{Bridge: "ds-golden", Subnets: []netip.Prefix{subnet4, subnet6a, subnet6b}, Internal: internal, ICC: icc, Masquerade4: masq, NAT6: nat6}
						s := State{Networks: []Network{n}}
						if ports && !internal {
							s.Ports = publish(n.Bridge)
						}
						name := fmt.Sprintf("ipv6_mode=%s,icc=%t,ip_masquerade=%t,internal=%t,ports=%t", map[bool]string{false: "routed", true: "nat"}[nat6], icc, masq, internal, ports)
						out = append(out, combination{name, s})
					}
				}
			}
		}
	}
	return out
}

// TestGoldenCluster: a cluster network (icc, then not): the network's
// containers on other hosts come in from the cluster's subnets, and what
// goes to them keeps its source address.
func TestGoldenCluster(t *testing.T) {
	for _, icc := range []bool{true, false} {
		n := Network{Bridge: "ds-cluster", Subnets: []netip.Prefix{subnet4, subnet6a, subnet6b}, ICC: icc, Masquerade4: true, Cluster: true}
		golden(t, fmt.Sprintf("cluster,icc=%t.restore", icc), restoreFiles(State{Networks: []Network{n}, Ports: publish(n.Bridge)}, nil))
	}
}

// TestGoldenOnLink: an ndp_proxy network: the neighbour discovery of the
// link's nodes that hold addresses of its IPv6 subnets comes in through
// its interface, whatever the routes say; nothing else from those
// addresses does, unless routed back to the link.
func TestGoldenOnLink(t *testing.T) {
	n := Network{Bridge: "ds-onlink", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Masquerade4: true, OnLink: "eth0"}
	golden(t, "onlink.restore", restoreFiles(State{Networks: []Network{n}, Ports: publish(n.Bridge)}, nil))
}

// TestGoldenDelegated: a delegated_prefix network: its /64 of the
// delegated prefix is one of its subnets, and a port published on every
// host address is reached directly at the container's global address too
// (Port.Also), one published on a host address only through it.
func TestGoldenDelegated(t *testing.T) {
	global := netip.MustParsePrefix("2001:db8:100:1::/64")
	n := Network{Bridge: "ds-delegated", Subnets: []netip.Prefix{subnet4, subnet6a, global}, ICC: true, Masquerade4: true}
	ports := publish(n.Bridge)
	for i := range ports {
		if ports[i].Family() == IPv6 {
			ports[i].Also = []netip.Addr{netip.MustParseAddr("2001:db8:100:1::2")}
		}
	}
	golden(t, "delegated.restore", restoreFiles(State{Networks: []Network{n}, Ports: ports}, nil))
}

// restoreFiles is what Apply feeds iptables-restore and ip6tables-restore
// for s on host sv (the same for each family), as one text.
func restoreFiles(s State, sv map[Family]saved) string {
	var b strings.Builder
	for _, f := range Families {
		fmt.Fprintf(&b, "# %s\n", map[Family]string{IPv4: "iptables-restore --noflush", IPv6: "ip6tables-restore --noflush"}[f])
		b.WriteString(plan(f, Rules(s, f, sv[f].host()), sv[f], s.ForwardDrop[f]))
	}
	return b.String()
}

// TestGolden: the restore files of every combination of options, on a
// host without rules, against one golden file each. No root needed: the
// rules are a pure function of the state (TestGoldenApplies feeds the same
// files to both backends).
func TestGolden(t *testing.T) {
	for _, c := range combinations() {
		t.Run(c.name, func(t *testing.T) {
			golden(t, c.name+".restore", restoreFiles(c.state, nil))
		})
	}
}

// dockerHost is what iptables-save prints on a host where Engine 20.10 runs
// docker0 with a container network br-0123 and a user rule in DOCKER-USER.
const dockerHost = `*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A FORWARD -i docker0 ! -o docker0 -j ACCEPT
-A FORWARD -i docker0 -o docker0 -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -i br-0123 ! -o br-0123 -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -o br-0123 -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -s 203.0.113.0/24 -j DROP
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
COMMIT
`

// TestHostFacts: what Docker's rules say of its networks, on Engine 20.10,
// on engines of the ipset era (27), on current engines (DOCKER-BRIDGE,
// DOCKER-INTERNAL), with --internal networks and bridges with a custom
// name; nothing from a bare host, from the user's DOCKER-USER, or from
// another manager's rules naming the host's own interfaces.
func TestHostFacts(t *testing.T) {
	filter := func(rules ...string) string {
		return "*filter\n:FORWARD DROP [0:0]\n" + strings.Join(rules, "\n") + "\nCOMMIT\n"
	}
	for _, c := range []struct {
		name, save string
		user       bool
		bridges    string
	}{
		{"Engine 20.10", dockerHost, true, "br-0123 docker0"},
		{"Engine 20.10, an --internal network", filter(
			"-A FORWARD -j DOCKER-USER",
			"-A FORWARD -j DOCKER-ISOLATION-STAGE-1",
			"-A FORWARD -i br-int -o br-int -j ACCEPT",
			"-A DOCKER-ISOLATION-STAGE-1 ! -s 203.0.113.0/24 -o br-int -j DROP",
			"-A DOCKER-ISOLATION-STAGE-1 ! -d 203.0.113.0/24 -i br-int -j DROP"), true, "br-int"},
		{"ipset era: external bridges in a set, an internal one by name", filter(
			"-A FORWARD -j DOCKER-USER",
			"-A FORWARD -m set --match-set docker-ext-bridges-v4 dst -j DOCKER",
			"-A FORWARD -i bridge1 -o bridge1 -j ACCEPT",
			"-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
			"-A DOCKER ! -i docker0 -o docker0 -j DROP",
			"-A DOCKER-ISOLATION-STAGE-1 ! -s 192.0.2.0/24 -o bridge1 -j DROP",
			"-A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP"), true, "bridge1 docker0"},
		{"current engines", filter(
			"-A FORWARD -j DOCKER-USER",
			"-A FORWARD -j DOCKER-FORWARD",
			"-A DOCKER ! -i docker0 -o docker0 -j DROP",
			"-A DOCKER ! -i mybridge -o mybridge -j DROP",
			"-A DOCKER -i eth1 -o mybridge -j ACCEPT",
			"-A DOCKER-BRIDGE -o docker0 -j DOCKER",
			"-A DOCKER-BRIDGE -o mybridge -j DOCKER",
			"-A DOCKER-FORWARD -j DOCKER-INTERNAL",
			"-A DOCKER-FORWARD -i docker0 -j ACCEPT",
			"-A DOCKER-INTERNAL ! -s 198.51.100.0/24 -o isolated0 -j DROP",
			"-A DOCKER-INTERNAL ! -d 198.51.100.0/24 -i isolated0 -j DROP"), true, "docker0 isolated0 mybridge"},
		{"the user's DOCKER-USER and other managers", filter(
			"-A FORWARD -j DOCKER-USER",
			"-A FORWARD -i br0 -o br0 -j ACCEPT",
			"-A FORWARD -o virbr0 -j LIBVIRT_FWI",
			"-A FORWARD -o docker+ -j DOCKER",
			"-A DOCKER-USER -o eth0 -j DROP"), true, ""},
		{"a host without Docker", filter("-A FORWARD -o eth0 -j ACCEPT"), false, ""},
	} {
		h := parseSave([]byte(c.save)).host()
		if h.DockerUser != c.user || strings.Join(h.DockerBridges, " ") != c.bridges {
			t.Errorf("%s: got DOCKER-USER %t, bridges %q; want %t, %q", c.name, h.DockerUser, strings.Join(h.DockerBridges, " "), c.user, c.bridges)
		}
	}
}

// TestGoldenNextToDocker: next to Docker's networks, dualstack's hook goes
// right after the jump to DOCKER-USER, containers may not open connections
// into Docker's networks (published ports and replies aside), and turning
// forwarding on sets FORWARD's policy to DROP, in the same restore.
func TestGoldenNextToDocker(t *testing.T) {
	n := Network{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Masquerade4: true}
	internal := Network{Bridge: "ds-b", Subnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Internal: true}
	s := State{Networks: []Network{n, internal}, Ports: publish(n.Bridge)[:2], ForwardDrop: map[Family]bool{IPv6: true}}
	sv := map[Family]saved{IPv4: parseSave([]byte(dockerHost)), IPv6: parseSave([]byte("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"))}
	golden(t, "next-to-docker.restore", restoreFiles(s, sv))
}

// TestPlanHooks: a hook is left where it belongs; a duplicate, a hook ahead
// of DOCKER-USER (Docker put its jump back on top) or a missing one is
// fixed; only what differs is rewritten.
func TestPlanHooks(t *testing.T) {
	n := Network{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4}, ICC: true, Masquerade4: true}
	s := State{Networks: []Network{n}}
	inPlace := func(forward ...string) saved {
		sv := parseSave([]byte(restoreLikeSave(IPv4, Rules(s, IPv4, Host{}))))
		sv.rules[chainKey{"filter", "FORWARD"}] = forward
		return sv
	}
	cases := []struct {
		name    string
		forward []string
		want    string // the restore's filter part; "" for nothing
	}{
		{"in place, no Docker", []string{"-j DUALSTACK-FORWARD", "-o eth0 -j ACCEPT"}, ""},
		{"in place after DOCKER-USER", []string{"-j DOCKER-USER", "-j DUALSTACK-FORWARD", "-j DOCKER-ISOLATION-STAGE-1"}, ""},
		{"ahead of DOCKER-USER", []string{"-j DUALSTACK-FORWARD", "-j DOCKER-USER"},
			"*filter\n-D FORWARD -j DUALSTACK-FORWARD\n-I FORWARD 2 -j DUALSTACK-FORWARD\nCOMMIT\n"},
		{"twice", []string{"-j DUALSTACK-FORWARD", "-o eth0 -j ACCEPT", "-j DUALSTACK-FORWARD"},
			"*filter\n-D FORWARD -j DUALSTACK-FORWARD\n-D FORWARD -j DUALSTACK-FORWARD\n-I FORWARD 1 -j DUALSTACK-FORWARD\nCOMMIT\n"},
		{"missing, after DOCKER-USER", []string{"-j DOCKER-USER", "-j DOCKER-FORWARD"},
			"*filter\n-I FORWARD 2 -j DUALSTACK-FORWARD\nCOMMIT\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := plan(IPv4, Rules(s, IPv4, Host{}), inPlace(c.forward...), false)
			if got != c.want {
				t.Fatalf("plan:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
	// A stale rule in one of dualstack's chains: that chain, and only
	// that one, is rewritten.
	sv := inPlace("-j DUALSTACK-FORWARD")
	k := chainKey{"filter", ChainAllow}
	sv.rules[k] = append(sv.rules[k], "-o ds-gone -j ACCEPT")
	got := plan(IPv4, Rules(s, IPv4, Host{}), sv, false)
	if !strings.HasPrefix(got, "*filter\n:"+ChainAllow+" - [0:0]\n") || strings.Contains(got, ":"+ChainDrop) || strings.Contains(got, "*nat") {
		t.Fatalf("a stale rule in %s:\n%s", ChainAllow, got)
	}
}

// restoreLikeSave prints chains as iptables-save would after a restore of
// them, with every hook in place (no Docker).
func restoreLikeSave(f Family, chains []chain) string {
	var b strings.Builder
	for _, table := range tables(f) {
		fmt.Fprintf(&b, "*%s\n", table)
		for _, c := range chains {
			if c.table == table {
				fmt.Fprintf(&b, ":%s - [0:0]\n", c.name)
			}
		}
		for _, h := range hooks(f) {
			if h.table == table {
				fmt.Fprintf(&b, "-A %s %s\n", h.chain, h.spec)
			}
		}
		for _, c := range chains {
			if c.table == table {
				for _, r := range c.rules {
					fmt.Fprintf(&b, "-A %s %s\n", c.name, r)
				}
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

// TestPlanRemoval: with no network left, every chain and hook of
// dualstack's goes, and Docker's stay; a clean host needs nothing.
func TestPlanRemoval(t *testing.T) {
	n := Network{Bridge: "ds-a", Subnets: []netip.Prefix{subnet4}, ICC: true, Masquerade4: true}
	sv := parseSave([]byte(restoreLikeSave(IPv4, Rules(State{Networks: []Network{n}}, IPv4, Host{}))))
	got := plan(IPv4, nil, sv, false)
	golden(t, "removal.restore", got)
	if plan(IPv4, nil, parseSave([]byte(dockerHost)), false) != "" {
		t.Fatal("removal on a host without dualstack's chains is not empty")
	}
}

// TestPortRules: what reaches a published port. IPv4, and IPv6 in NAT
// mode or published on a host address, only through the translation from
// the host address; routed IPv6 published without one also at the
// container's address; 127.0.0.1 never through FORWARD.
func TestPortRules(t *testing.T) {
	for _, nat6 := range []bool{false, true} {
		n := Network{Bridge: "ds-p", Subnets: []netip.Prefix{subnet4, subnet6a}, NAT6: nat6, ICC: true, Masquerade4: true}
		s := State{Networks: []Network{n}, Ports: publish(n.Bridge)}
		var allow []string
		for _, f := range Families {
			for _, c := range Rules(s, f, Host{}) {
				if c.name == ChainAllow {
					allow = append(allow, c.rules...)
				}
			}
		}
		all := strings.Join(allow, "\n")
		direct := "-d fd00:1::2/128 -o ds-p -p tcp -m tcp --dport 80 -j ACCEPT"
		if strings.Contains(all, direct) == nat6 {
			t.Errorf("ipv6_mode nat=%t: direct IPv6 access %v:\n%s", nat6, !nat6, all)
		}
		if !strings.Contains(all, "-d 192.0.2.2/32 -o ds-p -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT") ||
			strings.Contains(all, "-d 192.0.2.2/32 -o ds-p -p tcp -m tcp --dport 80 -j ACCEPT") {
			t.Errorf("IPv4 port reachable without the translation:\n%s", all)
		}
	}
	// Only on 127.0.0.1: nothing in FORWARD lets it through.
	n := Network{Bridge: "ds-l", Subnets: []netip.Prefix{subnet4}, ICC: true}
	s := State{Networks: []Network{n}, Ports: []Port{{Bridge: "ds-l", Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8081, Container: c4, ContainerPort: 80}}}
	for _, c := range Rules(s, IPv4, Host{}) {
		if c.table == "filter" && strings.Contains(strings.Join(c.rules, "\n"), "--dport 80") {
			t.Fatalf("a port published on 127.0.0.1 is let through FORWARD: %s", c.rules)
		}
	}
}

func TestChoose(t *testing.T) {
	cases := []struct {
		setting, recorded, host Backend
		use, old                Backend
		why                     string
	}{
		{"", "", "", BackendNFT, "", "first start"},
		{"", "", BackendLegacy, BackendLegacy, "", "first start"},
		{"", BackendLegacy, "", BackendLegacy, "", "recorded"},
		{"", BackendLegacy, BackendLegacy, BackendLegacy, "", "recorded"},
		{"", BackendLegacy, BackendNFT, BackendNFT, BackendLegacy, "moved from legacy to nft"},
		{BackendLegacy, BackendNFT, BackendNFT, BackendLegacy, BackendNFT, "FIREWALL_BACKEND=legacy"},
		{BackendNFT, "", BackendLegacy, BackendNFT, "", "FIREWALL_BACKEND=nft"},
	}
	for _, c := range cases {
		use, old, why := choose(c.setting, c.recorded, func() Backend { return c.host })
		if use != c.use || old != c.old || !strings.Contains(why, c.why) {
			t.Errorf("choose(%q, %q; host %q) = %q, %q, %q; want %q, %q, %q", c.setting, c.recorded, c.host, use, old, why, c.use, c.old, c.why)
		}
	}
}

// gatewayModeStates are networks with Docker's gateway modes: routed
// IPv4, with published ports; nat-unprotected in both families, with and
// without icc, next to another network; trusted host interfaces with NAT
// in both families; isolated (an internal network whose subnets have no
// route on the host).
func gatewayModeStates() []combination {
	other := Network{Bridge: "ds-other", Subnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, ICC: true, Masquerade4: true}
	var out []combination
	routed := Network{Bridge: "ds-golden", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Routed4: true}
	out = append(out, combination{"gateway_mode_ipv4=routed", State{Networks: []Network{routed}, Ports: publish(routed.Bridge)}})
	for _, icc := range []bool{true, false} {
		n := Network{Bridge: "ds-golden", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: icc, Masquerade4: true, NAT6: true, Unprotected4: true, Unprotected6: true}
		out = append(out, combination{fmt.Sprintf("gateway_mode=nat-unprotected,icc=%t", icc), State{Networks: []Network{n, other}, Ports: publish(n.Bridge)}})
	}
	trusted := Network{Bridge: "ds-golden", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Masquerade4: true, NAT6: true, Trusted: []string{"eth1", "wg0"}}
	out = append(out, combination{"trusted_host_interfaces", State{Networks: []Network{trusted}, Ports: publish(trusted.Bridge)}})
	isolated := Network{Bridge: "ds-golden", Subnets: []netip.Prefix{subnet4, subnet6a}, ICC: true, Internal: true, Isolated4: true, Isolated6: true}
	out = append(out, combination{"gateway_mode=isolated", State{Networks: []Network{isolated, other}}})
	return out
}

// TestGoldenGatewayModes: the rules of Docker's gateway modes and trusted
// host interfaces, one golden file each; with Docker's networks beside
// them, nat-unprotected keeps them out too.
func TestGoldenGatewayModes(t *testing.T) {
	for _, c := range gatewayModeStates() {
		t.Run(c.name, func(t *testing.T) {
			golden(t, c.name+".restore", restoreFiles(c.state, nil))
		})
	}
	unprotected := gatewayModeStates()[1].state
	sv := map[Family]saved{IPv4: parseSave([]byte(dockerHost))}
	golden(t, "gateway_mode=nat-unprotected,next-to-docker.restore", restoreFiles(unprotected, sv))
}

// TestGatewayModePortRules: what reaches a container's port in each mode,
// as the rules say it: routed IPv4 at the container's address for a port
// published on every host address, not for one published on a host
// address; trusted interfaces only to published ports in NAT'ed families;
// nat-unprotected every port, from outside only.
func TestGatewayModePortRules(t *testing.T) {
	allow := func(s State, f Family) string {
		for _, c := range Rules(s, f, Host{DockerBridges: []string{"docker0"}}) {
			if c.name == ChainAllow {
				return strings.Join(c.rules, "\n")
			}
		}
		return ""
	}
	states := gatewayModeStates()
	routed := allow(states[0].state, IPv4)
	if !strings.Contains(routed, "-d 192.0.2.2/32 -o ds-golden -p tcp -m tcp --dport 80 -j ACCEPT") {
		t.Errorf("routed IPv4: the published port is not reached at the container's address:\n%s", routed)
	}
	if strings.Contains(routed, "--dport 81") || hasLine(routed, "-o ds-golden -j ACCEPT") {
		t.Errorf("routed IPv4: more than the published ports let in:\n%s", routed)
	}
	for _, f := range Families {
		un := allow(states[2].state, f) // icc=false
		for _, want := range []string{"-i ds-other -o ds-golden -j RETURN", "-i ds-golden -o ds-golden -j RETURN", "-i docker0 -o ds-golden -j RETURN"} {
			if !strings.Contains(un, want+"\n-") {
				t.Errorf("%s nat-unprotected without icc: lacks %q before the accept:\n%s", f, want, un)
			}
		}
		if !strings.HasSuffix(un, "-o ds-golden -j ACCEPT") {
			t.Errorf("%s nat-unprotected: every port is not open from outside:\n%s", f, un)
		}
		tr := allow(states[3].state, f)
		c := map[Family]string{IPv4: "192.0.2.2/32", IPv6: "fd00:1::2/128"}[f]
		for _, in := range []string{"eth1", "wg0"} {
			if !strings.Contains(tr, "-d "+c+" -i "+in+" -o ds-golden -p tcp -m tcp --dport 80 -j ACCEPT") {
				t.Errorf("%s trusted %s: the published port is not reached at the container's address:\n%s", f, in, tr)
			}
		}
		if hasLine(tr, "-o ds-golden -j ACCEPT") || hasLine(tr, "-d "+c+" -o ds-golden -p tcp -m tcp --dport 80 -j ACCEPT") {
			t.Errorf("%s trusted: the container's address is open beyond the trusted interfaces:\n%s", f, tr)
		}
	}
}

// hasLine reports whether rules (one a line) holds rule.
func hasLine(rules, rule string) bool { return slices.Contains(strings.Split(rules, "\n"), rule) }
