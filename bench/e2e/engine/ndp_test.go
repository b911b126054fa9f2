//go:build integration

package engine

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The link of BenchmarkNDPProxy (issue 23), a VPS's uplink in small: a
// veth whose end ndpLink, in the engine's namespace, holds ndpHostAddr,
// and whose other end, in a "router" namespace of its own, holds
// ndpRouterAddr, so that the /64 is on-link on both sides and nothing is
// routed to the host.
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
	ndpRouter(b)
	harness.CreateNetwork(b, "ds-bndp-plain", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", "198.18.1.0/24", "--subnet", "2001:db8:f2:0:1::/80")
	harness.CreateNetwork(b, "ds-bndp-proxy", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"-o", "ndp_proxy="+ndpLink, "--subnet", "198.18.2.0/24", "--subnet", "2001:db8:f1:0:1::/80")
	wantProxied(b, "ds-bndp-proxy")
	api := engineAPI{harness.NewEngineAPI(b)}
	inTurns(b, []benchNetwork{{"dualstack", "ds-bndp-plain"}, {"ndp-proxy", "ds-bndp-proxy"}}, api.runRm)
}

// ndpRouter makes the router's namespace and the veth to it, and removes
// both when the benchmark ends (after its networks, which are created
// later). Neither end runs duplicate address detection, so that their
// addresses, link-local ones too, are usable at once, as on an uplink
// that has been up a while.
func ndpRouter(b *testing.B) {
	// dsrtr-PID-...: a run killed before its cleanup leaves a namespace
	// that the harness removes at its next start.
	ns := fmt.Sprintf("dsrtr-%d-ndp", os.Getpid())
	ipRun(b, "netns", "add", ns)
	b.Cleanup(func() {
		_ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", ndpLink).Run()
		_ = exec.Command("ip", "netns", "del", ns).Run()
	})
	ipRun(b, "-n", ns, "link", "set", "lo", "up")
	ipRun(b, "-n", harness.Eng.Netns, "link", "add", ndpLink, "type", "veth", "peer", "name", ndpRouterLink, "netns", ns)
	for _, end := range []struct{ ns, link, addr string }{
		{ns, ndpRouterLink, ndpRouterAddr}, {harness.Eng.Netns, ndpLink, ndpHostAddr},
	} {
		ipRun(b, "netns", "exec", end.ns, "sysctl", "-qw", "net.ipv6.conf."+end.link+".accept_dad=0")
		ipRun(b, "-n", end.ns, "addr", "add", end.addr+"/64", "dev", end.link, "nodad")
		ipRun(b, "-n", end.ns, "link", "set", end.link, "up")
	}
}

// wantProxied fails the benchmark unless the ndp_proxy network works: a
// container on it reaches the router, which has no route to the
// container's subnet and so finds it only through the host's proxy
// entry, and that entry is on ndpLink. A benchmark of an option that
// did nothing would measure nothing.
func wantProxied(b *testing.B, network string) {
	const c = "ds-bndp-check"
	harness.RunContainer(b, c, network)
	defer func() { _, _ = harness.DockerCmd("rm", "-f", c) }()
	_, v6 := harness.InspectAddrs(b, c, network)
	if out, err := harness.DockerCmd("exec", c, "ping", "-c", "1", "-W", "3", ndpRouterAddr); err != nil {
		b.Fatalf("%s on %s (ndp_proxy=%s) cannot ping the router %s: %v\n%s\nproxy entries: %s",
			c, network, ndpLink, ndpRouterAddr, err, out, proxyEntries(b))
	}
	if entries := proxyEntries(b); !strings.Contains(entries, v6.String()+" ") {
		b.Fatalf("%s's address %s has no proxy entry on %s: %q", c, v6, ndpLink, entries)
	}
}

// proxyEntries is `ip -6 neigh show proxy dev ndpLink` in the engine's
// namespace.
func proxyEntries(b *testing.B) string {
	out, err := exec.Command("ip", "-n", harness.Eng.Netns, "-6", "neigh", "show", "proxy", "dev", ndpLink).CombinedOutput()
	if err != nil {
		b.Fatalf("ip -6 neigh show proxy dev %s: %v: %s", ndpLink, err, out)
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
