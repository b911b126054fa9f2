//go:build integration

package ndp

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// ndpNet creates a dualstack bridge network whose IPv6 subnet is proxied
// on the bed's link (-o ndp_proxy=dsnd0).
func ndpNet(t *testing.T, name, subnet4, subnet6 string, args ...string) {
	t.Helper()
	harness.DSNet(t, name, append([]string{"-o", "ndp_proxy=" + harness.OnLinkIF, "--ipv6", "--subnet", subnet4, "--subnet", subnet6}, args...)...)
	removeAtEnd(t, name)
}

// removeAtEnd removes network name when the test ends, after its
// containers, and fails the test if it cannot: a network left behind
// would hold its subnet, and the NDP proxy on dsnd0, for the next test.
func removeAtEnd(t *testing.T, name string) {
	t.Cleanup(func() {
		if err := removeNetwork(name); err != nil {
			t.Error(err)
		}
	})
}

// removeNetwork removes network name, trying again for up to 10 s:
// dockerd may still be releasing the endpoints of containers that
// `docker rm -f` just removed, and refuses meanwhile ("has active
// endpoints"). A network that is not there is no error.
func removeNetwork(name string) error {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := harness.DockerCmd("network", "rm", name)
		if err == nil {
			return nil
		}
		if _, gone := harness.DockerCmd("network", "inspect", name); gone != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("docker network rm %s: %v: %s", name, err, strings.TrimSpace(out))
		}
	}
}

// server is a container that serves its name over HTTP on port 80,
// published (-p 80), and on port 81, not published.
type server struct {
	name string
	addr netip.Addr // its global IPv6 address in the network
	pid  string
}

// web is http://[addr]:port/.
func (s server) web(port string) string { return harness.HostPort(s.addr.String(), port) }

// ns is the path of the container's network namespace.
func (s server) ns() string { return "/proc/" + s.pid + "/ns/net" }

// startServers starts one server per name on network, all at once, and
// removes them when the test ends.
func startServers(t *testing.T, network string, names []string, args ...string) []server {
	t.Helper()
	errs := make([]error, len(names))
	// One docker rm for all: the CLI removes them at once.
	t.Cleanup(func() { _, _ = harness.DockerCmd(append([]string{"rm", "-f"}, names...)...) })
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			full := []string{"run", "-d", "--label", harness.TestLabel, "--name", name, "--network", network, "-p", "80"}
			full = append(append(full, args...), harness.Image, "sh", "-c",
				"mkdir -p /www && echo "+name+" > /www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && exec sleep 3600")
			if out, err := harness.DockerCmd(full...); err != nil {
				errs[i] = fmt.Errorf("docker run %s: %v: %s", name, err, strings.TrimSpace(out))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return inspectServers(t, network, names)
}

// inspectServers reads the IPv6 address and pid of each running container
// of names on network.
func inspectServers(t *testing.T, network string, names []string) []server {
	t.Helper()
	format := fmt.Sprintf(`{{.Name}} {{.State.Pid}} {{with index .NetworkSettings.Networks %q}}{{.GlobalIPv6Address}}{{end}}`, network)
	out := harness.Docker(t, append([]string{"inspect", "-f", format}, names...)...)
	var servers []server
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("docker inspect: %q: want name, pid and IPv6 address", l)
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil {
			t.Fatalf("docker inspect: %s has no IPv6 address on %s: %q", f[0], network, l)
		}
		servers = append(servers, server{name: strings.TrimPrefix(f[0], "/"), addr: a, pid: f[1]})
	}
	return servers
}

// names is prefix-0 … prefix-(n-1).
func names(prefix string, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// eachServer runs check for every server at once and reports each error
// (t.Error: every server is checked).
func eachServer(t *testing.T, servers []server, check func(s server) error) {
	t.Helper()
	for _, err := range parallel(servers, check) {
		if err != nil {
			t.Error(err)
		}
	}
}

// parallel runs check for every server at once and returns each one's
// error.
func parallel(servers []server, check func(s server) error) []error {
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for i, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = check(s)
		}()
	}
	wg.Wait()
	return errs
}

// get fetches http://addr/ from the namespace at nsPath and wants body,
// retrying for up to 5 s (a server may still be starting).
func get(what, nsPath, addr, body string) error {
	var got string
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, err = harness.HTTPGet(nsPath, addr); err == nil && got == body {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: http://%s/: got %q (%v), want %q", what, addr, got, err, body)
		}
	}
}

// blocked wants a TCP connection from the namespace at nsPath to addr to
// fail within a short time.
func blocked(what, nsPath, addr string) error {
	if err := harness.Dial(nsPath, addr, 500*time.Millisecond); err == nil {
		return fmt.Errorf("%s: %s accepts a connection: want it blocked", what, addr)
	}
	return nil
}

// reachable wants every server to answer the router on its published
// port, each at the router's first packet after the router forgot it:
// the host must answer the router's fresh solicitation.
func reachable(t *testing.T, b *harness.OnLink, servers []server) {
	t.Helper()
	for _, s := range servers {
		b.FlushRouterNeigh(t, s.addr.String())
	}
	errs := parallel(servers, func(s server) error {
		return get("the router", b.Router.Path, s.web("80"), s.name)
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
	if err := harness.Dial(harness.EngineNetns(), s.web("80"), time.Second); err != nil {
		host = err.Error()
	}
	report := fmt.Sprintf("  the router's entry for %s: %+v (the host's MAC is %s)\n  the host answers for it on %s: %v\n  the host connects to its port 80: %s",
		s.addr, b.RouterNeigh(t, s.addr.String()), b.HostMAC, harness.OnLinkIF, slices.Contains(harness.ProxiedOn(t, harness.OnLinkIF), s.addr), host)
	if host == "yes" {
		return report
	}
	// The host does not reach it either: what the host and the container
	// have of each other.
	for _, c := range [][]string{
		{"ip", "-n", harness.Eng.Netns, "-6", "route", "get", s.addr.String()},
		{"ip", "-n", harness.Eng.Netns, "-6", "neigh", "show", s.addr.String()},
		{"nsenter", "--net=" + s.ns(), "ip", "addr"},
		{"nsenter", "--net=" + s.ns(), "ip", "-6", "route"},
		{"nsenter", "--net=" + s.ns(), "ip", "-6", "neigh"},
		{"nsenter", "--net=" + s.ns(), "busybox", "netstat", "-ltn"},
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
		if !slices.Contains(proxied, s.addr) {
			t.Errorf("%s (%s) has no proxy entry on %s; the entries: %v", s.name, s.addr, harness.OnLinkIF, harness.ProxyEntries(t))
		}
	}
	for _, s := range gone {
		if slices.Contains(proxied, s.addr) {
			t.Errorf("%s (%s) is gone but still has a proxy entry on %s; the entries: %v", s.name, s.addr, harness.OnLinkIF, harness.ProxyEntries(t))
		}
	}
}
