// Package allocator hands out the addresses of one IP pool sequentially.
//
// An Allocator keeps the allocated addresses as an ordered set of maximal
// runs of consecutive addresses, so its memory grows with the number of runs,
// never with the size of the pool: a /48 or /64 IPv6 pool costs what a /24
// costs, and a million addresses handed out in order are a single run.
package allocator

import (
	"errors"
	"fmt"
	"net/netip"
)

var (
	// ErrFull means the window has no free address left.
	ErrFull = errors.New("no free address left")
	// ErrInUse means the address is already allocated.
	ErrInUse = errors.New("address already in use")
	// ErrOutOfRange means the address is not one of the pool's usable
	// addresses (or, for SetCursor, not inside the window), or is of the
	// other address family.
	ErrOutOfRange = errors.New("address outside the pool")
)

// Allocator hands out addresses of one pool.
//
// Bounds [first,last] (inclusive) are the usable addresses of the pool: the
// caller has already excluded the network, broadcast or subnet-router
// anycast addresses. The sequential window [winFirst,winLast] (inclusive,
// inside the bounds) is where Next and FirstFree hand out addresses: the
// pool, or its sub-pool (--ip-range). Reserve accepts any address of the
// bounds.
//
// Memory is O(number of runs of consecutive allocated addresses). Next,
// FirstFree, Reserve, Release and Allocated are O(log runs); Next in the
// common sequential case is O(1) and allocates nothing.
//
// An Allocator is not safe for concurrent use: the caller serialises all
// calls, for instance with a mutex. It must not be copied; use the pointer
// New returns.
type Allocator struct {
	is4               bool
	first, last       u128 // bounds
	winFirst, winLast u128 // window
	cursor            u128 // last address handed out by Next
	hasCursor         bool
	runs              runSet
	hint, hintNext    *run // see Next
}

// New returns an empty allocator for the bounds [first,last] and the
// sequential window [winFirst,winLast]. It fails if an address is invalid,
// the families differ, first > last, or the window is empty or not inside the
// bounds.
func New(first, last, winFirst, winLast netip.Addr) (*Allocator, error) {
	for _, a := range []netip.Addr{first, last, winFirst, winLast} {
		if !a.IsValid() {
			return nil, fmt.Errorf("allocator bounds %s-%s, window %s-%s: invalid address", first, last, winFirst, winLast)
		}
		if a.Is4() != first.Is4() {
			return nil, fmt.Errorf("allocator bounds %s-%s, window %s-%s: mixed address families", first, last, winFirst, winLast)
		}
	}
	a := &Allocator{
		is4:      first.Is4(),
		first:    fromAddr(first),
		last:     fromAddr(last),
		winFirst: fromAddr(winFirst),
		winLast:  fromAddr(winLast),
	}
	switch {
	case a.last.less(a.first):
		return nil, fmt.Errorf("allocator bounds %s-%s: first address is after the last", first, last)
	case a.winLast.less(a.winFirst):
		return nil, fmt.Errorf("allocator window %s-%s: first address is after the last", winFirst, winLast)
	case a.winFirst.less(a.first) || a.last.less(a.winLast):
		return nil, fmt.Errorf("allocator window %s-%s is not inside the bounds %s-%s", winFirst, winLast, first, last)
	}
	a.runs.init()
	return a, nil
}

// key converts addr to its integer and reports whether it is of the pool's
// family and inside [lo,hi].
func (a *Allocator) key(addr netip.Addr, lo, hi u128) (u128, bool) {
	if !addr.IsValid() || addr.Is4() != a.is4 {
		return u128{}, false
	}
	x := fromAddr(addr)
	return x, !x.less(lo) && !hi.less(x)
}

// Next hands out the first free address strictly after the cursor within
// the window. When it reaches winLast with nothing free it wraps around once
// to winFirst and continues up to the cursor (included), so a released
// address is not reused before wrap-around. Without a cursor the search
// starts at winFirst (inclusive). Next sets the cursor to the result. It
// returns ErrFull when the window has no free address.
func (a *Allocator) Next() (netip.Addr, error) {
	// Fast path. hint is the run holding the cursor and hintNext the run
	// after it; every other change to the set that could touch either drops
	// the hint. Runs are maximal, so hint.last+1 is free: it is the answer
	// when it is still inside the window.
	if h := a.hint; h != nil && h.last.less(a.winLast) {
		x := h.last.inc()
		h.last = x
		if n := a.hintNext; n != nil && n.first.dec() == x {
			h.last = n.last
			a.runs.tree.Delete(n)
			a.hintNext = a.runs.higher(h.first)
		}
		a.cursor = x
		return x.toAddr(a.is4), nil
	}

	x, ok := u128{}, false
	if !a.hasCursor {
		x, ok = a.lowestFree(a.winFirst, a.winLast)
	} else {
		if a.cursor.less(a.winLast) {
			x, ok = a.lowestFree(a.cursor.inc(), a.winLast)
		}
		if !ok {
			x, ok = a.lowestFree(a.winFirst, a.cursor)
		}
	}
	if !ok {
		return netip.Addr{}, a.errFull()
	}
	h, _ := a.runs.add(x)
	a.cursor, a.hasCursor = x, true
	a.hint, a.hintNext = h, a.runs.higher(h.first)
	return x.toAddr(a.is4), nil
}

// errFull describes a full window.
func (a *Allocator) errFull() error {
	return fmt.Errorf("window %s-%s: %w", a.winFirst.toAddr(a.is4), a.winLast.toAddr(a.is4), ErrFull)
}

