package allocator

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// pool describes the bounds and window of an allocator under test.
type pool struct {
	name                           string
	first, last, winFirst, winLast string
}

func (p pool) new(t testing.TB) *Allocator {
	t.Helper()
	a, err := New(addr(t, p.first), addr(t, p.last), addr(t, p.winFirst), addr(t, p.winLast))
	if err != nil {
		t.Fatalf("New(%s): %v", p.name, err)
	}
	return a
}

func addr(t testing.TB, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return a
}

// add returns a+n, stepping with netip's own Next so that the test does not
// rely on the allocator's arithmetic.
func add(a netip.Addr, n int) netip.Addr {
	for ; n > 0; n-- {
		a = a.Next()
	}
	for ; n < 0; n++ {
		a = a.Prev()
	}
	return a
}

func mustNext(t *testing.T, a *Allocator) netip.Addr {
	t.Helper()
	got, err := a.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return got
}

// runsOf collects the runs of a with Walk and checks them against Runs and
// against the invariants: ascending, disjoint, maximal (never touching).
func runsOf(t *testing.T, a *Allocator) [][2]netip.Addr {
	t.Helper()
	var runs [][2]netip.Addr
	a.Walk(func(first, last netip.Addr) bool {
		if last.Less(first) {
			t.Fatalf("run %s-%s is reversed", first, last)
		}
		if n := len(runs); n > 0 {
			prev := runs[n-1][1]
			if !prev.Less(first) || prev.Next() == first {
				t.Fatalf("run %s-%s overlaps or touches the run ending at %s", first, last, prev)
			}
		}
		runs = append(runs, [2]netip.Addr{first, last})
		return true
	})
	if a.Runs() != len(runs) {
		t.Fatalf("Runs() = %d, Walk saw %d", a.Runs(), len(runs))
	}
	return runs
}

// pools are the pools every table-driven test runs on.
var pools = []pool{
	{"v4 /24", "192.0.2.1", "192.0.2.254", "192.0.2.1", "192.0.2.254"},
	{"v4 /24 window .128/26", "192.0.2.1", "192.0.2.254", "192.0.2.128", "192.0.2.191"},
	{"v6 /64", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff"},
	{"v6 /64 window /112", "2001:db8::1", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8::42:0", "2001:db8::42:ffff"},
	{"v6 /48", "2001:db8:1::1", "2001:db8:1:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::1", "2001:db8:1:ffff:ffff:ffff:ffff:ffff"},
	// The window crosses the boundary between the two 64-bit halves.
	{"v6 /48 window across 64-bit boundary", "2001:db8:1::1", "2001:db8:1:ffff:ffff:ffff:ffff:ffff", "2001:db8:1:0:ffff:ffff:ffff:ff00", "2001:db8:1:1::ff"},
}

func TestNew(t *testing.T) {
	v4, v6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	tests := []struct {
		name                           string
		first, last, winFirst, winLast netip.Addr
		ok                             bool
	}{
		{"v4 whole", v4, add(v4, 9), v4, add(v4, 9), true},
		{"v4 single address", v4, v4, v4, v4, true},
		{"v6 sub-window", v6, add(v6, 9), add(v6, 2), add(v6, 5), true},
		{"invalid address", netip.Addr{}, v4, v4, v4, false},
		{"mixed families v6 window", v4, add(v4, 9), v6, v6, false},
		{"v4-mapped window in v4 bounds", v4, add(v4, 9), netip.AddrFrom16(v4.As16()), add(v4, 9), false},
		{"first after last", add(v4, 9), v4, add(v4, 9), v4, false},
		{"window reversed", v4, add(v4, 9), add(v4, 5), add(v4, 2), false},
		{"window below bounds", v4, add(v4, 9), add(v4, -1), add(v4, 9), false},
		{"window above bounds", v4, add(v4, 9), v4, add(v4, 10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := New(tt.first, tt.last, tt.winFirst, tt.winLast)
			if tt.ok != (err == nil) || tt.ok != (a != nil) {
				t.Fatalf("New(%s, %s, %s, %s) = %v, %v; want ok=%v", tt.first, tt.last, tt.winFirst, tt.winLast, a, err, tt.ok)
			}
		})
	}
}

func TestNextSequential(t *testing.T) {
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			if _, ok := a.Cursor(); ok {
				t.Fatal("new allocator has a cursor")
			}
			want := addr(t, p.winFirst)
			n := 300 // or the whole window when it is smaller
			for i := 0; i < n; i++ {
				got := mustNext(t, a)
				if got != want {
					t.Fatalf("Next #%d = %s, want %s", i, got, want)
				}
				if !a.Allocated(got) {
					t.Fatalf("%s not allocated after Next", got)
				}
				if c, ok := a.Cursor(); !ok || c != got {
					t.Fatalf("Cursor() = %s, %v; want %s", c, ok, got)
				}
				if got == addr(t, p.winLast) {
					n = i + 1
					if _, err := a.Next(); !errors.Is(err, ErrFull) {
						t.Fatalf("Next after the whole window: err = %v, want ErrFull", err)
					}
					break
				}
				want = want.Next()
			}
			runs := runsOf(t, a)
			if len(runs) != 1 || runs[0][0] != addr(t, p.winFirst) || runs[0][1] != add(addr(t, p.winFirst), n-1) {
				t.Fatalf("runs after %d sequential allocations = %v, want one run from %s", n, runs, p.winFirst)
			}
		})
	}
}

