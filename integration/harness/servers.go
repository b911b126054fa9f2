//go:build integration

package harness

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is a container that serves its name over HTTP on port 80,
// published on all the host's addresses (-p 80), and on port 81, not
// published: what the suites of the NDP proxy and of delegated prefixes
// reach from their routers.
type Server struct {
	Name string
	Addr netip.Addr // its IPv6 address on the network, as Docker has it
	Pid  string
	// Took is how long its docker run took.
	Took time.Duration
}

// NS is the path of the container's network namespace.
func (s Server) NS() string { return "/proc/" + s.Pid + "/ns/net" }

// StartServers starts one server per name on network, all at once (with
// args before the image), and removes them when the test ends.
func StartServers(t *testing.T, network string, names []string, args ...string) []Server {
	t.Helper()
	errs := make([]error, len(names))
	took := make([]time.Duration, len(names))
	// One docker rm for all: the CLI removes them at once.
	t.Cleanup(func() { _, _ = DockerCmd(append([]string{"rm", "-f"}, names...)...) })
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			full := []string{"run", "-d", "--label", TestLabel, "--name", name, "--network", network, "-p", "80"}
			full = append(append(full, args...), Image, "sh", "-c",
				"mkdir -p /www && echo "+name+" > /www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && exec sleep 3600")
			start := time.Now()
			out, err := DockerCmd(full...)
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
	servers := InspectServers(t, network, names)
	for i := range servers {
		servers[i].Took = took[i]
	}
	return servers
}

// InspectServers reads the IPv6 address and pid of each running
// container of names on network.
func InspectServers(t *testing.T, network string, names []string) []Server {
	t.Helper()
	format := fmt.Sprintf(`{{.Name}} {{.State.Pid}} {{with index .NetworkSettings.Networks %q}}{{.GlobalIPv6Address}}{{end}}`, network)
	out := Docker(t, append([]string{"inspect", "-f", format}, names...)...)
	var servers []Server
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Fatalf("docker inspect: %q: want name, pid and IPv6 address", l)
		}
		a, err := netip.ParseAddr(f[2])
		if err != nil {
			t.Fatalf("docker inspect: %s has no IPv6 address on %s: %q", f[0], network, l)
		}
		servers = append(servers, Server{Name: strings.TrimPrefix(f[0], "/"), Addr: a, Pid: f[1]})
	}
	return servers
}

// ServerNames is prefix-from … prefix-(to-1).
func ServerNames(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s-%d", prefix, i))
	}
	return out
}

// EachServer runs check for every server at once and returns each one's
// error.
func EachServer(servers []Server, check func(s Server) error) []error {
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

// RemoveNetworkAtEnd removes network name when the test ends, after its
// containers, and fails the test if it cannot: a network left behind
// would hold its subnet, and what it set up on the host, for the next
// test.
func RemoveNetworkAtEnd(t *testing.T, name string) {
	t.Cleanup(func() {
		if err := RemoveNetwork(name); err != nil {
			t.Error(err)
		}
	})
}

// RemoveNetwork removes network name, trying again for up to 30 s:
// dockerd may still be releasing the endpoints of containers that
// `docker rm -f` just removed, and refuses meanwhile ("has active
// endpoints"). A network that is not there is no error.
//
// Engine 20.10 can lose a decrement of a network's endpoint count when
// many containers go at once (libnetwork's endpoint_cnt), and then refuses
// forever, with no endpoint left. It fixes the count as it starts
// (cleanupLocalEndpoints): when the refusal outlives the wait with no
// container on the network, the engine is restarted once and asked again.
func RemoveNetwork(name string) error {
	restarted := false
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, err := DockerCmd("network", "rm", name)
		if err == nil {
			return nil
		}
		if _, gone := DockerCmd("network", "inspect", name); gone != nil {
			return nil
		}
		if time.Now().Before(deadline) {
			continue
		}
		if restarted || !staleEndpointCount(name, out) {
			return fmt.Errorf("docker network rm %s: %v: %s", name, err, strings.TrimSpace(out))
		}
		fmt.Fprintf(os.Stderr, "harness: Engine 20.10 refuses to remove %s with no container on it (a stale endpoint count): restarting dockerd, which fixes the count\n", name)
		if err := Eng.Restart(); err != nil {
			return fmt.Errorf("restart dockerd to fix %s's stale endpoint count: %w", name, err)
		}
		restarted = true
		deadline = time.Now().Add(30 * time.Second)
	}
}

// staleEndpointCount reports whether refused, docker network rm's answer,
// is Engine 20.10's stale endpoint count: active endpoints are claimed,
// and the network has no container.
func staleEndpointCount(name, refused string) bool {
	if Eng == nil || Eng.Kind == engineMoby || !strings.Contains(refused, "active endpoints") {
		return false
	}
	n, err := DockerCmd("network", "inspect", "-f", "{{len .Containers}}", name)
	return err == nil && strings.TrimSpace(n) == "0"
}

// GetBody fetches http://hostPort/ from the namespace at nsPath and wants
// body, retrying for up to 5 s (a server may still be starting); what
// names who fetches, for the error.
func GetBody(what, nsPath, hostPort, body string) error {
	var got string
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, err = HTTPGet(nsPath, hostPort); err == nil && got == body {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: http://%s/: got %q (%v), want %q", what, hostPort, got, err, body)
		}
	}
}

// Blocked wants a TCP connection from the namespace at nsPath to
// hostPort to fail within a short time.
func Blocked(what, nsPath, hostPort string) error {
	if err := Dial(nsPath, hostPort, 500*time.Millisecond); err == nil {
		return fmt.Errorf("%s: %s accepts a connection: want it blocked", what, hostPort)
	}
	return nil
}
