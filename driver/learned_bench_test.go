package driver

import (
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLearnedUpdate measures one BGP update (a learned route
// withdrawn, or learned again) with 10,000 learned routes installed, from
// the driver to the kernel of a throwaway namespace: ns/op is the wall
// time, cpu-µs/op the process's CPU (user and system) per update, the
// figure issue 21 bounds at 1 ms.
func BenchmarkLearnedUpdate(b *testing.B) {
	const n = 10000
	h := newHarness(b)
	h.lanBridge("uplink")
	h.host.IP(b, "addr", "add", "198.51.100.18/28", "dev", "uplink")
	h.d.mu.Lock()
	h.d.networks["cccccccccccc8888"] = &network{ID: "cccccccccccc8888", Options: netOptions{Mode: ModeBridge, Cluster: "bgp-net", ClusterRoutes: clusterRoutesBGP},
		V4: []pool{{Prefix: netip.MustParsePrefix("198.19.0.0/16")}}}
	h.d.publishRoutes()
	h.d.mu.Unlock()
	router := netip.MustParseAddr("198.51.100.17")
	all := make(map[netip.Prefix]netip.Addr, n)
	a := netip.MustParseAddr("198.19.0.0")
	for range n {
		all[netip.PrefixFrom(a, 32)] = router
		a = a.Next()
	}
	h.in(func() error { return h.d.routes.Learned(all, nil) })
	if got := len(h.d.routes.Installed(0xd6)); got != n {
		b.Fatalf("%d learned routes installed, want %d", got, n)
	}
	one := netip.MustParsePrefix("198.19.0.7/32")
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			h.in(func() error { return h.d.routes.Learned(nil, []netip.Prefix{one}) })
		} else {
			h.in(func() error { return h.d.routes.Learned(map[netip.Prefix]netip.Addr{one: router}, nil) })
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the CPU time the process used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
