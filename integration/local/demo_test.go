//go:build integration

package local

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// TestDemoWithoutEngine: `make demo` on a machine where no Docker daemon
// answers starts a private engine, shows the containers' addresses, and
// leaves no engine process, namespace, link or rule behind.
func TestDemoWithoutEngine(t *testing.T) {
	if harness.Eng.Kind != harness.EngineDockerIO || harness.Eng.External {
		t.Skip("the demo's private engine is Debian's docker.io: run once, with that engine")
	}
	before := hostTraces(t)
	cmd := exec.Command("make", "-C", harness.Repo, "demo")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent.sock")
	outB, err := cmd.CombinedOutput()
	out := string(outB)
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, harness.LastLines(out, 40))
	}
	harness.WantMessage(t, out, "no Docker daemon answers", "fd00:d5:1::2/64", "fd00:d5:2::4/64", "0% packet loss", "removing the private engine")
	var left []string
	for _, l := range hostTraces(t) {
		if !slices.Contains(before, l) {
			left = append(left, l)
		}
	}
	if len(left) > 0 {
		t.Fatalf("make demo left on the host:\n%s", strings.Join(left, "\n"))
	}
}

// hostTraces lists what an engine could leave on the host: engine
// processes, network namespaces, links, firewall rules, mounts and the
// demo's directories.
func hostTraces(t *testing.T) []string {
	t.Helper()
	var b strings.Builder
	for _, pid := range harness.AllPIDs() {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		switch c := strings.TrimSpace(string(comm)); c {
		case "dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "dualstack":
			// The suite's own engine and plugin live in its namespace.
			if !slices.Contains(harness.NetnsPIDs(harness.Eng.Netns), pid) {
				b.WriteString("process " + c + "\n")
			}
		}
	}
	for _, c := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link", "show"}, {"iptables-save"}, {"ip6tables-save"}} {
		o, _ := exec.Command(c[0], c[1:]...).Output()
		for _, l := range strings.Split(string(o), "\n") {
			if strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") || strings.Contains(l, harness.Eng.Netns) {
				continue // comments and counters change on their own
			}
			if len(c) > 2 && c[1] == "netns" && !strings.HasPrefix(l, "dsprv-") {
				continue // the demo's engine's namespaces are dsprv-*; others are not the demo's
			}
			// Link lines carry counters of their own: keep the names.
			if len(c) > 1 && c[1] == "-o" {
				if f := strings.Fields(l); len(f) > 1 {
					l = f[1]
				}
			}
			b.WriteString(strings.Join(c, " ") + ": " + l + "\n")
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	for _, l := range strings.Split(string(mounts), "\n") {
		if strings.Contains(l, "dualstack-demo") || strings.Contains(l, "dualstack-private") || strings.Contains(l, "dsprv-") {
			b.WriteString("mount " + l + "\n")
		}
	}
	for _, glob := range []string{"/tmp/dualstack-demo.*", "/run/dualstack-private-*"} {
		m, _ := filepath.Glob(glob)
		for _, f := range m {
			b.WriteString("file " + f + "\n")
		}
	}
	return strings.Split(b.String(), "\n")
}
