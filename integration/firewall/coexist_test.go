//go:build integration

package firewall

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The tests of issue 13: dualstack's firewall next to Docker's own
// networks and rules, with Docker 28's guarantees as the floor, in both
// families.

// ip6tablesIn runs ip6tables (or iptables, by cmd) in the engine's
// namespace, failing the test if it fails.
func tablesIn(t *testing.T, cmd string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", harness.Eng.Netns, cmd}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", cmd, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dockerUserIn reports whether the engine made DOCKER-USER in cmd's
// (iptables or ip6tables) filter table, jumped to from FORWARD.
func dockerUserIn(cmd string) bool {
	out, _ := exec.Command("ip", "netns", "exec", harness.Eng.Netns, cmd, "-S", "FORWARD").Output()
	return strings.Contains(string(out), "-A FORWARD -j DOCKER-USER")
}

// nextToDocker readies the engine's host for Docker networks beside
// dualstack's: FORWARD policy ACCEPT, so that isolation is the rules'
// doing, and IPv6 forwarding on where Docker's nftables backend, which
// leaves forwarding to the host's administrator, refuses an IPv6 network
// without it.
func nextToDocker(t *testing.T) {
	t.Helper()
	harness.AcceptForwarding(t)
	if harness.Eng.DockerFirewall == "nftables" {
		harness.SetSysctlIn(t, "net/ipv6/conf/all/forwarding", "1")
		harness.SetSysctlIn(t, "net/ipv6/conf/default/forwarding", "1")
	}
}

// TestCoexistDockerBridge: a dualstack network and a network of Docker's
// own bridge driver on one host are isolated from each other in both
// directions and both families; ports either publishes stay reachable from
// the other through a host address. The FORWARD policy is ACCEPT, so that
// the isolation is the rules' doing.
func TestCoexistDockerBridge(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	nextToDocker(t)
	harness.CreateNetwork(t, "dk-co", "-d", "bridge", "--ipv6", "--subnet", "203.0.113.0/24", "--subnet", "fd00:dc::/64")
	harness.DSNet(t, "ds-co", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "fd00:dd::/64")
	harness.RunServer(t, "dk-co-srv", "dk-co", "-p", "8091:80")
	harness.RunServer(t, "ds-co-srv", "ds-co", "-p", "8092:80")
	harness.RunContainer(t, "dk-co-cli", "dk-co")
	harness.RunContainer(t, "ds-co-cli", "ds-co")
	ds, dk := harness.ContainerNS(t, "ds-co-cli"), harness.ContainerNS(t, "dk-co-cli")

	// Each reaches its own network: the blocked cases below mean something.
	harness.WantReach(t, "dualstack to dualstack", ds, harness.HostPort("192.0.2.2", "81"), "ds-co-srv")
	harness.WantReach(t, "docker to docker", dk, harness.HostPort("203.0.113.2", "81"), "dk-co-srv")

	harness.WantBlocked(t, "dualstack container to a Docker container's unpublished port", ds, harness.HostPort("203.0.113.2", "81"))
	harness.WantBlocked(t, "dualstack container to a Docker container's published port at its own address", ds, harness.HostPort("203.0.113.2", "80"))
	harness.WantBlocked(t, "dualstack container to a Docker container, IPv6", ds, harness.HostPort("fd00:dc::2", "81"))
	harness.WantBlocked(t, "Docker container to a dualstack container's unpublished port", dk, harness.HostPort("192.0.2.2", "81"))
	harness.WantBlocked(t, "Docker container to a dualstack container, IPv6", dk, harness.HostPort("fd00:dd::2", "81"))

	// Published ports, through a host address (each network's gateway).
	harness.WantReach(t, "dualstack container to Docker's published port", ds, harness.HostPort("192.0.2.1", "8091"), "dk-co-srv")
	harness.WantReach(t, "Docker container to dualstack's published port", dk, harness.HostPort("203.0.113.1", "8092"), "ds-co-srv")
	harness.WantReach(t, "Docker container to dualstack's published port, IPv6", dk, harness.HostPort("fd00:dc::1", "8092"), "ds-co-srv")
}

// TestDockerUserApplies: a rule in DOCKER-USER applies to dualstack's
// containers as to Docker's, in every family where the engine made the
// chain: dualstack's hook comes after the jump to it, also when it is put
// back after a firewall manager removed it (Docker orders its own jump
// first only when it creates a network).
func TestDockerUserApplies(t *testing.T) {
	o := harness.NewOutside(t, "192.0.2.0/24", "2001:db8:51::/64")
	harness.DSNet(t, "ds-du", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:51::/64")
	harness.RunServer(t, "ds-du-srv", "ds-du", "-p", "8093:80")
	families := []struct{ cmd, outside, host string }{{"iptables", harness.Outside4, harness.OutsideHost4}, {"ip6tables", harness.Outside6, harness.OutsideHost6}}
	// A firewall manager reloads: dualstack's hook is gone until the
	// plugin puts it back (at start, or at its periodic check).
	for _, f := range families {
		tablesIn(t, f.cmd, "-D", "FORWARD", "-j", "DUALSTACK-FORWARD")
	}
	harness.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	harness.Docker(t, "plugin", "enable", harness.PluginName)
	harness.WaitPlugin(t)
	tested := 0
	for _, f := range families {
		if forward := tablesIn(t, f.cmd, "-S", "FORWARD"); dockerUserIn(f.cmd) && !strings.Contains(forward, "-A FORWARD -j DOCKER-USER\n-A FORWARD -j DUALSTACK-FORWARD\n") {
			t.Errorf("%s: dualstack's hook is not right after DOCKER-USER:\n%s", f.cmd, forward)
		}
		addr := harness.HostPort(f.host, "8093")
		harness.WantReach(t, f.cmd+": outside to a published port", o.Path, addr, "ds-du-srv")
		if !dockerUserIn(f.cmd) {
			t.Logf("%s: the engine made no DOCKER-USER chain", f.cmd)
			continue
		}
		tested++
		tablesIn(t, f.cmd, "-I", "DOCKER-USER", "-s", f.outside, "-j", "DROP")
		harness.WantBlocked(t, f.cmd+": outside to a published port, with a DOCKER-USER rule that drops the outside host", o.Path, addr)
		tablesIn(t, f.cmd, "-D", "DOCKER-USER", "-s", f.outside, "-j", "DROP")
		harness.WantReach(t, f.cmd+": the DOCKER-USER rule gone", o.Path, addr, "ds-du-srv")
	}
	if tested == 0 {
		if harness.Eng.DockerFirewall == "nftables" {
			t.Skip("Docker's nftables backend makes no DOCKER-USER chain")
		}
		t.Fatal("the engine made DOCKER-USER in neither family")
	}
}

// TestPublishedOnHostAddressOnly: from an outside host that routes the
// network's subnets to the Docker host, a port published on a host
// address (127.0.0.1 included) is reached only there; IPv4 is never
// reached at the container's own address; routed IPv6 is, for ports
// published without a host address. [::1] is refused.
func TestPublishedOnHostAddressOnly(t *testing.T) {
	o := harness.NewOutside(t, "192.0.2.0/24", "2001:db8:52::/64")
	harness.AcceptForwarding(t)
	harness.DSNet(t, "ds-ho", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:52::/64")
	harness.RunServer(t, "ds-ho-srv", "ds-ho", "-p", "127.0.0.1:8081:80", "-p", "["+harness.OutsideHost6+"]:8083:80", "-p", "8084:81")
	const body = "ds-ho-srv"

	harness.WantReach(t, "host to 127.0.0.1:8081", harness.EngineNetns(), harness.HostPort("127.0.0.1", "8081"), body)
	harness.WantReach(t, "outside to the host address the port is published on", o.Path, harness.HostPort(harness.OutsideHost6, "8083"), body)
	harness.WantReach(t, "outside to routed IPv6, published without a host address", o.Path, harness.HostPort("2001:db8:52::2", "81"), body)
	harness.WantBlocked(t, "outside to the container's IPv4 port behind 127.0.0.1:8081", o.Path, harness.HostPort("192.0.2.2", "80"))
	harness.WantBlocked(t, "outside to the container's IPv6 port behind ["+harness.OutsideHost6+"]:8083", o.Path, harness.HostPort("2001:db8:52::2", "80"))
	harness.WantBlocked(t, "outside to the container's IPv4 port behind 8084 (NAT)", o.Path, harness.HostPort("192.0.2.2", "81"))
	harness.WantBlocked(t, "outside to the IPv6 host address on 8081 (published on 127.0.0.1 only)", o.Path, harness.HostPort(harness.OutsideHost6, "8081"))

	out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-ho", "-p", "[::1]:8085:80", harness.Image, "true")
	harness.WantMessage(t, out, "[::1]:8085:80", "IPv6 loopback", "publish on [::]")
}

// TestForwardingPolicy: when dualstack turns IPv6 forwarding on, the
// host does not become an open router: the ip6tables FORWARD policy goes
// to DROP, so two unrelated interfaces of the host (two namespaces on
// veths) no longer reach each other through it; dualstack's own networks
// still work.
func TestForwardingPolicy(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	if out := harness.Docker(t, "network", "ls", "-q", "--filter", "driver="+harness.PluginName); out != "" {
		t.Fatalf("dualstack networks left by other tests: %s", out)
	}
	a := harness.NewPeerNS(t, "dsfa-", "dsfa0", "dsfa1")
	b := harness.NewPeerNS(t, "dsfb-", "dsfb0", "dsfb1")
	for _, p := range []struct {
		ns             harness.PeerNS
		hostEnd, peer  string
		hostIP, peerIP string
	}{{a, "dsfa0", "dsfa1", "2001:db8:fa::1", "2001:db8:fa::2"}, {b, "dsfb0", "dsfb1", "2001:db8:fb::1", "2001:db8:fb::2"}} {
		harness.IPRun(t, "-n", harness.Eng.Netns, "addr", "add", p.hostIP+"/64", "dev", p.hostEnd, "nodad")
		harness.IPRun(t, "-n", harness.Eng.Netns, "link", "set", p.hostEnd, "up")
		harness.IPRun(t, "-n", p.ns.Name, "addr", "add", p.peerIP+"/64", "dev", p.peer, "nodad")
		harness.IPRun(t, "-n", p.ns.Name, "link", "set", p.peer, "up")
		harness.IPRun(t, "-n", p.ns.Name, "-6", "route", "add", "default", "via", p.hostIP)
	}
	pingB := func() error {
		out, err := exec.Command("ip", "netns", "exec", a.Name, "busybox", "ping", "-6", "-c", "3", "-W", "3", "2001:db8:fb::2").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	// As the host was before dualstack: forwarding off, policy ACCEPT.
	tablesIn(t, "ip6tables", "-P", "FORWARD", "ACCEPT")
	harness.SetSysctlIn(t, "net/ipv6/conf/all/forwarding", "1")
	if err := pingB(); err != nil {
		t.Fatalf("the two interfaces do not reach each other with forwarding on and policy ACCEPT, so the test proves nothing: %v", err)
	}
	harness.SetSysctlIn(t, "net/ipv6/conf/all/forwarding", "0")

	harness.DSNet(t, "ds-fwp", "--ipv6", "--subnet", "198.18.0.0/24", "--subnet", "2001:db8:53::/64")
	if got := harness.SysctlIn(t, "net/ipv6/conf/all/forwarding"); got != "1" {
		t.Fatalf("dualstack did not turn IPv6 forwarding on (%s)", got)
	}
	if p := tablesIn(t, "ip6tables", "-S", "FORWARD"); !strings.Contains(p, "-P FORWARD DROP") {
		t.Fatalf("IPv6 forwarding on, but the FORWARD policy is not DROP:\n%s", p)
	}
	start := time.Now()
	if err := pingB(); err == nil {
		t.Fatal("after dualstack turned IPv6 forwarding on, the host routes between two unrelated interfaces")
	}
	t.Logf("blocked (%s)", time.Since(start).Round(time.Millisecond))
	// dualstack's own network still reaches out and is reached.
	harness.RunContainer(t, "ds-fwp-a", "ds-fwp")
	harness.Ping(t, "ds-fwp-a", "2001:db8:fa::2")
}
