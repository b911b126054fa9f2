package allocator

import "github.com/google/btree"

// btreeDegree is the degree of the B-tree of runs: nodes hold up to
// 2*btreeDegree-1 run pointers, which keeps the tree shallow and its nodes
// a few cache lines wide.
const btreeDegree = 32

// run is a range [first,last] (inclusive) of consecutive allocated
// addresses. Runs in a runSet never overlap and never touch: run.last+1 is
// always free or outside the pool.
type run struct{ first, last u128 }

// runLess orders runs by their first address.
func runLess(a, b *run) bool { return a.first.less(b.first) }

// runSet is the ordered set of maximal runs of allocated addresses.
//
// The B-tree holds pointers and is keyed by run.first. The bounds of a run
// are changed in place when that keeps the order of the runs, which it
// always does because runs are disjoint: growing run.last up to the next
// run, or shrinking either end, moves no run past another, so the tree needs
// no re-insert. That is what makes extending the run at the cursor cheap.
//
// Lookups use a pivot and iterator callbacks kept in the set, so that they
// allocate nothing.
type runSet struct {
	tree     *btree.BTreeG[*run]
	pivot    run  // lookup key, reused
	found    *run // result of the last lookup
	floorFn  func(*run) bool
	higherFn func(*run) bool
}

// init prepares an empty set. The set must not be copied afterwards: the
// callbacks refer to it.
func (s *runSet) init() {
	s.tree = btree.NewG(btreeDegree, runLess)
	s.floorFn = func(r *run) bool {
		s.found = r
		return false
	}
	s.higherFn = func(r *run) bool {
		if r.first == s.pivot.first {
			return true
		}
		s.found = r
		return false
	}
}

// floor returns the run with the greatest first address <= x, or nil.
func (s *runSet) floor(x u128) *run {
	s.pivot.first, s.found = x, nil
	s.tree.DescendLessOrEqual(&s.pivot, s.floorFn)
	r := s.found
	s.found = nil
	return r
}

// higher returns the run with the least first address > x, or nil.
func (s *runSet) higher(x u128) *run {
	s.pivot.first, s.found = x, nil
	s.tree.AscendGreaterOrEqual(&s.pivot, s.higherFn)
	r := s.found
	s.found = nil
	return r
}

// containing returns the run that holds x, or nil if x is free.
func (s *runSet) containing(x u128) *run {
	if r := s.floor(x); r != nil && !r.last.less(x) {
		return r
	}
	return nil
}

// add marks the free address x allocated, merging it with the run ending
// just before it and the run starting just after it. It returns the run that
// now holds x and the run that the merge removed from the set, if any.
func (s *runSet) add(x u128) (holder, removed *run) {
	// x is free, so no run starts at x and no run contains it: pred ends
	// before x and succ starts after it, hence x-1 and x+1 below cannot wrap.
	pred := s.floor(x)
	succ := s.higher(x)
	joinPred := pred != nil && pred.last.inc() == x
	joinSucc := succ != nil && succ.first.dec() == x
	switch {
	case joinPred && joinSucc:
		pred.last = succ.last
		s.tree.Delete(succ)
		return pred, succ
	case joinPred:
		pred.last = x
		return pred, nil
	case joinSucc:
		succ.first = x // in place: pred.last < x-1, the order is kept
		return succ, nil
	}
	r := &run{first: x, last: x}
	s.tree.ReplaceOrInsert(r)
	return r, nil
}

// remove marks the allocated address x free, shrinking or splitting its run
// r (which must contain x). It reports whether r left the set. When r is
// split, r keeps the lower part and a new run after it takes the upper part.
func (s *runSet) remove(r *run, x u128) (deleted bool) {
	switch {
	case r.first == x && r.last == x:
		s.tree.Delete(r)
		return true
	case r.first == x:
		r.first = x.inc() // in place: still below the next run
	case r.last == x:
		r.last = x.dec()
	default:
		upper := &run{first: x.inc(), last: r.last}
		r.last = x.dec()
		s.tree.ReplaceOrInsert(upper)
	}
	return false
}
