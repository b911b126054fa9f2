//go:build integration

package engine

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// BenchmarkNDPProxy's link (issue 23), a VPS's uplink in small: a veth
// whose end ndpLink, in the engine's namespace, holds ndpHostAddr and
// whose other end, ndpRouterLink in a "router" namespace of its own,
// holds ndpRouterAddr, so that the /64 is on-link on both sides and
// nothing is routed to the host.
const (
	ndpLink       = "dsndp0"
	ndpRouterLink = "dsndpr0"
	ndpRouterAddr = "2001:db8:f1::1"
	ndpHostAddr   = "2001:db8:f1::2"
)

// BenchmarkNDPProxy measures `docker run --rm` (as BenchmarkRunRm) on a
// dualstack bridge with an IPv4 subnet and an IPv6 /80, against the same
// with -o ndp_proxy=IF and its /80 inside IF's on-link /64, in the same
// engine and run, in turns: the median per network. Issue 23's goal: the
// ndp_proxy network at most 1.05 times the plain one.
func BenchmarkNDPProxy(b *testing.B) {
	if harness.Eng.External {
		b.Skip("needs the private engine's network namespace")
	}
	r := newNDPRouter(b)
	harness.CreateNetwork(b, "ds-bndp-plain", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", "198.18.1.0/24", "--subnet", "2001:db8:f2:0:1::/80")
	harness.CreateNetwork(b, "ds-bndp-proxy", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"-o", "ndp_proxy="+r.link, "--subnet", "198.18.2.0/24", "--subnet", "2001:db8:f1:0:1::/80")
	r.wantProxied(b, "ds-bndp-proxy")
	api := engineAPI{harness.NewEngineAPI(b)}
	inTurns(b, []benchNetwork{{"dualstack", "ds-bndp-plain"}, {"ndp-proxy", "ds-bndp-proxy"}}, api.runRm)
}

// ndpRouter is the router's namespace, ns, and link, the veth's end in
// the engine's namespace: the ndp_proxy network's IF.
type ndpRouter struct{ ns, link string }

// newNDPRouter makes the router's namespace and the veth to it, and
// removes both when the benchmark ends (after its networks, which are
// created later). Neither end runs duplicate address detection, so that
// their addresses, link-local ones too, are usable at once, as on an
// uplink that has been up a while. go test runs the benchmark with b.N 1
// first, so the measured pass has a link made again under the same name
// seconds after the first went; the plugin must answer and advertise on
// the new one (wantProxied).
func newNDPRouter(b *testing.B) ndpRouter {
	// dsrtr-PID-...: a run killed before its cleanup leaves a namespace
	// that the harness removes at its next start.
	r := ndpRouter{ns: fmt.Sprintf("dsrtr-%d-ndp", os.Getpid()), link: ndpLink}
	ipRun(b, "netns", "add", r.ns)
	b.Cleanup(func() {
		_ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", r.link).Run()
		_ = exec.Command("ip", "netns", "del", r.ns).Run()
	})
	ipRun(b, "-n", r.ns, "link", "set", "lo", "up")
	ipRun(b, "-n", harness.Eng.Netns, "link", "add", r.link, "type", "veth", "peer", "name", ndpRouterLink, "netns", r.ns)
	for _, end := range []struct{ ns, link, addr string }{
		{r.ns, ndpRouterLink, ndpRouterAddr}, {harness.Eng.Netns, r.link, ndpHostAddr},
	} {
		ipRun(b, "netns", "exec", end.ns, "sysctl", "-qw", "net.ipv6.conf."+end.link+".accept_dad=0")
		ipRun(b, "-n", end.ns, "addr", "add", end.addr+"/64", "dev", end.link, "nodad")
		ipRun(b, "-n", end.ns, "link", "set", end.link, "up")
	}
	return r
}

// wantProxied fails the benchmark unless the ndp_proxy network does what
// a container's start on it costs: the host advertises the container's
// address on the link (the router receives a neighbour advertisement
// before it has asked for any), the container reaches the router, which
// has no route to the container's subnet and so finds it only through
// the host's proxy entry, and that entry is on the link. A benchmark of
// an option that did nothing would measure nothing.
func (r ndpRouter) wantProxied(b *testing.B, network string) {
	const c = "ds-bndp-check"
	before := r.advertisements(b)
	harness.RunContainer(b, c, network)
	defer func() { _, _ = harness.DockerCmd("rm", "-f", c) }()
	_, v6 := harness.InspectAddrs(b, c, network)
	for deadline := time.Now().Add(2 * time.Second); r.advertisements(b) == before; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("%s on %s (ndp_proxy=%s) started, and the router received no neighbour advertisement within 2 s: "+
				"the plugin's log says why (\"advertise the endpoint's addresses\")", c, network, r.link)
		}
	}
	if out, err := harness.DockerCmd("exec", c, "ping", "-c", "1", "-W", "3", ndpRouterAddr); err != nil {
		b.Fatalf("%s on %s (ndp_proxy=%s) cannot ping the router %s: %v\n%s\nproxy entries: %s",
			c, network, r.link, ndpRouterAddr, err, out, r.proxyEntries(b))
	}
	if entries := r.proxyEntries(b); !strings.Contains(entries, v6.String()+" ") {
		b.Fatalf("%s's address %s has no proxy entry on %s: %q", c, v6, r.link, entries)
	}
}

// advertisements is how many neighbour advertisements the router has
// received.
func (r ndpRouter) advertisements(b *testing.B) int {
	out, err := exec.Command("ip", "netns", "exec", r.ns, "cat", "/proc/net/snmp6").CombinedOutput()
	if err != nil {
		b.Fatalf("the router's /proc/net/snmp6: %v: %s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Icmp6InNeighborAdvertisements" {
			n, err := strconv.Atoi(f[1])
			if err != nil {
				b.Fatalf("the router's /proc/net/snmp6: %q", line)
			}
			return n
		}
	}
	b.Fatalf("the router's /proc/net/snmp6 has no Icmp6InNeighborAdvertisements:\n%s", out)
	return 0
}

// proxyEntries is `ip -6 neigh show proxy dev LINK` in the engine's
// namespace.
func (r ndpRouter) proxyEntries(b *testing.B) string {
	out, err := exec.Command("ip", "-n", harness.Eng.Netns, "-6", "neigh", "show", "proxy", "dev", r.link).CombinedOutput()
	if err != nil {
		b.Fatalf("ip -6 neigh show proxy dev %s: %v: %s", r.link, err, out)
	}
	return strings.TrimSpace(string(out))
}

// ipRun runs the host's ip(8) and fails the benchmark if it fails.
func ipRun(b *testing.B, args ...string) {
	b.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		b.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}
