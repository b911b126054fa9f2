//go:build integration

package mounts

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The tests of issue 12: the plugin reaches container namespaces on every
// kind of host. The whole suite runs on an engine whose root mount is
// private (DUALSTACK_ROOT=private, the default: as on hosts without
// systemd), and a part of it again on a shared one (make
// integration-shared).

// TestNamespaceMechanism: at start the plugin says in one line how it
// reaches container namespaces: through dockerd's mount namespace, on
// either kind of host.
func TestNamespaceMechanism(t *testing.T) {
	if harness.Eng.External {
		t.Skip("reads the private engine's log")
	}
	log := harness.Eng.PluginLog()
	if !strings.Contains(log, "mechanism=proc") || !strings.Contains(log, "through dockerd's mount namespace") {
		t.Fatalf("no start line saying the plugin reaches namespaces through dockerd's mount namespace:\n%s", harness.LastLines(log, 40))
	}
}

// TestNamespacesUnreachable: the plugin told to look for namespaces below
// its bind mount of the host's /run (NETNS_ACCESS=mount, the test seam).
// On a private host that mount never shows new namespaces: the plugin says
// so at start, with the remedy, and a container on its network fails to
// start at once with the cause and the remedy, instead of starting without
// its addresses or waiting for minutes. On a shared host the same
// mechanism works: the container gets every address.
func TestNamespacesUnreachable(t *testing.T) {
	if harness.Eng.External {
		t.Skip("changes the plugin's settings and reads the private engine's log")
	}
	harness.SetPlugin(t, "NETNS_ACCESS=mount")
	t.Cleanup(func() { harness.SetPlugin(t, "NETNS_ACCESS=auto") })
	harness.DSNet(t, "ds-unreach", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "fd00:12:1::/64", "--subnet", "fd00:12:2::/64")

	start := time.Now()
	out, err := harness.DockerCmd("run", "--rm", "--label", harness.TestLabel, "--network", "ds-unreach", harness.Image, "ip", "-6", "addr", "show", "eth0")
	took := time.Since(start)
	if harness.Eng.Root == harness.RootShared {
		if err != nil {
			t.Fatalf("NETNS_ACCESS=mount on a shared host: %v\n%s", err, out)
		}
		for _, want := range []string{"fd00:12:1::2/64", "fd00:12:2::2/64"} {
			if !strings.Contains(out, want) || strings.Contains(out, "tentative") {
				t.Fatalf("NETNS_ACCESS=mount on a shared host: first command lacks %s or sees a tentative address:\n%s", want, out)
			}
		}
		return
	}
	if err == nil {
		t.Fatalf("a container started on a private host with NETNS_ACCESS=mount:\n%s", out)
	}
	if took > 10*time.Second {
		t.Fatalf("docker run took %s to fail", took)
	}
	// Join failed, and said why: it is the only call that can, here.
	if took > 5*time.Second {
		t.Fatalf("Join failed only after %s", took)
	}
	harness.WantMessage(t, out, "NETNS_ACCESS=mount", "is private", "mount --make-rshared /", "CAP_SYS_PTRACE")
	log := harness.Eng.PluginLog()
	if !regexp.MustCompile(`level=error msg=\W*container network namespaces cannot be reached: joins will fail.*NETNS_ACCESS=mount`).MatchString(log) {
		t.Fatalf("no error line at start saying namespaces cannot be reached:\n%s", harness.LastLines(log, 30))
	}
	// Nothing stays behind: the network takes a container again once the
	// plugin can reach namespaces.
	harness.SetPlugin(t, "NETNS_ACCESS=auto")
	out = harness.Docker(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-unreach", harness.Image, "ip", "-6", "addr", "show", "eth0")
	for _, want := range []string{"fd00:12:1::", "fd00:12:2::"} {
		if !strings.Contains(out, want) {
			t.Fatalf("after NETNS_ACCESS=auto the first command lacks an address in %s:\n%s", want, out)
		}
	}
}
