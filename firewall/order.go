package firewall

import (
	"sync"
	"sync/atomic"
)

// Applier is what Order applies states to: a Firewall, or a stand-in.
type Applier interface {
	Apply(State) error
	Repair(State) ([]Family, error)
}

// Order keeps the applies of states in the order the states were taken.
// A caller takes each state under its own lock and numbers it there
// (Take), so that the numbers follow the states' order; it may apply
// outside that lock. Changes apply in order; a repair of an older state
// than the last applied does nothing. Its lock is a leaf: held only while
// the rules apply.
type Order struct {
	taken atomic.Uint64
	mu    sync.Mutex // held while applying; guards applied
	// applied is the number of the latest state applied.
	applied uint64
}

// Take numbers a state the caller took under its lock.
func (o *Order) Take() uint64 { return o.taken.Add(1) }

// Apply makes r's rules state s, numbered v (Take).
func (o *Order) Apply(r Applier, s State, v uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := r.Apply(s); err != nil {
		return err
	}
	o.applied = v
	return nil
}

// Repair puts r's rules back to state s, numbered v (Take), unless a
// newer state was applied meanwhile (nothing changed then).
func (o *Order) Repair(r Applier, s State, v uint64) ([]Family, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.applied > v {
		return nil, nil // a newer state is in place
	}
	changed, err := r.Repair(s)
	if err != nil {
		return nil, err
	}
	o.applied = v
	return changed, nil
}