func TestNoReuseBeforeWrap(t *testing.T) {
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			var got []netip.Addr
			for i := 0; i < 10; i++ {
				got = append(got, mustNext(t, a))
			}
			for _, i := range []int{0, 4, 9} { // first, middle, and the cursor itself
				if !a.Release(got[i]) {
					t.Fatalf("Release(%s) = false, want true", got[i])
				}
			}
			if n := len(runsOf(t, a)); n != 2 {
				t.Fatalf("%d runs after releasing the first, a middle and the last address, want 2", n)
			}
			for i := 10; i < 20; i++ {
				want := add(addr(t, p.winFirst), i)
				if g := mustNext(t, a); g != want {
					t.Fatalf("Next after releases = %s, want %s (no reuse before wrap-around)", g, want)
				}
			}
		})
	}
}

func TestWrapAround(t *testing.T) {
	// Small windows of 8 addresses, so that the end is reached.
	windows := []pool{
		{"v4", "10.0.0.1", "10.0.0.254", "10.0.0.9", "10.0.0.16"},
		{"v6 across 64-bit boundary", "2001:db8::1", "2001:db8:0:1::ffff", "2001:db8::ffff:ffff:ffff:fffc", "2001:db8:0:1::3"},
	}
	for _, p := range windows {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			wf := addr(t, p.winFirst)
			for i := 0; i < 8; i++ {
				if g := mustNext(t, a); g != add(wf, i) {
					t.Fatalf("Next #%d = %s, want %s", i, g, add(wf, i))
				}
			}
			if _, err := a.Next(); !errors.Is(err, ErrFull) {
				t.Fatalf("Next on a full window: err = %v, want ErrFull", err)
			}
			// Free 6, then 2 and 4: the wrap-around picks the lowest freed
			// address first, whatever the release order.
			for _, i := range []int{6, 2, 4} {
				a.Release(add(wf, i))
			}
			for _, i := range []int{2, 4, 6} {
				if g := mustNext(t, a); g != add(wf, i) {
					t.Fatalf("Next after wrap = %s, want %s", g, add(wf, i))
				}
			}
			if _, err := a.Next(); !errors.Is(err, ErrFull) {
				t.Fatalf("Next on a full window: err = %v, want ErrFull", err)
			}

			// Wrap-around with free addresses at the end: the end comes first.
			a = p.new(t)
			for i := 0; i < 5; i++ {
				mustNext(t, a)
			}
			a.Release(add(wf, 1))
			for _, i := range []int{5, 6, 7, 1} {
				if g := mustNext(t, a); g != add(wf, i) {
					t.Fatalf("Next = %s, want %s", g, add(wf, i))
				}
			}
			// The cursor is now wf+1 and the window is full; releasing the
			// cursor makes it the only candidate, found after a full turn.
			a.Release(add(wf, 1))
			if g := mustNext(t, a); g != add(wf, 1) {
				t.Fatalf("Next with only the cursor free = %s, want %s", g, add(wf, 1))
			}
			if n := len(runsOf(t, a)); n != 1 {
				t.Fatalf("%d runs in a full window, want 1", n)
			}
		})
	}
}

