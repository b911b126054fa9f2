//go:build integration

package harness

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// DSNet creates a dualstack bridge network with dualstack's IPAM.
func DSNet(t *testing.T, name string, args ...string) {
	t.Helper()
	CreateNetwork(t, name, append([]string{"-d", PluginName, "--ipam-driver", PluginName}, args...)...)
}

// IPJSON runs the host's ip(8) with -j in the network namespace of the
// engine (container == "") or of a running container.
func IPJSON(t testing.TB, container string, v any, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if container == "" {
		cmd = exec.Command("ip", append([]string{"-n", Eng.Netns, "-j"}, args...)...)
	} else {
		pid := Docker(t, "inspect", "-f", "{{.State.Pid}}", container)
		cmd = exec.Command("nsenter", append([]string{"-t", pid, "-n", "ip", "-j"}, args...)...)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// AddrsOf lists the addresses of dev in the engine's (container == "") or a
// container's namespace.
func AddrsOf(t testing.TB, container, dev string) []netnstest.Addr {
	t.Helper()
	var out []struct {
		AddrInfo []netnstest.Addr `json:"addr_info"`
	}
	IPJSON(t, container, &out, "addr", "show", "dev", dev)
	var all []netnstest.Addr
	for _, o := range out {
		all = append(all, o.AddrInfo...)
	}
	return all
}

// WantIfaceAddrs checks that dev holds exactly the global addresses want
// (in any order), every IPv6 address nodad and none tentative, link-local
// included.
func WantIfaceAddrs(t testing.TB, container, dev string, want ...string) {
	t.Helper()
	var global []string
	for _, a := range AddrsOf(t, container, dev) {
		if a.Tentative {
			t.Fatalf("%s %s: address %s is tentative", container, dev, a.Local)
		}
		if a.Scope != "global" {
			continue
		}
		if a.Family == "inet6" && !a.NoDAD {
			t.Fatalf("%s %s: %s is not nodad", container, dev, a.Local)
		}
		global = append(global, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
	}
	if strings.Join(Sorted(global), " ") != strings.Join(Sorted(want), " ") {
		t.Fatalf("%s %s has %v, want %v", container, dev, Sorted(global), Sorted(want))
	}
}

// Sorted is a sorted copy of s.
func Sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// NetID is the ID of network name.
func NetID(t testing.TB, name string) string {
	t.Helper()
	return Docker(t, "network", "inspect", "-f", "{{.Id}}", name)
}

// Ping has container from ping each of addrs once, failing the test if
// one does not answer.
func Ping(t testing.TB, from string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := DockerCmd("exec", from, "ping", "-c", "1", "-W", "3", a); err != nil {
			t.Fatalf("%s cannot ping %s: %v\n%s", from, a, err, out)
		}
	}
}

// FourSubnets are the network create arguments of a network with an
// IPv4 subnet and three IPv6 ones.
var FourSubnets = []string{"--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64", "--subnet", "2001:db8:2::/64", "--subnet", "2001:db8:3::/64"}

// AddrSet is a container's expected global addresses: the n-th address of
// each subnet.
func AddrSet(n int, subnets ...string) []string {
	var out []string
	for _, s := range subnets {
		p := netip.MustParsePrefix(s)
		a := p.Addr()
		for i := 0; i < n; i++ {
			a = a.Next()
		}
		out = append(out, netip.PrefixFrom(a, p.Bits()).String())
	}
	return out
}

// Within retries check until it succeeds, failing t after d.
func Within(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SysctlIn reads a sysctl in the engine's network namespace.
func SysctlIn(t testing.TB, key string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", Eng.Netns, "cat", "/proc/sys/"+key).Output()
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

// SetSysctlIn writes a sysctl in the engine's network namespace.
func SetSysctlIn(t testing.TB, key, value string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", Eng.Netns, "sh", "-c", "echo "+value+" > /proc/sys/"+key).CombinedOutput(); err != nil {
		t.Fatalf("write %s: %v: %s", key, err, out)
	}
}

// SetPlugin disables the plugin, applies settings (`docker plugin set`),
// enables it again and waits until it answers.
func SetPlugin(t testing.TB, settings ...string) {
	t.Helper()
	Docker(t, "plugin", "disable", "-f", PluginName)
	Docker(t, append([]string{"plugin", "set", PluginName}, settings...)...)
	Docker(t, "plugin", "enable", PluginName)
	WaitPlugin(t)
}
