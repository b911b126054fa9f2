// Package clusterbench measures the cluster store: a block leased
// against a three-member etcd cluster.
package clusterbench

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/cluster/clustertest"
)

// BenchmarkLeaseBlock measures what a host waits for when its blocks are
// full: one block leased against a three-member etcd cluster that fsyncs
// each write, as in production. It reports the median and 99th
// percentile.
func BenchmarkLeaseBlock(b *testing.B) {
	endpoints := clustertest.EtcdCluster(b, 3)
	s, err := cluster.Open(cluster.Config{Endpoints: endpoints, Node: "bench", Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.2")}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	subnet := netip.MustParsePrefix("10.0.0.0/8")
	def := cluster.Definition{Mode: cluster.ModeBridge, Subnets: []netip.Prefix{subnet}, HostBlock4: 28, Routes: cluster.RoutesHostGW}
	ctx := context.Background()
	if _, err := s.Define(ctx, "bench", def); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := s.LeaseBlock(ctx, "bench", subnet, 28, nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