func TestNextSkipsReserved(t *testing.T) {
	p := pools[0]
	a := p.new(t)
	gw := addr(t, "192.0.2.1")
	if err := a.Reserve(gw); err != nil {
		t.Fatalf("Reserve gateway: %v", err)
	}
	for _, s := range []string{"192.0.2.5", "192.0.2.6", "192.0.2.9"} {
		if err := a.Reserve(addr(t, s)); err != nil {
			t.Fatalf("Reserve(%s): %v", s, err)
		}
	}
	if c, ok := a.Cursor(); ok {
		t.Fatalf("Reserve moved the cursor to %s", c)
	}
	for _, s := range []string{"192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.7", "192.0.2.8", "192.0.2.10"} {
		if g := mustNext(t, a); g != addr(t, s) {
			t.Fatalf("Next = %s, want %s", g, s)
		}
	}
	if runs := runsOf(t, a); len(runs) != 1 || runs[0][0] != gw || runs[0][1] != addr(t, "192.0.2.10") {
		t.Fatalf("runs = %v, want one run 192.0.2.1-192.0.2.10", runs)
	}
}

func TestFull(t *testing.T) {
	// A /30: two usable addresses.
	tests := []pool{
		{"v4 /30", "192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.2"},
		{"v6 /127-like", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::"},
	}
	for _, p := range tests {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			for _, s := range []string{p.first, p.last} {
				if g := mustNext(t, a); g != addr(t, s) {
					t.Fatalf("Next = %s, want %s", g, s)
				}
			}
			for i := 0; i < 2; i++ { // also after a failed wrap-around
				if g, err := a.Next(); !errors.Is(err, ErrFull) || g.IsValid() {
					t.Fatalf("Next on a full range = %s, %v; want ErrFull", g, err)
				}
			}
			if _, err := a.FirstFree(); !errors.Is(err, ErrFull) {
				t.Fatalf("FirstFree on a full range: err = %v, want ErrFull", err)
			}
			if c, _ := a.Cursor(); c != addr(t, p.last) {
				t.Fatalf("failed Next moved the cursor to %s", c)
			}
		})
	}
}

func TestReserve(t *testing.T) {
	p := pools[1] // window .128-.191 of .1-.254
	tests := []struct {
		addr netip.Addr
		want error
	}{
		{netip.MustParseAddr("192.0.2.1"), nil},   // first of the bounds, below the window
		{netip.MustParseAddr("192.0.2.254"), nil}, // last of the bounds, above the window
		{netip.MustParseAddr("192.0.2.128"), nil}, // in the window
		{netip.MustParseAddr("192.0.2.0"), ErrOutOfRange},
		{netip.MustParseAddr("192.0.2.255"), ErrOutOfRange},
		{netip.MustParseAddr("192.0.3.1"), ErrOutOfRange},
		{netip.MustParseAddr("::ffff:192.0.2.7"), ErrOutOfRange}, // other family
		{netip.MustParseAddr("2001:db8::7"), ErrOutOfRange},
		{netip.Addr{}, ErrOutOfRange},
	}
	a := p.new(t)
	for _, tt := range tests {
		err := a.Reserve(tt.addr)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("Reserve(%s) = %v, want %v", tt.addr, err, tt.want)
		}
		if got := a.Allocated(tt.addr); got != (tt.want == nil) {
			t.Errorf("Allocated(%s) = %v after Reserve", tt.addr, got)
		}
		if tt.want == nil {
			if err := a.Reserve(tt.addr); !errors.Is(err, ErrInUse) {
				t.Errorf("second Reserve(%s) = %v, want ErrInUse", tt.addr, err)
			}
		}
	}
	// Addresses reserved outside the window are never handed out by Next,
	// and the one in the window is skipped.
	for i := 0; i < 64; i++ {
		g, err := a.Next()
		if i == 63 {
			if !errors.Is(err, ErrFull) {
				t.Fatalf("Next #%d = %s, %v; want ErrFull", i, g, err)
			}
			break
		}
		if want := add(addr(t, "192.0.2.129"), i); err != nil || g != want {
			t.Fatalf("Next #%d = %s, %v; want %s", i, g, err, want)
		}
	}
	if n := len(runsOf(t, a)); n != 3 {
		t.Fatalf("%d runs, want 3 (.1, .128-.191, .254)", n)
	}
}

