//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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
	if eng.external {
		t.Skip("reads the private engine's log")
	}
	log := eng.pluginLog()
	if !strings.Contains(log, "mechanism=proc") || !strings.Contains(log, "through dockerd's mount namespace") {
		t.Fatalf("no start line saying the plugin reaches namespaces through dockerd's mount namespace:\n%s", lastLines(log, 40))
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
	if eng.external {
		t.Skip("changes the plugin's settings and reads the private engine's log")
	}
	setPlugin(t, "NETNS_ACCESS=mount")
	t.Cleanup(func() { setPlugin(t, "NETNS_ACCESS=auto") })
	dsNet(t, "ds-unreach", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "fd00:12:1::/64", "--subnet", "fd00:12:2::/64")

	start := time.Now()
	out, err := dockerCmd("run", "--rm", "--label", testLabel, "--network", "ds-unreach", image, "ip", "-6", "addr", "show", "eth0")
	took := time.Since(start)
	if eng.root == rootShared {
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
	wantMessage(t, out, "NETNS_ACCESS=mount", "is private", "mount --make-rshared /", "CAP_SYS_PTRACE")
	log := eng.pluginLog()
	if !regexp.MustCompile(`level=error msg=\W*container network namespaces cannot be reached: joins will fail.*NETNS_ACCESS=mount`).MatchString(log) {
		t.Fatalf("no error line at start saying namespaces cannot be reached:\n%s", lastLines(log, 30))
	}
	// Nothing stays behind: the network takes a container again once the
	// plugin can reach namespaces.
	setPlugin(t, "NETNS_ACCESS=auto")
	out = docker(t, "run", "--rm", "--label", testLabel, "--network", "ds-unreach", image, "ip", "-6", "addr", "show", "eth0")
	for _, want := range []string{"fd00:12:1::", "fd00:12:2::"} {
		if !strings.Contains(out, want) {
			t.Fatalf("after NETNS_ACCESS=auto the first command lacks an address in %s:\n%s", want, out)
		}
	}
}

// TestDemoWithoutEngine: `make demo` on a machine where no Docker daemon
// answers starts a private engine, shows the containers' addresses, and
// leaves no engine process, namespace, link or rule behind.
func TestDemoWithoutEngine(t *testing.T) {
	if eng.kind != engineDockerIO || eng.external {
		t.Skip("the demo's private engine is Debian's docker.io: run once, with that engine")
	}
	before := hostTraces(t)
	cmd := exec.Command("make", "-C", repo, "demo")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent.sock")
	outB, err := cmd.CombinedOutput()
	out := string(outB)
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, lastLines(out, 40))
	}
	wantMessage(t, out, "no Docker daemon answers", "fd00:d5:1::2/64", "fd00:d5:2::4/64", "0% packet loss", "removing the private engine")
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
	for _, pid := range allPIDs() {
		comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
		switch c := strings.TrimSpace(string(comm)); c {
		case "dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2", "dualstack":
			// The suite's own engine and plugin live in its namespace.
			if !slices.Contains(netnsPIDs(eng.netns), pid) {
				b.WriteString("process " + c + "\n")
			}
		}
	}
	for _, c := range [][]string{{"ip", "netns", "list"}, {"ip", "-o", "link", "show"}, {"iptables-save"}, {"ip6tables-save"}} {
		o, _ := exec.Command(c[0], c[1:]...).Output()
		for _, l := range strings.Split(string(o), "\n") {
			if strings.HasPrefix(l, "#") || strings.HasPrefix(l, ":") || strings.Contains(l, eng.netns) {
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
