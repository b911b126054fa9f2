//go:build integration

package ndp

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// ndpNet creates a dualstack bridge network whose IPv6 subnet is proxied
// on the bed's link (-o ndp_proxy=dsnd0).
func ndpNet(t *testing.T, name, subnet4, subnet6 string, args ...string) {
	t.Helper()
	harness.DSNet(t, name, append([]string{"-o", "ndp_proxy=" + harness.OnLinkIF, "--ipv6", "--subnet", subnet4, "--subnet", subnet6}, args...)...)
	harness.RemoveNetworkAtEnd(t, name)
}

// server is a container of the suite's (harness.StartServers).
type server = harness.Server

// web is http://[addr]:port/ of s.
func web(s server, port string) string { return harness.HostPort(s.Addr.String(), port) }

// eachServer runs check for every server at once and reports each error
// (t.Error: every server is checked).
func eachServer(t *testing.T, servers []server, check func(s server) error) {
	t.Helper()
	for _, err := range harness.EachServer(servers, check) {
		if err != nil {
			t.Error(err)
		}
	}
}

// reachable wants every server to answer the router on its published
// port, each at the router's first packet after the router forgot it:
// the host must answer the router's fresh solicitation.
func reachable(t *testing.T, b *harness.OnLink, servers []server) {
	t.Helper()
	for _, s := range servers {
		b.FlushRouterNeigh(t, s.Addr.String())
	}
	errs := harness.EachServer(servers, func(s server) error {
		return harness.GetBody("the router", b.Router.Path, web(s, "80"), s.Name)
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("%v\n%s", err, diagnose(t, b, servers[i]))
		}
	}
}

// diagnose says what the link and the host show of s, for a failure's
// report: the router's neighbour entry, the host's proxy entry, and
// whether the host itself reaches it.
func diagnose(t *testing.T, b *harness.OnLink, s server) string {
	t.Helper()
	host := "yes"
	if err := harness.Dial(harness.EngineNetns(), web(s, "80"), time.Second); err != nil {
		host = err.Error()
	}
	report := fmt.Sprintf("  the router's entry for %s: %+v (the host's MAC is %s)\n  the host answers for it on %s: %v\n  the host connects to its port 80: %s",
		s.Addr, b.RouterNeigh(t, s.Addr.String()), b.HostMAC, harness.OnLinkIF, slices.Contains(harness.ProxiedOn(t, harness.OnLinkIF), s.Addr), host)
	if host == "yes" {
		return report
	}
	// The host does not reach it either: what the host and the container
	// have of each other.
	for _, c := range [][]string{
		{"ip", "-n", harness.Eng.Netns, "-6", "route", "get", s.Addr.String()},
		{"ip", "-n", harness.Eng.Netns, "-6", "neigh", "show", s.Addr.String()},
		{"nsenter", "--net=" + s.NS(), "ip", "addr"},
		{"nsenter", "--net=" + s.NS(), "ip", "-6", "route"},
		{"nsenter", "--net=" + s.NS(), "ip", "-6", "neigh"},
		{"nsenter", "--net=" + s.NS(), "busybox", "netstat", "-ltn"},
	} {
		out, err := exec.Command(c[0], c[1:]...).CombinedOutput()
		report += fmt.Sprintf("\n  %s: %v\n%s", strings.Join(c, " "), err, out)
	}
	return report
}

// wantProxied wants the host to answer solicitations on the link for each
// server's address (its proxy entries on dsnd0), and none of gone's.
func wantProxied(t *testing.T, servers, gone []server) {
	t.Helper()
	proxied := harness.ProxiedOn(t, harness.OnLinkIF)
	for _, s := range servers {
		if !slices.Contains(proxied, s.Addr) {
			t.Errorf("%s (%s) has no proxy entry on %s; the entries: %v", s.Name, s.Addr, harness.OnLinkIF, harness.ProxyEntries(t))
		}
	}
	for _, s := range gone {
		if slices.Contains(proxied, s.Addr) {
			t.Errorf("%s (%s) is gone but still has a proxy entry on %s; the entries: %v", s.Name, s.Addr, harness.OnLinkIF, harness.ProxyEntries(t))
		}
	}
}
