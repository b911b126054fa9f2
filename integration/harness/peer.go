//go:build integration

package harness

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

// PeerNS is a network namespace joined to the engine's by a veth pair,
// hostEnd in the engine's namespace and peerEnd in the new one: the
// "outside host" of the firewall tests, the "router" of the macvlan tests.
// It is removed when the test ends.
type PeerNS struct{ Name, Path string }

// NewPeerNS makes the namespace PREFIXPID joined by the veth pair
// hostEnd-peerEnd (the test is skipped on an external engine).
func NewPeerNS(t testing.TB, prefix, hostEnd, peerEnd string) PeerNS {
	t.Helper()
	if Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	p := PeerNS{Name: fmt.Sprintf("%s%d", prefix, os.Getpid())}
	p.Path = filepath.Join("/run/netns", p.Name)
	IPRun(t, "netns", "add", p.Name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "-n", Eng.Netns, "link", "del", hostEnd).Run()
		_ = exec.Command("ip", "netns", "del", p.Name).Run()
	})
	IPRun(t, "-n", p.Name, "link", "set", "lo", "up")
	IPRun(t, "-n", Eng.Netns, "link", "add", hostEnd, "type", "veth", "peer", "name", peerEnd, "netns", p.Name)
	return p
}

// IPRun runs the host's ip(8) and fails the test if it fails.
func IPRun(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// HTTPGet fetches http://addr/ from inside the network namespace at nsPath
// with a raw HTTP/1.0 request (the socket is made in the namespace).
func HTTPGet(nsPath, addr string) (string, error) {
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

// EngineNetns is the path of the private engine's network namespace.
func EngineNetns() string { return filepath.Join("/run/netns", Eng.Netns) }

// ContainerNS is the network namespace of a running container, as the
// test (root, on the Docker host) reaches it.
func ContainerNS(t *testing.T, container string) string {
	t.Helper()
	return "/proc/" + Docker(t, "inspect", "-f", "{{.State.Pid}}", container) + "/ns/net"
}

// RunServer starts a container that serves its name over HTTP on ports
// 80 and 81 (busybox httpd).
func RunServer(t *testing.T, name, network string, args ...string) {
	t.Helper()
	full := []string{"run", "-d", "--label", TestLabel, "--name", name, "--network", network}
	full = append(full, args...)
	full = append(full, Image, "sh", "-c", "mkdir -p /www && echo "+name+" > /www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && exec sleep 3600")
	t.Cleanup(func() { _, _ = DockerCmd("rm", "-f", name) })
	Docker(t, full...)
}

// HostPort is a:port, brackets around an IPv6 address.
func HostPort(a, port string) string { return net.JoinHostPort(a, port) }

// WantReach fetches from the namespace at nsPath and wants body back.
func WantReach(t *testing.T, what, nsPath, addr, body string) {
	t.Helper()
	var got string
	var err error
	for i := 0; i < 20; i++ { // httpd may still be starting
		if got, err = HTTPGet(nsPath, addr); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil || got != body {
		t.Errorf("%s: %s: got %q, %v; want %q", what, addr, got, err, body)
	}
}

// WantBlocked fetches from the namespace at nsPath and wants no answer.
func WantBlocked(t *testing.T, what, nsPath, addr string) {
	t.Helper()
	if got, err := HTTPGet(nsPath, addr); err == nil {
		t.Errorf("%s: %s answered %q: want it blocked", what, addr, got)
	}
}

// NoPing has container from ping each of addrs once, failing the test
// if one answers.
func NoPing(t *testing.T, from string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := DockerCmd("exec", from, "ping", "-c", "1", "-W", "1", a); err == nil {
			t.Errorf("%s can ping %s: want it blocked\n%s", from, a, out)
		}
	}
}

// RulesIn returns the engine host's dualstack rules, both families.
func RulesIn(t *testing.T) string {
	t.Helper()
	return LeftoverRules()
}
