package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/internal/version"
)

// TestVersionCommand: dualstack version prints the version the build set
// and the binary's platform; an argument is refused and nothing printed.
func TestVersionCommand(t *testing.T) {
	old := version.Version
	version.Version = "1.2.3"
	t.Cleanup(func() { version.Version = old })

	var out bytes.Buffer
	if err := versionCommand(nil, &out); err != nil {
		t.Fatal(err)
	}
	if want := "dualstack 1.2.3 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"; out.String() != want {
		t.Fatalf("dualstack version printed %q, want %q", out.String(), want)
	}

	out.Reset()
	err := versionCommand([]string{"--json"}, &out)
	if err == nil || !strings.Contains(err.Error(), "--json") || !strings.Contains(err.Error(), "usage: dualstack version") {
		t.Fatalf("dualstack version --json: error %v, want one naming --json and the usage", err)
	}
	if out.Len() != 0 {
		t.Fatalf("dualstack version --json printed %q, want nothing", out.String())
	}
}