func TestRelease(t *testing.T) {
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			x := mustNext(t, a)
			y := mustNext(t, a)
			tests := []struct {
				addr netip.Addr
				want bool
			}{
				{x, true},
				{x, false}, // idempotent
				{y.Next(), false},
				{add(addr(t, p.first), -1), false},
				{add(addr(t, p.last), 1), false},
				{netip.Addr{}, false},
				{netip.MustParseAddr("::ffff:192.0.2.9"), false},
				{y, true},
				{y, false},
			}
			for _, tt := range tests {
				if got := a.Release(tt.addr); got != tt.want {
					t.Errorf("Release(%s) = %v, want %v", tt.addr, got, tt.want)
				}
				if a.Allocated(tt.addr) {
					t.Errorf("%s still allocated after Release", tt.addr)
				}
			}
			if a.Runs() != 0 {
				t.Fatalf("Runs() = %d after releasing everything", a.Runs())
			}
			if c, _ := a.Cursor(); c != y {
				t.Fatalf("Release moved the cursor to %s, want %s", c, y)
			}
		})
	}
}

func TestSplitAndMerge(t *testing.T) {
	a := pools[0].new(t)
	for i := 0; i < 10; i++ {
		mustNext(t, a) // .1-.10
	}
	steps := []struct {
		release bool
		addr    string
		runs    int
	}{
		{true, "192.0.2.5", 2},  // split
		{true, "192.0.2.1", 2},  // shrink the first run from below
		{true, "192.0.2.10", 2}, // shrink the last run from above
		{true, "192.0.2.7", 3},  // split again
		{false, "192.0.2.5", 2}, // merge .2-.4 and .6
		{false, "192.0.2.7", 1}, // merge everything
		{false, "192.0.2.1", 1}, // extend downwards
		{false, "192.0.2.12", 2},
		{false, "192.0.2.10", 2}, // extend upwards
		{false, "192.0.2.11", 1}, // fill the gap
	}
	for _, s := range steps {
		x := addr(t, s.addr)
		if s.release {
			if !a.Release(x) {
				t.Fatalf("Release(%s) = false", x)
			}
		} else if err := a.Reserve(x); err != nil {
			t.Fatalf("Reserve(%s): %v", x, err)
		}
		if n := len(runsOf(t, a)); n != s.runs {
			t.Fatalf("after %v %s: %d runs, want %d", map[bool]string{true: "Release", false: "Reserve"}[s.release], x, n, s.runs)
		}
	}
	// The cursor is still .10, so Next goes on from .13.
	if g := mustNext(t, a); g != addr(t, "192.0.2.13") {
		t.Fatalf("Next = %s, want 192.0.2.13", g)
	}
}

func TestCursor(t *testing.T) {
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			var held []netip.Addr
			for i := 0; i < 20; i++ {
				held = append(held, mustNext(t, a))
			}
			a.Release(held[3])
			cursor, ok := a.Cursor()
			if !ok || cursor != held[19] {
				t.Fatalf("Cursor() = %s, %v; want %s", cursor, ok, held[19])
			}

			// Rebuild as after a restart: reserve what is held, restore the cursor.
			b := p.new(t)
			for i, x := range held {
				if i != 3 {
					if err := b.Reserve(x); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := b.SetCursor(cursor); err != nil {
				t.Fatalf("SetCursor(%s): %v", cursor, err)
			}
			if c, ok := b.Cursor(); !ok || c != cursor {
				t.Fatalf("Cursor() after SetCursor = %s, %v; want %s", c, ok, cursor)
			}
			for i := 0; i < 5; i++ {
				if x, y := mustNext(t, a), mustNext(t, b); x != y {
					t.Fatalf("Next after restore = %s, original allocator gives %s", y, x)
				}
			}

			// The cursor need not be allocated.
			free := add(addr(t, p.winFirst), 30)
			if err := b.SetCursor(free); err != nil {
				t.Fatalf("SetCursor(%s) (free): %v", free, err)
			}
			if g := mustNext(t, b); g != free.Next() {
				t.Fatalf("Next after SetCursor(%s) = %s, want %s", free, g, free.Next())
			}

			for _, bad := range []netip.Addr{
				add(addr(t, p.winFirst), -1), // in the bounds but outside the window, or out of bounds
				add(addr(t, p.winLast), 1),
				add(addr(t, p.first), -1),
				netip.MustParseAddr("192.0.2.1").Unmap(),
				netip.MustParseAddr("2001:db8::1"),
				{},
			} {
				err := b.SetCursor(bad)
				switch {
				case p.contains(t, bad) && err != nil:
					t.Errorf("SetCursor(%s) in the window: %v", bad, err)
				case !p.contains(t, bad) && !errors.Is(err, ErrOutOfRange):
					t.Errorf("SetCursor(%s) = %v, want ErrOutOfRange", bad, err)
				}
			}

			b.ResetCursor()
			if _, ok := b.Cursor(); ok {
				t.Fatal("Cursor() ok after ResetCursor")
			}
			c := p.new(t)
			mustNext(t, c)
			c.ResetCursor()
			if g := mustNext(t, c); g != addr(t, p.winFirst).Next() {
				t.Fatalf("Next after ResetCursor = %s, want %s", g, addr(t, p.winFirst).Next())
			}
		})
	}
}

