//go:build integration

package harness

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
)

// ClusterNet creates network name with args on every host (or on hosts),
// and removes it when the test ends.
func ClusterNet(t *testing.T, name string, hosts []*ClusterHost, args ...string) {
	t.Helper()
	for _, h := range hosts {
		full := append([]string{"network", "create", "--label", TestLabel, "-d", PluginName, "--ipam-driver", PluginName}, args...)
		h.Docker(t, append(full, name)...)
		t.Cleanup(func() { _, _ = h.DockerCmd("network", "rm", name) })
	}
}

// Started is a container some host started.
type Started struct {
	Host *ClusterHost
	Name string
}

// StartEverywhere starts n containers on network on each of hosts, all at
// once, and returns those that started. A start that fails fails the test,
// unless mayFail (a burst the plugin is killed in): then it is logged.
func StartEverywhere(t *testing.T, hosts []*ClusterHost, network string, n int, mayFail bool) []Started {
	t.Helper()
	var mu sync.Mutex
	var out []Started
	var wg sync.WaitGroup
	for _, h := range hosts {
		for i := 0; i < n; i++ {
			c := fmt.Sprintf("%s-%s-%d", network, h.Name, i)
			t.Cleanup(func() { _, _ = h.DockerCmd("rm", "-f", c) })
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg, err := h.DockerCmd("run", "-d", "--label", TestLabel, "--name", c, "--network", network, Image, "sleep", "3600")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					out = append(out, Started{h, c})
				case mayFail:
					t.Logf("%s: %s did not start: %s", h.Name, c, strings.TrimSpace(msg))
				default:
					t.Errorf("%s: start %s: %v: %s", h.Name, c, err, strings.TrimSpace(msg))
				}
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b Started) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// GlobalAddrs lists the global addresses of c's eth0.
func GlobalAddrs(t *testing.T, c Started) []netip.Prefix {
	t.Helper()
	out := c.Host.Docker(t, "exec", c.Name, "ip", "-o", "addr", "show", "dev", "eth0")
	var addrs []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil && !p.Addr().IsLinkLocalUnicast() {
					addrs = append(addrs, p)
				}
			}
		}
	}
	return addrs
}

// WantClusterAddrs checks that every container has one address in each of
// subnets, that no address is held twice in the cluster, and that each
// host's containers are inside that host's blocks of network; it returns
// the addresses by container.
func WantClusterAddrs(t *testing.T, cs []Started, network string, subnets ...string) map[Started][]netip.Prefix {
	t.Helper()
	blocks := ClusterStatus(t).BlocksOf(network)
	holder := map[netip.Addr]string{}
	out := map[Started][]netip.Prefix{}
	for _, c := range cs {
		addrs := GlobalAddrs(t, c)
		out[c] = addrs
		for _, s := range subnets {
			sub := netip.MustParsePrefix(s)
			n := 0
			for _, a := range addrs {
				if sub.Contains(a.Addr()) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s on %s has %v: want one address in %s", c.Name, c.Host.Name, addrs, sub)
			}
		}
		for _, a := range addrs {
			if other, dup := holder[a.Addr()]; dup {
				t.Errorf("address %s is held by %s and by %s", a.Addr(), other, c.Name)
			}
			holder[a.Addr()] = c.Name
			if !slices.ContainsFunc(blocks[c.Host.Name], func(b netip.Prefix) bool { return b.Contains(a.Addr()) }) {
				t.Errorf("%s on %s has %s, outside that host's blocks %v", c.Name, c.Host.Name, a, blocks[c.Host.Name])
			}
		}
	}
	return out
}

// WantCrossHostPings has every container ping, on every address, one
// container of each other host.
func WantCrossHostPings(t *testing.T, cs []Started, addrs map[Started][]netip.Prefix) {
	t.Helper()
	byHost := map[string][]Started{}
	for _, c := range cs {
		byHost[c.Host.Name] = append(byHost[c.Host.Name], c)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 12)
	for i, c := range cs {
		var targets []string
		for host, others := range byHost {
			if host == c.Host.Name {
				continue
			}
			peer := others[i%len(others)]
			for _, a := range addrs[peer] {
				targets = append(targets, a.Addr().String())
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			script := "for a in " + strings.Join(targets, " ") + "; do ping -c 1 -W 3 $a >/dev/null || echo unreachable $a; done"
			if out, err := c.Host.DockerCmd("exec", c.Name, "sh", "-c", script); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("from %s on %s: %v %s", c.Name, c.Host.Name, err, strings.TrimSpace(out))
			}
		}()
	}
	wg.Wait()
}
