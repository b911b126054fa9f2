//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// The firewall tests (issue 4) need an "outside host": a network namespace
// joined to the engine's by a veth, with documentation prefixes on the
// link and routes to the container subnets through the engine's host. No
// traffic goes anywhere else.
const (
	outsidePrefix = "dsout-"
	hostLink4     = "198.51.100.1" // the Docker host's end
	outside4      = "198.51.100.2"
	hostLink6     = "2001:db8:ff::1"
	outside6      = "2001:db8:ff::2"
	outsidePort   = "9000"
)

// peerNS is a network namespace joined to the engine's by a veth pair,
// hostEnd in the engine's namespace and peerEnd in the new one: the
// "outside host" of the firewall tests, the "router" of the macvlan tests.
// It is removed when the test ends.
type peerNS struct{ name, path string }

func newPeerNS(t *testing.T, prefix, hostEnd, peerEnd string) peerNS {
	t.Helper()
	if eng.external {
		t.Skip("needs the private engine's network namespace")
	}
	p := peerNS{name: fmt.Sprintf("%s%d", prefix, os.Getpid())}
	p.path = filepath.Join("/run/netns", p.name)
	ipRun(t, "netns", "add", p.name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "-n", eng.netns, "link", "del", hostEnd).Run()
		_ = exec.Command("ip", "netns", "del", p.name).Run()
	})
	ipRun(t, "-n", p.name, "link", "set", "lo", "up")
	ipRun(t, "-n", eng.netns, "link", "add", hostEnd, "type", "veth", "peer", "name", peerEnd, "netns", p.name)
	return p
}

// ipRun runs the host's ip(8) and fails the test if it fails.
func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

type outside struct{ peerNS }

// newOutside creates the outside host with routes to subnets via the
// Docker host.
func newOutside(t *testing.T, subnets ...string) outside {
	t.Helper()
	o := outside{newPeerNS(t, outsidePrefix, "dsout0", "dsout1")}
	ipRun(t, "-n", eng.netns, "addr", "add", hostLink4+"/24", "dev", "dsout0")
	ipRun(t, "-n", eng.netns, "addr", "add", hostLink6+"/64", "dev", "dsout0", "nodad")
	ipRun(t, "-n", eng.netns, "link", "set", "dsout0", "up")
	ipRun(t, "-n", o.name, "addr", "add", outside4+"/24", "dev", "dsout1")
	ipRun(t, "-n", o.name, "addr", "add", outside6+"/64", "dev", "dsout1", "nodad")
	ipRun(t, "-n", o.name, "link", "set", "dsout1", "up")
	for _, s := range subnets {
		via := hostLink4
		if strings.Contains(s, ":") {
			via = hostLink6
		}
		ipRun(t, "-n", o.name, "route", "add", s, "via", via)
	}
	return o
}

// acceptForwarding sets the engine host's FORWARD policy to ACCEPT, in
// both families, until the test ends: both engines set it to DROP when they
// enable forwarding themselves, which would hide whether dualstack's own
// filter protects the containers (on a host where forwarding was on
// before Docker started, the policy stays ACCEPT).
func acceptForwarding(t *testing.T) {
	t.Helper()
	for _, cmd := range []string{"iptables", "ip6tables"} {
		policy := "ACCEPT"
		if b, _ := exec.Command("ip", "netns", "exec", eng.netns, cmd, "-S", "FORWARD").Output(); strings.Contains(string(b), "-P FORWARD DROP") {
			policy = "DROP"
		}
		if b, err := exec.Command("ip", "netns", "exec", eng.netns, cmd, "-P", "FORWARD", "ACCEPT").CombinedOutput(); err != nil {
			t.Fatalf("%s -P FORWARD ACCEPT: %v: %s", cmd, err, b)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "exec", eng.netns, cmd, "-P", "FORWARD", policy).Run() })
	}
}

// serveSource runs an HTTP server on the outside host (port 9000, both
// families) that answers with the source address it sees.
func (o outside) serveSource(t *testing.T) {
	t.Helper()
	var l net.Listener
	if err := netns.Do(o.path, func() (err error) {
		l, err = net.Listen("tcp", ":"+outsidePort)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	}))
}

