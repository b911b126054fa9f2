// Package ipamcompare measures dualstack's address allocator against Docker's
// own default IPAM in the same run, on the project's three benchmarks:
// sequential allocation in a /64, memory after 1 M sequential allocations in
// a /64, and churn with 10 k live addresses.
//
// Docker is measured twice: through its default IPAM driver
// (defaultipam.Allocator.RequestAddress with the serial option, the path the
// daemon takes, which includes pool-ID parsing and net.IP conversions) and
// through the bitmap.Bitmap underneath it (its data structure alone).
//
//	go test -run x -bench . -benchmem
//	go test -run TestRatios -v
package ipamcompare

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/moby/moby/v2/daemon/libnetwork/bitmap"
	"github.com/moby/moby/v2/daemon/libnetwork/ipamapi"
	"github.com/moby/moby/v2/daemon/libnetwork/ipams/defaultipam"
	"github.com/moby/moby/v2/daemon/libnetwork/ipamutils"

	"github.com/dualstack-net/dualstack/addrbook/allocator"
)

// pool64 is the /64 every benchmark allocates from.
var pool64 = netip.MustParsePrefix("2001:db8::/64")

// seqAllocator is what the benchmarks need of an allocator: sequential
// allocation and release.
type seqAllocator interface {
	Next() (netip.Addr, error)
	Release(netip.Addr) error
}

// impl is an allocator under comparison.
type impl struct {
	name string
	new  func(testing.TB) seqAllocator
}

var impls = []impl{
	{"dualstack", newOurs},
	{"docker-ipam", newDockerIPAM},
	{"docker-bitmap", newDockerBitmap},
}

// ours is dualstack's allocator for the /64, bounds as the driver sets them
// (the subnet-router anycast address excluded).
type ours struct{ a *allocator.Allocator }

func newOurs(tb testing.TB) seqAllocator {
	first := pool64.Addr().Next()
	last := lastAddr(pool64)
	a, err := allocator.New(first, last, first, last)
	if err != nil {
		tb.Fatal(err)
	}
	return ours{a}
}

func (o ours) Next() (netip.Addr, error) { return o.a.Next() }

func (o ours) Release(x netip.Addr) error {
	if !o.a.Release(x) {
		return fmt.Errorf("%s was not allocated", x)
	}
	return nil
}

// dockerIPAM is Docker's default IPAM driver with a /64 pool, asked for
// addresses serially as the daemon does for its networks.
type dockerIPAM struct {
	a      *defaultipam.Allocator
	poolID string
	opts   map[string]string
}

func newDockerIPAM(tb testing.TB) seqAllocator {
	a, err := defaultipam.NewAllocator(ipamutils.GetLocalScopeDefaultNetworks(), ipamutils.GetGlobalScopeDefaultNetworks())
	if err != nil {
		tb.Fatal(err)
	}
	local, _, err := a.GetDefaultAddressSpaces()
	if err != nil {
		tb.Fatal(err)
	}
	p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: pool64.String(), V6: true})
	if err != nil {
		tb.Fatal(err)
	}
	return &dockerIPAM{a: a, poolID: p.PoolID, opts: map[string]string{ipamapi.AllocSerialPrefix: "true"}}
}

func (d *dockerIPAM) Next() (netip.Addr, error) {
	n, _, err := d.a.RequestAddress(d.poolID, nil, d.opts)
	if err != nil {
		return netip.Addr{}, err
	}
	x, _ := netip.AddrFromSlice(n.IP)
	return x, nil
}

func (d *dockerIPAM) Release(x netip.Addr) error {
	return d.a.ReleaseAddress(d.poolID, net.IP(x.AsSlice()))
}

// dockerBitmap is the run-length encoded bitmap under Docker's IPAM, alone.
// Docker's address set covers a /64 with two bitmaps of 1<<63 bits and
// allocates from the first; so does this one. Ordinal 0 (the subnet-router
// anycast address) is reserved as Docker does.
type dockerBitmap struct{ b *bitmap.Bitmap }

func newDockerBitmap(tb testing.TB) seqAllocator {
	b := bitmap.New(1 << 63)
	if err := b.Set(0); err != nil {
		tb.Fatal(err)
	}
	return dockerBitmap{b}
}

func (d dockerBitmap) Next() (netip.Addr, error) {
	n, err := d.b.SetAny(true)
	if err != nil {
		return netip.Addr{}, err
	}
	b := pool64.Addr().As16()
	binary.BigEndian.PutUint64(b[8:], n)
	return netip.AddrFrom16(b), nil
}

