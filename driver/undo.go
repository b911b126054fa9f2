package driver

// undoStack holds the undo of each step of a request that succeeded so
// far. A request that changes several things registers each step's undo
// as the step succeeds, and one deferred call runs them when a later step
// fails, so that a failed request leaves nothing behind.
type undoStack []func()

// add registers the undo of a step that succeeded.
func (u *undoStack) add(undo func()) { *u = append(*u, undo) }

// run undoes the steps that succeeded, the last one first.
func (u undoStack) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}