// contains reports whether x is in the window of p.
func (p pool) contains(t testing.TB, x netip.Addr) bool {
	return x.IsValid() && x.Is4() == addr(t, p.winFirst).Is4() &&
		!x.Less(addr(t, p.winFirst)) && !addr(t, p.winLast).Less(x)
}

func TestFirstFree(t *testing.T) {
	for _, p := range pools {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			wf := addr(t, p.winFirst)
			gw, err := a.FirstFree()
			if err != nil || gw != wf {
				t.Fatalf("FirstFree() = %s, %v; want %s", gw, err, wf)
			}
			if _, ok := a.Cursor(); ok {
				t.Fatal("FirstFree set the cursor")
			}
			for i := 1; i <= 5; i++ {
				if g := mustNext(t, a); g != add(wf, i) {
					t.Fatalf("Next = %s, want %s", g, add(wf, i))
				}
			}
			a.Release(add(wf, 2))
			a.Release(add(wf, 4))
			if g, err := a.FirstFree(); err != nil || g != add(wf, 2) {
				t.Fatalf("FirstFree() = %s, %v; want %s", g, err, add(wf, 2))
			}
			if c, _ := a.Cursor(); c != add(wf, 5) {
				t.Fatalf("FirstFree moved the cursor to %s", c)
			}
			if g := mustNext(t, a); g != add(wf, 6) {
				t.Fatalf("Next after FirstFree = %s, want %s", g, add(wf, 6))
			}
			if g, err := a.FirstFree(); err != nil || g != add(wf, 4) {
				t.Fatalf("FirstFree() = %s, %v; want %s", g, err, add(wf, 4))
			}
			if g, err := a.FirstFree(); err != nil || g != add(wf, 7) {
				t.Fatalf("FirstFree() = %s, %v; want %s", g, err, add(wf, 7))
			}
			if g := mustNext(t, a); g != add(wf, 8) {
				t.Fatalf("Next after FirstFree took the address after the cursor = %s, want %s", g, add(wf, 8))
			}
		})
	}
}

