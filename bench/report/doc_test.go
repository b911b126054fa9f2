package main

import "testing"

// TestPerformanceDoc: the tables of docs/performance.md are what
// bench/results.json renders. Edit neither by hand: make bench writes
// both; after a change to the tables' code, go run ./bench/report renders
// the page again.
func TestPerformanceDoc(t *testing.T) {
	if err := run("../results.json", "../../docs/performance.md", "", true); err != nil {
		t.Fatal(err)
	}
}
