//go:build integration

// Package mounts holds the end-to-end tests whose outcome depends on how
// the host propagates mounts (issue 12): run by make integration and
// integration-moby with the engine's root mount private (DUALSTACK_ROOT
// unset, as on hosts without systemd), and again by make
// integration-shared on both engines with it shared (as on systemd
// hosts).
package mounts

import (
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

func TestMain(m *testing.M) { harness.Main(m, harness.OneHost) }
