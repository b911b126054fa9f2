//go:build integration

package firewall

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netns"
)

// containerGet fetches http://addr/ from inside a container's network
// namespace (busybox's static wget crashes on failures; the test's own
// client in the container's namespace is what a program there would do).
func containerGet(t *testing.T, container, addr string) (string, error) {
	t.Helper()
	return harness.HTTPGet(harness.ContainerNS(t, container), addr)
}

// Issue 4, acceptance 2: what the outside host sees of containers' traffic.
func TestFirewallSourceAddresses(t *testing.T) {
	o := harness.NewOutside(t, "192.0.2.0/24", "2001:db8:31::/64", "2001:db8:33::/64")
	harness.AcceptForwarding(t)
	o.ServeSource(t)
	harness.DSNet(t, "ds-routed", "--ipv6", "--subnet", "192.0.2.0/25", "--subnet", "2001:db8:31::/64", "--subnet", "2001:db8:33::/64")
	harness.DSNet(t, "ds-nat6", "-o", "ipv6_mode=nat", "--ipv6", "--subnet", "192.0.2.128/25", "--subnet", "fd00:32::/64")
	harness.RunContainer(t, "ds-routed-a", "ds-routed")
	harness.RunContainer(t, "ds-nat6-a", "ds-nat6")
	// Routed, the container's own address: the kernel picks the source
	// among the container's IPv6 addresses, one per subnet.
	for _, c := range []struct{ container, url, want string }{
		{"ds-routed-a", harness.HostPort(harness.Outside4, harness.OutsidePort), harness.OutsideHost4},
		{"ds-routed-a", harness.HostPort(harness.Outside6, harness.OutsidePort), "2001:db8:31::2 2001:db8:33::2"},
		{"ds-nat6-a", harness.HostPort(harness.Outside4, harness.OutsidePort), harness.OutsideHost4},
		{"ds-nat6-a", harness.HostPort(harness.Outside6, harness.OutsidePort), harness.OutsideHost6},
	} {
		got, err := containerGet(t, c.container, c.url)
		if err != nil || got == "" || !strings.Contains(" "+c.want+" ", " "+got+" ") {
			t.Errorf("%s fetching %s: the outside host saw %q (%v), want one of %q", c.container, c.url, got, err, c.want)
		}
	}
	// Routed IPv6 without a published port: nothing comes in.
	harness.RunServer(t, "ds-routed-srv", "ds-routed")
	harness.WantBlocked(t, "outside to a container's IPv6 port 80, unpublished", o.Path, harness.HostPort("2001:db8:31::3", "80"))
	harness.WantBlocked(t, "outside to a container's IPv4 port 80, unpublished", o.Path, harness.HostPort("192.0.2.3", "80"))
	// ... while the container can be reached inside its network.
	harness.WantReach(t, "container to container on one network", harness.ContainerNS(t, "ds-routed-a"), harness.HostPort("2001:db8:31::3", "80"), "ds-routed-srv")
}

