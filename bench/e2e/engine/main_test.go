//go:build integration

// Package engine holds the end-to-end benchmarks on one private engine
// (DUALSTACK_ENGINE picks it, DUALSTACK_ROOT its root mount): dualstack
// against Docker's own drivers in the same engine and run.
package engine

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.OneHost) }
