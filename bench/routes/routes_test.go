// Package routesbench measures the routes BGP learned: one update with
// 10,000 learned routes installed, from the route keeper to the kernel of
// a throwaway namespace.
package routesbench

import (
	"io"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/routes"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// BenchmarkLearnedUpdate measures one BGP update (a learned route
// withdrawn, or learned again) with 10,000 learned routes installed, as
// the network driver's keeper makes it: ns/op is the wall time, cpu-µs/op
// the process's CPU (user and system) per update, the figure issue 21
// bounds at 1 ms.
func BenchmarkLearnedUpdate(b *testing.B) {
	const n = 10000
	host := netnstest.New(b)
	host.IP(b, "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer")
	host.IP(b, "link", "set", "uplink-peer", "up")
	host.IP(b, "link", "set", "uplink", "up")
	host.IP(b, "addr", "add", "198.51.100.18/28", "dev", "uplink")
	in := func(fn func() error) {
		b.Helper()
		if err := netns.Do(host.Path, fn); err != nil {
			b.Fatal(err)
		}
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	// As the network driver makes it (in the host's namespace): Docker's
	// bridges read at each check.
	var k *routes.Keeper
	in(func() error {
		k = routes.NewKeeper(routes.KeeperOptions{Log: log, HostNets: kernel.ContainerBridgeNets})
		k.SetNetworks([]routes.Network{{Cluster: "bgp-net", BGP: true, Local: true,
			Subnets: []routes.Subnet{{Prefix: netip.MustParsePrefix("198.19.0.0/16")}}}})
		return nil
	})
	router := netip.MustParseAddr("198.51.100.17")
	all := make(map[netip.Prefix]netip.Addr, n)
	a := netip.MustParseAddr("198.19.0.0")
	for range n {
		all[netip.PrefixFrom(a, 32)] = router
		a = a.Next()
	}
	in(func() error { return k.Learned(all, nil) })
	if got := len(k.Installed(routes.Learned)); got != n {
		b.Fatalf("%d learned routes installed, want %d", got, n)
	}
	one := netip.MustParsePrefix("198.19.0.7/32")
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			in(func() error { return k.Learned(nil, []netip.Prefix{one}) })
		} else {
			in(func() error { return k.Learned(map[netip.Prefix]netip.Addr{one: router}, nil) })
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