// Issue 4, acceptance 2 and 3: published ports from outside, from the
// host and from a container of the same network; a taken port.
func TestFirewallPublishedPorts(t *testing.T) {
	o := harness.NewOutside(t, "192.0.2.0/24", "2001:db8:31::/64")
	harness.AcceptForwarding(t)
	harness.DSNet(t, "ds-pub", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:31::/64", "--subnet", "2001:db8:34::/64")
	harness.RunServer(t, "ds-pub-srv", "ds-pub", "-p", "8080:80", "-p", "127.0.0.1:8081:80", "-p", "[::]:8082:80", "-p", "5353:53/udp")
	harness.RunContainer(t, "ds-pub-client", "ds-pub")
	const body = "ds-pub-srv"

	harness.WantReach(t, "outside, IPv4", o.Path, harness.HostPort(harness.OutsideHost4, "8080"), body)
	harness.WantReach(t, "outside, IPv6", o.Path, harness.HostPort(harness.OutsideHost6, "8080"), body)
	harness.WantReach(t, "outside, [::]:8082", o.Path, harness.HostPort(harness.OutsideHost6, "8082"), body)
	harness.WantBlocked(t, "outside to the port published on 127.0.0.1", o.Path, harness.HostPort(harness.OutsideHost4, "8081"))
	harness.WantBlocked(t, "outside to [::]:8082 over IPv4", o.Path, harness.HostPort(harness.OutsideHost4, "8082"))
	harness.WantBlocked(t, "outside to the unpublished port 81", o.Path, harness.HostPort("2001:db8:31::2", "81"))

	harness.WantReach(t, "host, 127.0.0.1:8081", harness.EngineNetns(), harness.HostPort("127.0.0.1", "8081"), body)
	harness.WantReach(t, "host, IPv4", harness.EngineNetns(), harness.HostPort(harness.OutsideHost4, "8080"), body)
	harness.WantReach(t, "host, IPv6", harness.EngineNetns(), harness.HostPort(harness.OutsideHost6, "8082"), body)

	client := harness.ContainerNS(t, "ds-pub-client")
	harness.WantReach(t, "container on the same network, IPv4", client, harness.HostPort(harness.OutsideHost4, "8080"), body)
	harness.WantReach(t, "container on the same network, IPv6", client, harness.HostPort(harness.OutsideHost6, "8080"), body)

	// UDP: a datagram to the host's port 5353 reaches the container's 53
	// (busybox has no UDP server: the test listens in the container's
	// namespace).
	var pc net.PacketConn
	if err := netns.Do(harness.ContainerNS(t, "ds-pub-srv"), func() (err error) {
		pc, err = net.ListenPacket("udp", ":53")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	received := make(chan string, 1)
	go func() {
		buf := make([]byte, 100)
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, _ := pc.ReadFrom(buf)
		received <- string(buf[:n])
	}()
	if err := netns.Do(o.Path, func() error {
		c, err := net.Dial("udp", harness.HostPort(harness.OutsideHost6, "5353"))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("hello-udp\n"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := <-received; !strings.Contains(got, "hello-udp") {
		t.Errorf("udp to [%s]:5353 did not reach the container's port 53 (got %q)", harness.OutsideHost6, got)
	}

	// Bad input: a host port another container publishes.
	out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-pub", "-p", "8080:80", harness.Image, "true")
	if !strings.Contains(out, "8080/tcp is already published by another container") || !strings.Contains(out, "choose another host port") {
		t.Errorf("second container on host port 8080: %s", out)
	}

	// The container gone, its ports are revoked.
	harness.Docker(t, "rm", "-f", "ds-pub-srv")
	if r := harness.RulesIn(t); strings.Contains(r, "-j DNAT") || strings.Contains(r, "--dport") {
		t.Errorf("port rules left after the container went:\n%s", r)
	}
	harness.WantBlocked(t, "outside to a revoked port", o.Path, harness.HostPort(harness.OutsideHost4, "8080"))
}

// Issue 4, acceptance 2: icc=false, isolation between networks, internal.
func TestFirewallIsolation(t *testing.T) {
	harness.NewOutside(t, "192.0.2.0/24", "2001:db8:41::/64", "2001:db8:42::/64")
	harness.AcceptForwarding(t)
	harness.DSNet(t, "ds-noicc", "-o", "icc=false", "--ipv6", "--subnet", "192.0.2.0/25", "--subnet", "2001:db8:41::/64")
	harness.DSNet(t, "ds-other", "--ipv6", "--subnet", "192.0.2.128/25", "--subnet", "2001:db8:42::/64")
	harness.DSNet(t, "ds-fw-int", "--internal", "--ipv6", "--subnet", "203.0.113.0/24", "--subnet", "2001:db8:43::/64")
	harness.RunContainer(t, "ds-noicc-a", "ds-noicc")
	harness.RunContainer(t, "ds-noicc-b", "ds-noicc")
	harness.RunContainer(t, "ds-other-a", "ds-other")
	harness.RunContainer(t, "ds-fw-int-a", "ds-fw-int")

	// Reachable: the gateway, and the outside from a normal network. These
	// make the blocked cases below mean something.
	harness.Ping(t, "ds-noicc-a", "192.0.2.1", "2001:db8:41::1", harness.Outside4, harness.Outside6)
	harness.Ping(t, "ds-other-a", harness.Outside4, harness.Outside6)

	harness.NoPing(t, "ds-noicc-a", "192.0.2.3", "2001:db8:41::3")                      // icc=false
	harness.NoPing(t, "ds-other-a", "192.0.2.2", "2001:db8:41::2")                      // another network
	harness.NoPing(t, "ds-noicc-a", "192.0.2.130", "2001:db8:42::2")                    // and back
	harness.NoPing(t, "ds-fw-int-a", harness.Outside4, harness.Outside6, "192.0.2.130") // internal
}

// Issue 4, acceptance 3: a bad ipv6_mode.
func TestFirewallBadInput(t *testing.T) {
	out := harness.DockerFails(t, "network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "ipv6_mode=bogus", "--ipv6", "--subnet", "2001:db8:44::/64", "ds-bogus")
	if !strings.Contains(out, `ipv6_mode="bogus"`) || !strings.Contains(out, "want routed") {
		t.Errorf("ipv6_mode=bogus: %s", out)
	}
	if r := harness.RulesIn(t); strings.Contains(r, "2001:db8:44::") {
		t.Errorf("the refused network left rules:\n%s", r)
	}
}

// Issue 4, build 1, 7 and acceptance 2: ten plugin restarts and a dockerd
// restart duplicate or lose no rule, leave dualstack's hook where it
// belongs (its position, not only its text), published ports keep
// working, and with the last network gone nothing of dualstack's is left.
func TestFirewallLifecycle(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	if out := harness.Docker(t, "network", "ls", "-q", "--filter", "driver="+harness.PluginName); out != "" {
		t.Fatalf("dualstack networks left by other tests: %s", out)
	}
	harness.DSNet(t, "ds-life", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:45::/64")
	harness.RunServer(t, "ds-life-srv", "ds-life", "-p", "8090:80")
	before := harness.RulesIn(t)
	if !strings.Contains(before, "--dport 8090") {
		t.Fatalf("no rule for the published port:\n%s", before)
	}
	// Restarted through Docker (disable, enable), which returns once the
	// plugin serves again; crashes are the robustness suite's (issue 6):
	// Engine 20.10 does not restart a plugin killed while it is still
	// registering the previous start.
	for i := 0; i < 10; i++ {
		harness.Docker(t, "plugin", "disable", "-f", harness.PluginName)
		harness.Docker(t, "plugin", "enable", harness.PluginName)
	}
	harness.WaitPlugin(t)
	if after := harness.RulesIn(t); after != before {
		t.Errorf("rules changed over 10 plugin restarts:\n%s\nwant:\n%s", after, before)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if err := hookInPlace(tablesIn(t, cmd, "-S", "FORWARD")); err != nil {
			t.Errorf("%s, after 10 plugin restarts: %v", cmd, err)
		}
	}
	harness.WantReach(t, "host, after 10 plugin restarts", harness.EngineNetns(), harness.HostPort("127.0.0.1", "8090"), "ds-life-srv")

	// dockerd restarting (live-restore) re-creates its own chains and hooks.
	if err := harness.Eng.Restart(); err != nil {
		t.Fatal(err)
	}
	harness.WaitPlugin(t)
	if after := harness.RulesIn(t); after != before {
		t.Errorf("rules changed over a dockerd restart:\n%s\nwant:\n%s", after, before)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if err := hookInPlace(tablesIn(t, cmd, "-S", "FORWARD")); err != nil {
			t.Errorf("%s, after a dockerd restart: %v", cmd, err)
		}
	}
	harness.WantReach(t, "host, after a dockerd restart", harness.EngineNetns(), harness.HostPort("127.0.0.1", "8090"), "ds-life-srv")

	harness.Docker(t, "rm", "-f", "ds-life-srv")
	harness.Docker(t, "network", "rm", "ds-life")
	if r := harness.RulesIn(t); r != "" {
		t.Errorf("dualstack rules left after the last network went:\n%s", r)
	}
}
