//go:build integration

package bgp

import (
	"bufio"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/bench/e2e"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/integration/harness"
)

// BenchmarkBGPAnnounce measures, on the routed bed, how long a host's new
// blocks take to reach the router (acceptance 1: within 1 s of the
// lease): from the moment etcd reports the block's key (the lease,
// followed with `etcdctl watch`) until `birdc show route` at the router
// lists it with the host's next hop, for the IPv4 and the IPv6 block the
// host leases for the first container of a cluster network with
// cluster_routes=bgp; and from the start of `docker network rm` until
// both are gone from the router. It reports the median and the slowest of
// each. The router is polled every 2 ms, each poll a birdc command of a
// few milliseconds: the figures are that much late.
func BenchmarkBGPAnnounce(b *testing.B) {
	harness.WaitSessions(b)
	leases := watchLeases(b)
	h := harness.Bed.Hosts[0]
	// poll returns when the router's routes satisfy done, and when that
	// was seen.
	poll := func(done func(map[netip.Prefix][]netip.Addr) bool) (time.Time, bool) {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if done(harness.Bed.RouterRoutes(b)) {
				return time.Now(), true
			}
		}
		return time.Time{}, false
	}
	subnet4, subnet6 := netip.MustParsePrefix("198.19.128.0/20"), netip.MustParsePrefix("fd00:be::/48")
	var announce, withdraw []time.Duration
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-bgp-%d", i)
		h.Docker(b, "network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "cluster="+name, "-o", "cluster_routes=bgp",
			"--subnet", subnet4.String(), "--ipv6", "--subnet", subnet6.String(), name)
		h.Docker(b, "run", "-d", "--label", harness.TestLabel, "--name", name, "--network", name, harness.Image, "sleep", "3600")
		var blocks []netip.Prefix
		seen, ok := poll(func(have map[netip.Prefix][]netip.Addr) bool {
			blocks = blocks[:0]
			for p, via := range have {
				if slices.Contains(via, h.Addr4) && subnet4.Contains(p.Addr()) || slices.Contains(via, h.Addr6) && subnet6.Contains(p.Addr()) {
					blocks = append(blocks, p)
				}
			}
			return len(blocks) == 2
		})
		if !ok {
			b.Fatalf("the router did not learn %s's blocks of %s within 10s", h.Name, name)
		}
		for _, p := range blocks {
			leased, ok := leases.when(name, p)
			if !ok {
				b.Fatalf("etcd reported no lease of %s's block %s of %s", h.Name, p, name)
			}
			announce = append(announce, seen.Sub(leased))
		}
		h.Docker(b, "rm", "-f", name)
		start := time.Now()
		h.Docker(b, "network", "rm", name)
		gone, ok := poll(func(have map[netip.Prefix][]netip.Addr) bool {
			return !slices.ContainsFunc(blocks, func(p netip.Prefix) bool { return len(have[p]) > 0 })
		})
		if !ok {
			b.Fatalf("the router kept %v after %s was removed", blocks, name)
		}
		withdraw = append(withdraw, gone.Sub(start))
	}
	b.ReportMetric(e2e.Median(announce), "lease-to-router-p50-ms")
	b.ReportMetric(e2e.Ms(slices.Max(announce)), "lease-to-router-max-ms")
	b.ReportMetric(e2e.Median(withdraw), "rm-to-withdrawn-p50-ms")
	b.ReportMetric(e2e.Ms(slices.Max(withdraw)), "rm-to-withdrawn-max-ms")
}

// leaseWatch follows the block keys in the bed's etcd (`etcdctl watch`
// in etcd's namespace) and records when each appeared.
type leaseWatch struct {
	mu     sync.Mutex
	leased map[string]time.Time // network/prefix
}

func watchLeases(b *testing.B) *leaseWatch {
	b.Helper()
	prefix := "/dualstack/v1/networks/"
	cmd := exec.Command("ip", "netns", "exec", harness.Bed.EtcdNS, "etcdctl", "--endpoints", harness.Bed.Endpoint(), "watch", "--prefix", prefix)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	w := &leaseWatch{leased: map[string]time.Time{}}
	go func() {
		// Events are PUT or DELETE, then the key, then the value.
		sc := bufio.NewScanner(out)
		put := false
		for sc.Scan() {
			line := sc.Text()
			if line == "PUT" {
				put = true
				continue
			}
			if put {
				put = false
				network, key, ok := strings.Cut(strings.TrimPrefix(line, prefix), "/blocks/")
				if p, err := cluster.ParseBlockKey(key); ok && err == nil {
					w.mu.Lock()
					w.leased[network+"/"+p.String()] = time.Now()
					w.mu.Unlock()
				}
			}
		}
	}()
	time.Sleep(500 * time.Millisecond) // the watch is set up
	return w
}

// when returns when block p of network was leased.
func (w *leaseWatch) when(network string, p netip.Prefix) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.leased[network+"/"+p.String()]
	return t, ok
}
