//go:build integration

package cluster

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/bench/e2e"
	"github.com/dualstack-net/dualstack/integration/harness"
)

// BenchmarkClusterRuns measures `docker run -d` of 100 containers at once
// per host: on one host on a dualstack network of that host alone and on
// Docker's bridge, then on all three hosts of the bed at once, on one
// cluster network, on a dualstack network of each host's own and on
// Docker's bridge. It reports the wall time per container of each. The
// three hosts share the machine's CPUs: three engines at once cost more
// per container than one whatever the network, which the runs on three
// hosts without a cluster network show; against them, the cluster's own
// cost.
func BenchmarkClusterRuns(b *testing.B) {
	const n = 100
	burst := func(hosts []*harness.ClusterHost, network string) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for _, h := range hosts {
			for i := 0; i < n; i++ {
				c := fmt.Sprintf("%s-%s-%d", network, h.Name, i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if out, err := h.DockerCmd("run", "-d", "--label", harness.TestLabel, "--name", c, "--network", network, harness.Image, "sleep", "3600"); err != nil {
						b.Errorf("%s: %s: %v: %s", h.Name, c, err, out)
					}
				}()
			}
		}
		wg.Wait()
		took := time.Since(start)
		// Removal is not measured.
		for _, h := range hosts {
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(c string) { defer wg.Done(); _, _ = h.DockerCmd("rm", "-f", c) }(fmt.Sprintf("%s-%s-%d", network, h.Name, i))
			}
		}
		wg.Wait()
		for _, h := range hosts {
			_, _ = h.DockerCmd("network", "rm", network)
		}
		return took
	}
	create := func(hosts []*harness.ClusterHost, network string, args ...string) {
		for _, h := range hosts {
			h.Docker(b, append(append([]string{"network", "create", "--label", harness.TestLabel}, args...), network)...)
		}
	}
	all := n * len(harness.Bed.Hosts)
	// Per container, in ms, by series; each round adds one of each, and
	// the medians are reported (a burst is one sample, and moves).
	series := map[string][]time.Duration{}
	add := func(name string, d time.Duration, containers int) {
		series[name] = append(series[name], d/time.Duration(containers))
	}
	rounds := 3 // per iteration: the bench runs one (-benchtime 1x)
	for i := 0; i < b.N*rounds; i++ {
		create(harness.Bed.Hosts[:1], "bench-dbr", "--subnet", "198.19.64.0/24")
		add("docker-bridge-one-host-ms", burst(harness.Bed.Hosts[:1], "bench-dbr"), n)
		create(harness.Bed.Hosts[:1], "bench-one", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--subnet", "198.19.65.0/24")
		add("dualstack-one-host-ms", burst(harness.Bed.Hosts[:1], "bench-one"), n)
		create(harness.Bed.Hosts, "bench-cl", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "cluster=bench-cl", "--subnet", "198.19.128.0/17")
		add("dualstack-cluster-ms", burst(harness.Bed.Hosts, "bench-cl"), all)
		create(harness.Bed.Hosts, "bench-loc", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--subnet", "198.19.66.0/24")
		add("dualstack-three-hosts-ms", burst(harness.Bed.Hosts, "bench-loc"), all)
		create(harness.Bed.Hosts, "bench-dbr3", "--subnet", "198.19.67.0/24")
		add("docker-bridge-three-hosts-ms", burst(harness.Bed.Hosts, "bench-dbr3"), all)
	}
	for name, lat := range series {
		var each []string
		for _, d := range lat {
			each = append(each, fmt.Sprintf("%.1f", e2e.Ms(d)))
		}
		b.Logf("%s per container, each round: %s", name, strings.Join(each, " "))
		b.ReportMetric(e2e.Median(lat), name)
	}
}