// TestEdgesOfAddressSpace runs pools that touch the lowest and highest
// addresses of each family, where stepping past the bounds would wrap.
func TestEdgesOfAddressSpace(t *testing.T) {
	tests := []pool{
		{"v4 bottom", "0.0.0.0", "0.0.0.3", "0.0.0.0", "0.0.0.3"},
		{"v4 top", "255.255.255.252", "255.255.255.255", "255.255.255.252", "255.255.255.255"},
		{"v6 bottom", "::", "::3", "::", "::3"},
		{"v6 top", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	}
	for _, p := range tests {
		t.Run(p.name, func(t *testing.T) {
			a := p.new(t)
			first, last := addr(t, p.first), addr(t, p.last)
			for i := 0; i < 4; i++ {
				if g := mustNext(t, a); g != add(first, i) {
					t.Fatalf("Next = %s, want %s", g, add(first, i))
				}
			}
			if _, err := a.Next(); !errors.Is(err, ErrFull) {
				t.Fatalf("Next on a full pool: %v, want ErrFull", err)
			}
			a.Release(first)
			a.Release(last)
			for _, want := range []netip.Addr{first, last} {
				if g := mustNext(t, a); g != want {
					t.Fatalf("Next = %s, want %s", g, want)
				}
			}
			a.Release(last)
			a.Release(add(first, 1))
			if g, err := a.FirstFree(); err != nil || g != add(first, 1) {
				t.Fatalf("FirstFree() = %s, %v; want %s", g, err, add(first, 1))
			}
			if err := a.Reserve(last); err != nil {
				t.Fatal(err)
			}
			if runs := runsOf(t, a); len(runs) != 1 || runs[0] != [2]netip.Addr{first, last} {
				t.Fatalf("runs = %v, want %s-%s", runs, first, last)
			}
		})
	}
}

// model is a plain reference implementation of the allocator over the
// indexes of a small range: index 0 is the address just below the bounds,
// 1..n the bounds, n+1 the address just above.
type model struct {
	n, wf, wl int
	used      map[int]bool
	cursor    int
	hasCursor bool
}

func (m *model) take(i int) (int, bool) {
	m.used[i] = true
	return i, true
}

func (m *model) next() (int, bool) {
	from := m.wf
	if m.hasCursor {
		from = m.cursor + 1
	}
	for i := from; i <= m.wl; i++ {
		if !m.used[i] {
			return m.take(i)
		}
	}
	if m.hasCursor {
		for i := m.wf; i <= m.cursor; i++ {
			if !m.used[i] {
				return m.take(i)
			}
		}
	}
	return 0, false
}

func (m *model) firstFree() (int, bool) {
	for i := m.wf; i <= m.wl; i++ {
		if !m.used[i] {
			return m.take(i)
		}
	}
	return 0, false
}

// runs returns the maximal runs of m as index pairs.
func (m *model) runs() [][2]int {
	var runs [][2]int
	for i := 1; i <= m.n; i++ {
		if !m.used[i] {
			continue
		}
		if k := len(runs); k > 0 && runs[k-1][1] == i-1 {
			runs[k-1][1] = i
		} else {
			runs = append(runs, [2]int{i, i})
		}
	}
	return runs
}

// TestRandomAgainstModel runs a few thousand random operations on small
// pools, so that the window fills and wraps around many times, and compares
// every result, the cursor and the runs with the reference model.
func TestRandomAgainstModel(t *testing.T) {
	tests := []struct {
		name      string
		first     string // first address of the bounds
		n, wf, wl int    // size of the bounds, window as indexes 1..n
	}{
		{"v4 window", "10.0.0.1", 40, 6, 33},
		{"v4 whole", "10.0.0.1", 24, 1, 24},
		{"v6 window across 64-bit boundary", "2001:db8::ffff:ffff:ffff:ffea", 44, 5, 40},
		{"v6 whole", "2001:db8::1", 30, 1, 30},
	}
	for seed, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := addr(t, tt.first)
			addrs := make([]netip.Addr, tt.n+2) // index -> address
			for i := range addrs {
				addrs[i] = add(first, i-1)
			}
			index := func(x netip.Addr) int {
				for i, y := range addrs {
					if x == y {
						return i
					}
				}
				t.Fatalf("address %s not in the test range", x)
				return -1
			}
			a, err := New(addrs[1], addrs[tt.n], addrs[tt.wf], addrs[tt.wl])
			if err != nil {
				t.Fatal(err)
			}
			m := &model{n: tt.n, wf: tt.wf, wl: tt.wl, used: map[int]bool{}}
			rng := rand.New(rand.NewPCG(42, uint64(seed)))
			var wraps, fulls, splits int
			for step := 0; step < 5000; step++ {
				// Alternate filling and draining phases so that the window is
				// sometimes full and sometimes nearly empty.
				fill := step/400%2 == 0
				op := rng.IntN(100)
				i := rng.IntN(tt.n + 2)
				var what string
				switch {
				case op < 40 && fill || op < 25:
					what = "Next"
					got, err := a.Next()
					want, ok := m.next()
					if !ok {
						fulls++
						if !errors.Is(err, ErrFull) {
							t.Fatalf("step %d: Next = %s, %v; want ErrFull", step, got, err)
						}
						break
					}
					if err != nil || got != addrs[want] {
						t.Fatalf("step %d: Next = %s, %v; want %s", step, got, err, addrs[want])
					}
					if m.hasCursor && want <= m.cursor {
						wraps++
					}
					m.cursor, m.hasCursor = want, true
				case op < 50:
					what = "FirstFree"
					got, err := a.FirstFree()
					want, ok := m.firstFree()
					if !ok && !errors.Is(err, ErrFull) || ok && (err != nil || got != addrs[want]) {
						t.Fatalf("step %d: FirstFree = %s, %v; want %d %v", step, got, err, want, ok)
					}
				case op < 65:
					what = "Reserve " + addrs[i].String()
					err := a.Reserve(addrs[i])
					switch {
					case i < 1 || i > tt.n:
						if !errors.Is(err, ErrOutOfRange) {
							t.Fatalf("step %d: Reserve(%s) = %v, want ErrOutOfRange", step, addrs[i], err)
						}
					case m.used[i]:
						if !errors.Is(err, ErrInUse) {
							t.Fatalf("step %d: Reserve(%s) = %v, want ErrInUse", step, addrs[i], err)
						}
					default:
						if err != nil {
							t.Fatalf("step %d: Reserve(%s) = %v", step, addrs[i], err)
						}
						m.used[i] = true
					}
				case op < 93:
					what = "Release " + addrs[i].String()
					want := m.used[i]
					if want && m.used[i-1] && m.used[i+1] {
						splits++
					}
					if got := a.Release(addrs[i]); got != want {
						t.Fatalf("step %d: Release(%s) = %v, want %v", step, addrs[i], got, want)
					}
					delete(m.used, i)
				case op < 98:
					what = "SetCursor " + addrs[i].String()
					err := a.SetCursor(addrs[i])
					if i < tt.wf || i > tt.wl {
						if !errors.Is(err, ErrOutOfRange) {
							t.Fatalf("step %d: SetCursor(%s) = %v, want ErrOutOfRange", step, addrs[i], err)
						}
						break
					}
					if err != nil {
						t.Fatalf("step %d: SetCursor(%s) = %v", step, addrs[i], err)
					}
					m.cursor, m.hasCursor = i, true
				default:
					what = "ResetCursor"
					a.ResetCursor()
					m.hasCursor = false
				}

				if got := a.Allocated(addrs[i]); got != m.used[i] {
					t.Fatalf("step %d (%s): Allocated(%s) = %v, want %v", step, what, addrs[i], got, m.used[i])
				}
				c, ok := a.Cursor()
				if ok != m.hasCursor || ok && c != addrs[m.cursor] {
					t.Fatalf("step %d (%s): Cursor() = %s, %v; want %d, %v", step, what, c, ok, m.cursor, m.hasCursor)
				}
				var got [][2]int
				for _, r := range runsOf(t, a) {
					got = append(got, [2]int{index(r[0]), index(r[1])})
				}
				if want := m.runs(); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("step %d (%s): runs = %v, want %v", step, what, got, want)
				}
			}
			// Make sure the interesting cases actually happened.
			if wraps < 20 || fulls < 20 || splits < 20 {
				t.Fatalf("only %d wrap-arounds, %d full windows, %d splits: the test does not exercise them", wraps, fulls, splits)
			}
			t.Logf("%d wrap-arounds, %d full windows, %d splits", wraps, fulls, splits)
		})
	}
}