func (d dockerBitmap) Release(x netip.Addr) error {
	b := x.As16()
	return d.b.Unset(binary.BigEndian.Uint64(b[8:]))
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	for i := p.Bits(); i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom16(b)
}

// reportRate reports the allocations per second of a benchmark that made one
// allocation per iteration.
func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "allocs/s")
	}
}

func BenchmarkNextSequentialV6(b *testing.B) {
	for _, im := range impls {
		b.Run(im.name, func(b *testing.B) {
			a := im.new(b)
			want := pool64.Addr().Next()
			b.ReportAllocs()
			for b.Loop() {
				got, err := a.Next()
				if err != nil {
					b.Fatal(err)
				}
				if got != want {
					b.Fatalf("Next = %s, want %s", got, want)
				}
				want = want.Next()
			}
			reportRate(b)
		})
	}
}

// churn keeps live addresses in a /64, and at each step releases a random
// one and allocates the next.
type churn struct {
	a    seqAllocator
	live []netip.Addr
	rng  *rand.Rand
}

func newChurn(tb testing.TB, im impl, live int) *churn {
	c := &churn{a: im.new(tb), live: make([]netip.Addr, live), rng: rand.New(rand.NewPCG(1, 2))}
	for i := range c.live {
		x, err := c.a.Next()
		if err != nil {
			tb.Fatal(err)
		}
		c.live[i] = x
	}
	return c
}

func (c *churn) step() error {
	i := c.rng.IntN(len(c.live))
	if err := c.a.Release(c.live[i]); err != nil {
		return err
	}
	x, err := c.a.Next()
	c.live[i] = x
	return err
}

func BenchmarkChurn10k(b *testing.B) {
	for _, im := range impls {
		b.Run(im.name, func(b *testing.B) {
			c := newChurn(b, im, 10_000)
			for range 20_000 { // fragment before measuring
				if err := c.step(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := c.step(); err != nil {
					b.Fatal(err)
				}
			}
			reportRate(b)
		})
	}
}

// heapAfter1M returns the live heap that 1 M sequential allocations in a /64
// cost, measured after garbage collection.
func heapAfter1M(tb testing.TB, im impl) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	a := im.new(tb)
	for range 1_000_000 {
		if _, err := a.Next(); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(a)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

func BenchmarkMemory1M(b *testing.B) {
	for _, im := range impls {
		b.Run(im.name, func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				bytes = heapAfter1M(b, im)
			}
			b.ReportMetric(float64(bytes), "B/1M-allocs")
		})
	}
}

// TestRatios runs every benchmark in one process and prints Docker's figures
// as multiples of dualstack's.
func TestRatios(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmarks take a while")
	}
	type row struct {
		name string
		ns   map[string]float64
		unit string
	}
	rows := []row{
		{name: "sequential /64", unit: "ns/op"},
		{name: "churn 10k", unit: "ns/op"},
		{name: "memory 1M /64", unit: "bytes"},
	}
	for i := range rows {
		rows[i].ns = map[string]float64{}
	}
	for _, im := range impls {
		seq := testing.Benchmark(func(b *testing.B) {
			a := im.new(b)
			for b.Loop() {
				if _, err := a.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
		rows[0].ns[im.name] = float64(seq.T.Nanoseconds()) / float64(seq.N)
		ch := testing.Benchmark(func(b *testing.B) {
			c := newChurn(b, im, 10_000)
			for range 20_000 {
				if err := c.step(); err != nil {
					b.Fatal(err)
				}
			}
			for b.Loop() {
				if err := c.step(); err != nil {
					b.Fatal(err)
				}
			}
		})
		rows[1].ns[im.name] = float64(ch.T.Nanoseconds()) / float64(ch.N)
		rows[2].ns[im.name] = float64(heapAfter1M(t, im))
	}
	for _, r := range rows {
		base := r.ns["dualstack"]
		line := fmt.Sprintf("%-15s dualstack %10.1f %s", r.name, base, r.unit)
		for _, im := range impls[1:] {
			v := r.ns[im.name]
			ratio := "n/a"
			if base > 0 {
				ratio = fmt.Sprintf("%.1fx", v/base)
			}
			line += fmt.Sprintf(" | %s %10.1f (%s)", im.name, v, ratio)
		}
		t.Log(line)
	}
}
