//go:build integration

package integration

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// BenchmarkBGPAnnounce measures, on the routed bed, how long a host's new
// blocks take to reach the router (acceptance 1: within 1 s of the lease):
// from the start of the `docker run -d` of the first container on a
// cluster network with cluster_routes=bgp (for which the host leases its
// IPv4 and IPv6 blocks) until `birdc show route` at the router lists both
// with the host's next hops: an upper bound of lease to router, which
// includes the container's start; and from the start of `docker network
// rm` until both are gone. It reports the median and the slowest of each.
func BenchmarkBGPAnnounce(b *testing.B) {
	if bed == nil || !bed.routed {
		b.Skip("runs on the routed test bed: DUALSTACK_CLUSTER=bgp")
	}
	waitSessions(b)
	h := bed.hosts[0]
	var announce, withdraw []time.Duration
	poll := func(done func(map[netip.Prefix][]netip.Addr) bool) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if done(bed.routerRoutes(b)) {
				return true
			}
		}
		return false
	}
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("bench-bgp-%d", i)
		h.docker(b, "network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName, "-o", "cluster="+name, "-o", "cluster_routes=bgp",
			"--subnet", "198.19.128.0/20", "--ipv6", "--subnet", "fd00:be::/48", name)
		start := time.Now()
		h.docker(b, "run", "-d", "--label", testLabel, "--name", name, "--network", name, image, "sleep", "3600")
		var blocks []netip.Prefix
		ok := poll(func(have map[netip.Prefix][]netip.Addr) bool {
			blocks = blocks[:0]
			for p, via := range have {
				if slices.Contains(via, h.addr4) && netip.MustParsePrefix("198.19.128.0/20").Contains(p.Addr()) ||
					slices.Contains(via, h.addr6) && netip.MustParsePrefix("fd00:be::/48").Contains(p.Addr()) {
					blocks = append(blocks, p)
				}
			}
			return len(blocks) == 2
		})
		if !ok {
			b.Fatalf("the router did not learn %s's blocks of %s within 10s", h.name, name)
		}
		announce = append(announce, time.Since(start))
		h.docker(b, "rm", "-f", name)
		start = time.Now()
		h.docker(b, "network", "rm", name)
		if !poll(func(have map[netip.Prefix][]netip.Addr) bool {
			return !slices.ContainsFunc(blocks, func(p netip.Prefix) bool { return len(have[p]) > 0 })
		}) {
			b.Fatalf("the router kept %v after %s was removed", blocks, name)
		}
		withdraw = append(withdraw, time.Since(start))
	}
	b.ReportMetric(median(announce), "announce-p50-ms")
	b.ReportMetric(ms(slices.Max(announce)), "announce-max-ms")
	b.ReportMetric(median(withdraw), "withdraw-p50-ms")
	b.ReportMetric(ms(slices.Max(withdraw)), "withdraw-max-ms")
}