// get fetches http://addr/ from inside the network namespace at nsPath
// with a raw HTTP/1.0 request (the socket is made in the namespace).
func get(nsPath, addr string) (string, error) {
	var body string
	err := netns.Do(nsPath, func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		body = strings.TrimSpace(string(b))
		return err
	})
	return body, err
}

func engineNetns() string { return filepath.Join("/run/netns", eng.netns) }

// containerNS is the network namespace of a running container, as the
// test (root, on the Docker host) reaches it.
func containerNS(t *testing.T, container string) string {
	t.Helper()
	return "/proc/" + docker(t, "inspect", "-f", "{{.State.Pid}}", container) + "/ns/net"
}

// containerGet fetches http://addr/ from inside a container's network
// namespace (busybox's static wget crashes on failures; the test's own
// client in the container's namespace is what a program there would do).
func containerGet(t *testing.T, container, addr string) (string, error) {
	t.Helper()
	return get(containerNS(t, container), addr)
}

// runServer starts a container that serves its name over HTTP on ports
// 80 and 81 (busybox httpd).
func runServer(t *testing.T, name, network string, args ...string) {
	t.Helper()
	full := []string{"run", "-d", "--label", testLabel, "--name", name, "--network", network}
	full = append(full, args...)
	full = append(full, image, "sh", "-c", "mkdir -p /www && echo "+name+" > /www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && exec sleep 3600")
	t.Cleanup(func() { _, _ = dockerCmd("rm", "-f", name) })
	docker(t, full...)
}

func hostPort(a, port string) string { return net.JoinHostPort(a, port) }

// wantReach fetches from the namespace at nsPath and wants body back.
func wantReach(t *testing.T, what, nsPath, addr, body string) {
	t.Helper()
	var got string
	var err error
	for i := 0; i < 20; i++ { // httpd may still be starting
		if got, err = get(nsPath, addr); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || got != body {
		t.Errorf("%s: %s: got %q, %v; want %q", what, addr, got, err, body)
	}
}

func wantBlocked(t *testing.T, what, nsPath, addr string) {
	t.Helper()
	if got, err := get(nsPath, addr); err == nil {
		t.Errorf("%s: %s answered %q: want it blocked", what, addr, got)
	}
}

func noPing(t *testing.T, from string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := dockerCmd("exec", from, "ping", "-c", "1", "-W", "1", a); err == nil {
			t.Errorf("%s can ping %s: want it blocked\n%s", from, a, out)
		}
	}
}

// rulesIn returns the engine host's dualstack rules, both families.
func rulesIn(t *testing.T) string {
	t.Helper()
	return leftoverRules()
}

// Issue 4, acceptance 2: what the outside host sees of containers' traffic.
func TestFirewallSourceAddresses(t *testing.T) {
	o := newOutside(t, "192.0.2.0/24", "2001:db8:31::/64", "2001:db8:33::/64")
	acceptForwarding(t)
	o.serveSource(t)
	dsNet(t, "ds-routed", "--ipv6", "--subnet", "192.0.2.0/25", "--subnet", "2001:db8:31::/64", "--subnet", "2001:db8:33::/64")
	dsNet(t, "ds-nat6", "-o", "ipv6_mode=nat", "--ipv6", "--subnet", "192.0.2.128/25", "--subnet", "fd00:32::/64")
	runContainer(t, "ds-routed-a", "ds-routed")
	runContainer(t, "ds-nat6-a", "ds-nat6")
	// Routed, the container's own address: the kernel picks the source
	// among the container's IPv6 addresses, one per subnet.
	for _, c := range []struct{ container, url, want string }{
		{"ds-routed-a", hostPort(outside4, outsidePort), hostLink4},
		{"ds-routed-a", hostPort(outside6, outsidePort), "2001:db8:31::2 2001:db8:33::2"},
		{"ds-nat6-a", hostPort(outside4, outsidePort), hostLink4},
		{"ds-nat6-a", hostPort(outside6, outsidePort), hostLink6},
	} {
		got, err := containerGet(t, c.container, c.url)
		if err != nil || got == "" || !strings.Contains(" "+c.want+" ", " "+got+" ") {
			t.Errorf("%s fetching %s: the outside host saw %q (%v), want one of %q", c.container, c.url, got, err, c.want)
		}
	}
	// Routed IPv6 without a published port: nothing comes in.
	runServer(t, "ds-routed-srv", "ds-routed")
	wantBlocked(t, "outside to a container's IPv6 port 80, unpublished", o.path, hostPort("2001:db8:31::3", "80"))
	wantBlocked(t, "outside to a container's IPv4 port 80, unpublished", o.path, hostPort("192.0.2.3", "80"))
	// ... while the container can be reached inside its network.
	wantReach(t, "container to container on one network", containerNS(t, "ds-routed-a"), hostPort("2001:db8:31::3", "80"), "ds-routed-srv")
}