// lowestFree returns the lowest free address of [lo,hi], with lo <= hi and
// both inside the bounds.
func (a *Allocator) lowestFree(lo, hi u128) (u128, bool) {
	r := a.runs.containing(lo)
	if r == nil {
		return lo, true
	}
	// Runs are maximal: the address after r is free (or past the bounds).
	if !r.last.less(hi) {
		return u128{}, false
	}
	return r.last.inc(), true
}

// FirstFree returns the lowest free address of the window and marks it
// allocated, without moving the cursor (it is used for gateways). It returns
// ErrFull if the window has no free address.
func (a *Allocator) FirstFree() (netip.Addr, error) {
	x, ok := a.lowestFree(a.winFirst, a.winLast)
	if !ok {
		return netip.Addr{}, a.errFull()
	}
	a.runs.add(x)
	a.hint = nil
	return x.toAddr(a.is4), nil
}

// Reserve marks addr allocated without moving the cursor. Any address of the
// bounds may be reserved, not only those of the window. It returns
// ErrOutOfRange if addr is outside [first,last] or of the other family, and
// ErrInUse if addr is already allocated.
func (a *Allocator) Reserve(addr netip.Addr) error {
	x, ok := a.key(addr, a.first, a.last)
	if !ok {
		return fmt.Errorf("%s is not in %s-%s: %w", addr, a.first.toAddr(a.is4), a.last.toAddr(a.is4), ErrOutOfRange)
	}
	if a.runs.containing(x) != nil {
		return fmt.Errorf("%s: %w", addr, ErrInUse)
	}
	a.runs.add(x)
	a.hint = nil
	return nil
}

// Release frees addr and reports whether it was allocated. It is
// idempotent: releasing a free or out-of-range address returns false. The
// cursor does not move, so the address is not handed out again by Next
// before wrap-around.
func (a *Allocator) Release(addr netip.Addr) bool {
	x, ok := a.key(addr, a.first, a.last)
	if !ok {
		return false
	}
	r := a.runs.containing(x)
	if r == nil {
		return false
	}
	deleted := a.runs.remove(r, x)
	// A split keeps r as the lower part and inserts the upper part right
	// after r, so only a change to the hint itself, or the removal of the
	// run after it, invalidates the hint.
	if r == a.hint || deleted && r == a.hintNext {
		a.hint = nil
	}
	return true
}

// Allocated reports whether addr is allocated.
func (a *Allocator) Allocated(addr netip.Addr) bool {
	x, ok := a.key(addr, a.first, a.last)
	return ok && a.runs.containing(x) != nil
}

// Cursor returns the last address handed out by Next, or ok=false if Next
// has not handed out any address yet (or the cursor was reset).
func (a *Allocator) Cursor() (addr netip.Addr, ok bool) {
	if !a.hasCursor {
		return netip.Addr{}, false
	}
	return a.cursor.toAddr(a.is4), true
}

// SetCursor restores the cursor, for instance after a restart (the caller
// persists it): the next call to Next searches from the address after addr.
// addr need not be allocated. It returns an error wrapping ErrOutOfRange if
// addr is outside the window.
func (a *Allocator) SetCursor(addr netip.Addr) error {
	x, ok := a.key(addr, a.winFirst, a.winLast)
	if !ok {
		return fmt.Errorf("cursor %s is not in the window %s-%s: %w", addr, a.winFirst.toAddr(a.is4), a.winLast.toAddr(a.is4), ErrOutOfRange)
	}
	a.cursor, a.hasCursor = x, true
	a.hint = nil
	return nil
}

// ResetCursor forgets the cursor, as if Next had never been called: the next
// call to Next searches from winFirst (inclusive).
func (a *Allocator) ResetCursor() {
	a.hasCursor = false
	a.hint = nil
}

// Window returns the sequential window.
func (a *Allocator) Window() (first, last netip.Addr) {
	return a.winFirst.toAddr(a.is4), a.winLast.toAddr(a.is4)
}

// SetWindow moves the sequential window to [first,last], which must lie
// inside the bounds: a pool that allocates in several blocks moves it from
// block to block. A cursor outside the new window is dropped, so Next
// starts at its first address.
func (a *Allocator) SetWindow(first, last netip.Addr) error {
	lo, ok1 := a.key(first, a.first, a.last)
	hi, ok2 := a.key(last, a.first, a.last)
	if !ok1 || !ok2 || hi.less(lo) {
		return fmt.Errorf("window %s-%s is not inside the bounds %s-%s: %w", first, last, a.first.toAddr(a.is4), a.last.toAddr(a.is4), ErrOutOfRange)
	}
	a.winFirst, a.winLast = lo, hi
	if a.hasCursor && (a.cursor.less(lo) || hi.less(a.cursor)) {
		a.hasCursor = false
		a.hint = nil
	}
	return nil
}

// Runs returns the number of maximal runs of consecutive allocated
// addresses.
func (a *Allocator) Runs() int { return a.runs.tree.Len() }

// Walk calls fn with the first and last address of each maximal run of
// consecutive allocated addresses, in ascending order, until fn returns
// false. fn must not change the allocator.
func (a *Allocator) Walk(fn func(first, last netip.Addr) bool) {
	a.runs.tree.Ascend(func(r *run) bool {
		return fn(r.first.toAddr(a.is4), r.last.toAddr(a.is4))
	})
}