// TestSetWindow: Next follows the window from block to block; a cursor
// outside the new window is dropped, one inside it kept.
func TestSetWindow(t *testing.T) {
	a, err := New(netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.254"), netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.254"))
	if err != nil {
		t.Fatal(err)
	}
	next := func(want string) {
		t.Helper()
		got, err := a.Next()
		if err != nil || got.String() != want {
			t.Fatalf("Next = %v, %v; want %s", got, err, want)
		}
	}
	set := func(first, last string) {
		t.Helper()
		if err := a.SetWindow(netip.MustParseAddr(first), netip.MustParseAddr(last)); err != nil {
			t.Fatal(err)
		}
	}
	set("10.0.0.66", "10.0.0.67")
	next("10.0.0.66")
	next("10.0.0.67")
	if _, err := a.Next(); !errors.Is(err, ErrFull) {
		t.Fatalf("Next in a full window = %v, want ErrFull", err)
	}
	set("10.0.0.2", "10.0.0.62")
	next("10.0.0.2")
	set("10.0.0.2", "10.0.0.10") // the cursor (10.0.0.2) stays
	next("10.0.0.3")
	if first, last := a.Window(); first.String() != "10.0.0.2" || last.String() != "10.0.0.10" {
		t.Fatalf("Window = %s-%s", first, last)
	}
	if err := a.SetWindow(netip.MustParseAddr("10.0.0.0"), netip.MustParseAddr("10.0.0.10")); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("a window outside the bounds: %v, want ErrOutOfRange", err)
	}
}
