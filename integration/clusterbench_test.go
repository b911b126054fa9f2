//go:build integration

package integration

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkClusterRuns measures `docker run -d` of 100 containers at once
// per host: on one host on a dualstack network of that host alone and on
// Docker's bridge, then on all three hosts of the bed at once on one
// cluster network. It reports the wall time per container of each; the
// three hosts share the machine's CPUs, so per container the cluster costs
// what one host does when the cluster's work costs nothing more.
func BenchmarkClusterRuns(b *testing.B) {
	if bed == nil {
		b.Skip("runs on the cluster test bed: DUALSTACK_CLUSTER=1")
	}
	const n = 100
	h1 := bed.hosts[0]
	burst := func(hosts []*clusterHost, network string) time.Duration {
		var wg sync.WaitGroup
		start := time.Now()
		for _, h := range hosts {
			for i := 0; i < n; i++ {
				c := fmt.Sprintf("%s-%s-%d", network, h.name, i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if out, err := h.dockerCmd("run", "-d", "--label", testLabel, "--name", c, "--network", network, image, "sleep", "3600"); err != nil {
						b.Errorf("%s: %s: %v: %s", h.name, c, err, out)
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
				go func(c string) { defer wg.Done(); _, _ = h.dockerCmd("rm", "-f", c) }(fmt.Sprintf("%s-%s-%d", network, h.name, i))
			}
		}
		wg.Wait()
		for _, h := range hosts {
			_, _ = h.dockerCmd("network", "rm", network)
		}
		return took
	}
	create := func(hosts []*clusterHost, network string, args ...string) {
		for _, h := range hosts {
			h.docker(b, append(append([]string{"network", "create", "--label", testLabel}, args...), network)...)
		}
	}
	perContainer := func(d time.Duration, containers int) float64 { return ms(d) / float64(containers) }
	for i := 0; i < b.N; i++ {
		create(bed.hosts[:1], "bench-dbr", "--subnet", "198.19.64.0/24")
		docker := burst(bed.hosts[:1], "bench-dbr")
		create(bed.hosts[:1], "bench-one", "-d", pluginName, "--ipam-driver", pluginName, "--subnet", "198.19.65.0/24")
		single := burst(bed.hosts[:1], "bench-one")
		create(bed.hosts, "bench-cl", "-d", pluginName, "--ipam-driver", pluginName, "-o", "cluster=bench-cl", "--subnet", "198.19.128.0/17")
		clustered := burst(bed.hosts, "bench-cl")
		b.ReportMetric(perContainer(docker, n), "docker-bridge-one-host-ms")
		b.ReportMetric(perContainer(single, n), "dualstack-one-host-ms")
		b.ReportMetric(perContainer(clustered, n*len(bed.hosts)), "dualstack-cluster-ms")
		b.Logf("%d containers at once on %s: %.0f ms (Docker's bridge), %.0f ms (dualstack); %d on %d hosts at once on a cluster network: %.0f ms", n, h1.name, ms(docker), ms(single), n*len(bed.hosts), len(bed.hosts), ms(clustered))
	}
}
