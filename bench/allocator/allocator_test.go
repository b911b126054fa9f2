// Package allocatorbench measures the allocator of one pool: sequential
// allocation, churn, and the memory 1 M addresses cost.
package allocatorbench

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"

	"github.com/dualstack-net/dualstack/addrbook/allocator"
)

// maxMemory1M is the project's goal for the bytes held after 1 M sequential
// allocations in a /64. The speed goals (≥ 10 M sequential allocations/s,
// ≤ 1 µs per churn allocation) are measured by the benchmarks below and
// reported by `make bench`, not asserted in timed tests.
const maxMemory1M = 1 << 20

// newAllocator returns an allocator for the addresses first to last.
func newAllocator(tb testing.TB, first, last string) *allocator.Allocator {
	tb.Helper()
	f, l := netip.MustParseAddr(first), netip.MustParseAddr(last)
	a, err := allocator.New(f, l, f, l)
	if err != nil {
		tb.Fatalf("allocator for %s-%s: %v", first, last, err)
	}
	return a
}

// newV6Slash64 returns an allocator for 2001:db8::/64.
func newV6Slash64(tb testing.TB) *allocator.Allocator {
	return newAllocator(tb, "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff")
}

// reportRate reports the allocations per second of a benchmark that made one
// allocation per iteration.
func reportRate(b *testing.B) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(b.N)/s, "allocs/s")
	}
}

func BenchmarkNextSequentialV6(b *testing.B) {
	a := newV6Slash64(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Next(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
	if a.Runs() != 1 {
		b.Fatalf("%d runs after sequential allocation, want 1", a.Runs())
	}
}

func BenchmarkNextSequentialV4(b *testing.B) {
	a := newAllocator(b, "10.0.0.1", "10.255.255.254")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Next(); err != nil {
			if !errors.Is(err, allocator.ErrFull) {
				b.Fatal(err)
			}
			// 16 M addresses handed out: start over on a fresh /8.
			b.StopTimer()
			a = newAllocator(b, "10.0.0.1", "10.255.255.254")
			b.StartTimer()
		}
	}
	reportRate(b)
}

// churn fills a /64 with live addresses, then releases a random live one and
// calls Next, n times. Released addresses are not reused before wrap-around,
// so the runs fragment as the cursor moves on.
type churn struct {
	a    *allocator.Allocator
	live []netip.Addr
	rng  *rand.Rand
}

func newChurn(tb testing.TB, live int) *churn {
	c := &churn{a: newV6Slash64(tb), live: make([]netip.Addr, live), rng: rand.New(rand.NewPCG(1, 2))}
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
	if !c.a.Release(c.live[i]) {
		return errors.New("live address was not allocated")
	}
	x, err := c.a.Next()
	c.live[i] = x
	return err
}

func BenchmarkChurn10k(b *testing.B) {
	c := newChurn(b, 10_000)
	// Fragment the runs before measuring.
	for range 100_000 {
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
	b.ReportMetric(float64(c.a.Runs()), "runs")
}

// heapAfter1M returns the live heap that 1 M sequential allocations in a /64
// cost, measured after garbage collection.
func heapAfter1M(tb testing.TB) int64 {
	var before, after runtime.MemStats
	settle()
	runtime.ReadMemStats(&before)
	a := newV6Slash64(tb)
	for range 1_000_000 {
		if _, err := a.Next(); err != nil {
			tb.Fatal(err)
		}
	}
	settle()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(a)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// settle collects garbage twice: objects in sync.Pool caches survive the
// first collection.
func settle() {
	runtime.GC()
	runtime.GC()
}

func BenchmarkMemory1M(b *testing.B) {
	var bytes int64
	for b.Loop() {
		bytes = heapAfter1M(b)
	}
	b.ReportMetric(float64(bytes), "B/1M-allocs")
}

func TestMemory1MSequential(t *testing.T) {
	bytes := heapAfter1M(t)
	t.Logf("heap after 1 M sequential allocations in a /64: %d bytes", bytes)
	if bytes > maxMemory1M {
		t.Fatalf("1 M sequential allocations hold %d bytes, more than the %d allowed", bytes, maxMemory1M)
	}
}
