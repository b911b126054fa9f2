package driver

import (
	"slices"
	"testing"
)

// TestUndoStack: the undos run the last first, each once.
func TestUndoStack(t *testing.T) {
	var ran []int
	var undo undoStack
	for i := 1; i <= 3; i++ {
		undo.add(func() { ran = append(ran, i) })
	}
	undo.run()
	if want := []int{3, 2, 1}; !slices.Equal(ran, want) {
		t.Errorf("undos ran as %v, want %v", ran, want)
	}
}