// Issue 4, acceptance 2 and 3: published ports from outside, from the
// host and from a container of the same network; a taken port.
func TestFirewallPublishedPorts(t *testing.T) {
	o := newOutside(t, "192.0.2.0/24", "2001:db8:31::/64")
	acceptForwarding(t)
	dsNet(t, "ds-pub", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:31::/64", "--subnet", "2001:db8:34::/64")
	runServer(t, "ds-pub-srv", "ds-pub", "-p", "8080:80", "-p", "127.0.0.1:8081:80", "-p", "[::]:8082:80", "-p", "5353:53/udp")
	runContainer(t, "ds-pub-client", "ds-pub")
	const body = "ds-pub-srv"

	wantReach(t, "outside, IPv4", o.path, hostPort(hostLink4, "8080"), body)
	wantReach(t, "outside, IPv6", o.path, hostPort(hostLink6, "8080"), body)
	wantReach(t, "outside, [::]:8082", o.path, hostPort(hostLink6, "8082"), body)
	wantBlocked(t, "outside to the port published on 127.0.0.1", o.path, hostPort(hostLink4, "8081"))
	wantBlocked(t, "outside to [::]:8082 over IPv4", o.path, hostPort(hostLink4, "8082"))
	wantBlocked(t, "outside to the unpublished port 81", o.path, hostPort("2001:db8:31::2", "81"))

	wantReach(t, "host, 127.0.0.1:8081", engineNetns(), hostPort("127.0.0.1", "8081"), body)
	wantReach(t, "host, IPv4", engineNetns(), hostPort(hostLink4, "8080"), body)
	wantReach(t, "host, IPv6", engineNetns(), hostPort(hostLink6, "8082"), body)

	client := containerNS(t, "ds-pub-client")
	wantReach(t, "container on the same network, IPv4", client, hostPort(hostLink4, "8080"), body)
	wantReach(t, "container on the same network, IPv6", client, hostPort(hostLink6, "8080"), body)

	// UDP: a datagram to the host's port 5353 reaches the container's 53
	// (busybox has no UDP server: the test listens in the container's
	// namespace).
	var pc net.PacketConn
	if err := netns.Do(containerNS(t, "ds-pub-srv"), func() (err error) {
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
	if err := netns.Do(o.path, func() error {
		c, err := net.Dial("udp", hostPort(hostLink6, "5353"))
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
		t.Errorf("udp to [%s]:5353 did not reach the container's port 53 (got %q)", hostLink6, got)
	}

	// Bad input: a host port another container publishes.
	out := dockerFails(t, "run", "--rm", "--label", testLabel, "--network", "ds-pub", "-p", "8080:80", image, "true")
	if !strings.Contains(out, "8080/tcp is already published by another container") || !strings.Contains(out, "choose another host port") {
		t.Errorf("second container on host port 8080: %s", out)
	}

	// The container gone, its ports are revoked.
	docker(t, "rm", "-f", "ds-pub-srv")
	if r := rulesIn(t); strings.Contains(r, "-j DNAT") || strings.Contains(r, "--dport") {
		t.Errorf("port rules left after the container went:\n%s", r)
	}
	wantBlocked(t, "outside to a revoked port", o.path, hostPort(hostLink4, "8080"))
}

// Issue 4, acceptance 2: icc=false, isolation between networks, internal.
func TestFirewallIsolation(t *testing.T) {
	newOutside(t, "192.0.2.0/24", "2001:db8:41::/64", "2001:db8:42::/64")
	acceptForwarding(t)
	dsNet(t, "ds-noicc", "-o", "icc=false", "--ipv6", "--subnet", "192.0.2.0/25", "--subnet", "2001:db8:41::/64")
	dsNet(t, "ds-other", "--ipv6", "--subnet", "192.0.2.128/25", "--subnet", "2001:db8:42::/64")
	dsNet(t, "ds-fw-int", "--internal", "--ipv6", "--subnet", "203.0.113.0/24", "--subnet", "2001:db8:43::/64")
	runContainer(t, "ds-noicc-a", "ds-noicc")
	runContainer(t, "ds-noicc-b", "ds-noicc")
	runContainer(t, "ds-other-a", "ds-other")
	runContainer(t, "ds-fw-int-a", "ds-fw-int")

	// Reachable: the gateway, and the outside from a normal network. These
	// make the blocked cases below mean something.
	ping(t, "ds-noicc-a", "192.0.2.1", "2001:db8:41::1", outside4, outside6)
	ping(t, "ds-other-a", outside4, outside6)

	noPing(t, "ds-noicc-a", "192.0.2.3", "2001:db8:41::3")      // icc=false
	noPing(t, "ds-other-a", "192.0.2.2", "2001:db8:41::2")      // another network
	noPing(t, "ds-noicc-a", "192.0.2.130", "2001:db8:42::2")    // and back
	noPing(t, "ds-fw-int-a", outside4, outside6, "192.0.2.130") // internal
}

// Issue 4, acceptance 3: a bad ipv6_mode.
func TestFirewallBadInput(t *testing.T) {
	out := dockerFails(t, "network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName, "-o", "ipv6_mode=bogus", "--ipv6", "--subnet", "2001:db8:44::/64", "ds-bogus")
	if !strings.Contains(out, `ipv6_mode="bogus"`) || !strings.Contains(out, "want routed") {
		t.Errorf("ipv6_mode=bogus: %s", out)
	}
	if r := rulesIn(t); strings.Contains(r, "2001:db8:44::") {
		t.Errorf("the refused network left rules:\n%s", r)
	}
}

// Issue 4, build 1, 7 and acceptance 2: ten plugin restarts and a dockerd
// restart duplicate or lose no rule, leave dualstack's hook where it
// belongs (its position, not only its text), published ports keep
// working, and with the last network gone nothing of dualstack's is left.
func TestFirewallLifecycle(t *testing.T) {
	if eng.external {
		t.Skip("needs the private engine's network namespace")
	}
	if out := docker(t, "network", "ls", "-q", "--filter", "driver="+pluginName); out != "" {
		t.Fatalf("dualstack networks left by other tests: %s", out)
	}
	dsNet(t, "ds-life", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:45::/64")
	runServer(t, "ds-life-srv", "ds-life", "-p", "8090:80")
	before := rulesIn(t)
	if !strings.Contains(before, "--dport 8090") {
		t.Fatalf("no rule for the published port:\n%s", before)
	}
	// Restarted through Docker (disable, enable), which returns once the
	// plugin serves again; crashes are the robustness suite's (issue 6):
	// Engine 20.10 does not restart a plugin killed while it is still
	// registering the previous start.
	for i := 0; i < 10; i++ {
		docker(t, "plugin", "disable", "-f", pluginName)
		docker(t, "plugin", "enable", pluginName)
	}
	waitPlugin(t)
	if after := rulesIn(t); after != before {
		t.Errorf("rules changed over 10 plugin restarts:\n%s\nwant:\n%s", after, before)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if err := hookInPlace(tablesIn(t, cmd, "-S", "FORWARD")); err != nil {
			t.Errorf("%s, after 10 plugin restarts: %v", cmd, err)
		}
	}
	wantReach(t, "host, after 10 plugin restarts", engineNetns(), hostPort("127.0.0.1", "8090"), "ds-life-srv")

	// dockerd restarting (live-restore) re-creates its own chains and hooks.
	if err := eng.restart(); err != nil {
		t.Fatal(err)
	}
	waitPlugin(t)
	if after := rulesIn(t); after != before {
		t.Errorf("rules changed over a dockerd restart:\n%s\nwant:\n%s", after, before)
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if err := hookInPlace(tablesIn(t, cmd, "-S", "FORWARD")); err != nil {
			t.Errorf("%s, after a dockerd restart: %v", cmd, err)
		}
	}
	wantReach(t, "host, after a dockerd restart", engineNetns(), hostPort("127.0.0.1", "8090"), "ds-life-srv")

	docker(t, "rm", "-f", "ds-life-srv")
	docker(t, "network", "rm", "ds-life")
	if r := rulesIn(t); r != "" {
		t.Errorf("dualstack rules left after the last network went:\n%s", r)
	}
}
