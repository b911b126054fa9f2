//go:build integration

package pd

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// pdNet creates a dualstack bridge network with an IPv4 and a ULA subnet
// whose containers also get addresses from the prefix delegated on the
// bed's uplink (-o delegated_prefix=dspd0), and removes it when the test
// ends.
func pdNet(t *testing.T, name, subnet4, subnet6 string, args ...string) {
	t.Helper()
	harness.DSNet(t, name, append([]string{"-o", "delegated_prefix=" + harness.DelegationIF, "--ipv6", "--subnet", subnet4, "--subnet", subnet6}, args...)...)
	t.Cleanup(func() {
		if err := removeNetwork(name); err != nil {
			t.Error(err)
		}
	})
}

// removeNetwork removes network name, trying again for up to 10 s:
// dockerd may still be releasing the endpoints of containers that
// `docker rm -f` just removed. A network that is not there is no error.
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
// published on all the host's addresses (-p 80), and on port 81, not
// published.
type server struct {
	name string
	ula  netip.Addr // its Docker-visible IPv6 address, in the ULA subnet
	pid  string
	// took is how long its docker run took.
	took time.Duration
}

// ns is the path of the container's network namespace.
func (s server) ns() string { return "/proc/" + s.pid + "/ns/net" }

// global is the container's address in the network's /64 net: the
// network's /64 and the host part of its ULA address.
func (s server) global(net netip.Prefix) netip.Addr {
	a, u := net.Addr().As16(), s.ula.As16()
	copy(a[8:], u[8:])
	return netip.AddrFrom16(a)
}

// startServers starts one server per name on network, all at once, and
// removes them when the test ends.
func startServers(t *testing.T, network string, names []string) []server {
	t.Helper()
	errs := make([]error, len(names))
	took := make([]time.Duration, len(names))
	t.Cleanup(func() { _, _ = harness.DockerCmd(append([]string{"rm", "-f"}, names...)...) })
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			out, err := harness.DockerCmd("run", "-d", "--label", harness.TestLabel, "--name", name, "--network", network, "-p", "80",
				harness.Image, "sh", "-c", "mkdir -p /www && echo "+name+" > /www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && exec sleep 3600")
			took[i] = time.Since(start)
			if err != nil {
				errs[i] = fmt.Errorf("docker run %s: %v: %s", name, err, strings.TrimSpace(out))
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	servers := inspectServers(t, network, names)
	for i := range servers {
		servers[i].took = took[i]
	}
	return servers
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
		servers = append(servers, server{name: strings.TrimPrefix(f[0], "/"), ula: a, pid: f[1]})
	}
	return servers
}

// names is prefix-from … prefix-(to-1).
func names(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// parallel runs check for every server at once and reports each error
// (t.Error: every server is checked); it reports whether all passed.
func parallel(t *testing.T, servers []server, check func(s server) error) bool {
	t.Helper()
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
	ok := true
	for _, err := range errs {
		if err != nil {
			t.Error(err)
			ok = false
		}
	}
	return ok
}

// delegated is where delegated addresses come from: the documentation
// prefix, of which the ULA subnets take nothing.
var delegated = netip.MustParsePrefix("2001:db8::/32")

// globals lists the container's addresses from a delegated prefix.
func globals(s server) ([]harness.LifetimeAddr, error) {
	all, err := harness.GlobalAddrs6(s.ns(), "eth0")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", s.name, err)
	}
	var out []harness.LifetimeAddr
	for _, a := range all {
		if delegated.Contains(a.Prefix().Addr()) {
			out = append(out, a)
		}
	}
	return out, nil
}

// wantAddrs checks s's delegated addresses: exactly one preferred, in
// current (the network's /64 of the prefix held now; none when current
// is not valid), the others deprecated, each in one of old.
func wantAddrs(s server, current netip.Prefix, old ...netip.Prefix) error {
	addrs, err := globals(s)
	if err != nil {
		return err
	}
	var preferred []harness.LifetimeAddr
	for _, a := range addrs {
		if a.Tentative || !a.NoDAD || a.PrefixLen != 64 {
			return fmt.Errorf("%s: %s: want nodad, not tentative, /64", s.name, a)
		}
		if !a.Deprecated {
			preferred = append(preferred, a)
			continue
		}
		if !slices.ContainsFunc(old, func(p netip.Prefix) bool { return a.Prefix().Addr() == s.global(p) }) {
			return fmt.Errorf("%s has the deprecated %s, want only the host part of %s in %v", s.name, a, s.ula, old)
		}
	}
	if !current.IsValid() {
		if len(preferred) > 0 {
			return fmt.Errorf("%s has %v: want no preferred delegated address", s.name, preferred)
		}
		return nil
	}
	want := s.global(current)
	if len(preferred) != 1 || preferred[0].Prefix().Addr() != want {
		return fmt.Errorf("%s has %v, want one preferred delegated address, %s/64 (the host part of %s)", s.name, addrs, want, s.ula)
	}
	if a := preferred[0]; a.Valid > uint32(harness.DelegationValid.Seconds()) || a.Preferred > uint32(harness.DelegationPreferred.Seconds()) {
		return fmt.Errorf("%s: %s: want the lease's lifetimes, at most valid %v, preferred %v", s.name, a, harness.DelegationValid, harness.DelegationPreferred)
	}
	return nil
}

// eventually retries check every 200 ms until it succeeds or d passes,
// and returns its last error.
func eventually(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get fetches http://addr/ from the namespace at nsPath and wants body,
// retrying for up to 5 s (a server may still be starting).
func get(what, nsPath string, addr netip.Addr, port, body string) error {
	hp := harness.HostPort(addr.String(), port)
	var got string
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, err = harness.HTTPGet(nsPath, hp); err == nil && got == body {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: http://%s/: got %q (%v), want %q", what, hp, got, err, body)
		}
	}
}

// blocked wants a TCP connection from the namespace at nsPath to addr to
// fail within a short time.
func blocked(what, nsPath string, addr netip.Addr, port string) error {
	hp := harness.HostPort(addr.String(), port)
	if err := harness.Dial(nsPath, hp, 500*time.Millisecond); err == nil {
		return fmt.Errorf("%s: %s accepts a connection: want it blocked", what, hp)
	}
	return nil
}
