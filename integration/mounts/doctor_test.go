//go:build integration

package mounts

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/doctor"
	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 26, acceptance 2: `dualstack doctor`, run as a user without a
// build runs it (the binary inside the installed plugin's rootfs, against
// the plugin's socket), names a private root mount, FORWARD ACCEPT and a
// route into a network's subnet, each with its fix; on a healthy host
// (the shared root mount, nothing changed) it finds nothing.
func TestDoctor(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs a private engine, whose namespaces the test may change")
	}
	harness.DSNet(t, "ds-doctor", "--subnet", "198.51.100.0/24")
	if harness.Eng.Root == harness.RootShared {
		out, code := runDoctor(t)
		t.Logf("dualstack doctor (exit %d):\n%s", code, out)
		if code != 0 || !strings.HasPrefix(out, "no problems found (") {
			t.Fatalf("on a healthy host: exit %d:\n%s", code, out)
		}
		out, code = runDoctor(t, "--json", "--socket", pluginSocket(t))
		var rep doctor.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Findings == nil || len(rep.Findings) != 0 || len(rep.Checks) == 0 {
			t.Fatalf("--json on a healthy host: exit %d, %v:\n%s", code, err, out)
		}
		return
	}
	policy := "ACCEPT"
	if b, _ := engineCmd("iptables", "-S", "FORWARD").Output(); strings.Contains(string(b), "-P FORWARD DROP") {
		policy = "DROP"
	}
	inEngine(t, "iptables", "-P", "FORWARD", "ACCEPT")
	t.Cleanup(func() { _ = engineCmd("iptables", "-P", "FORWARD", policy).Run() })
	inEngine(t, "ip", "route", "add", "198.51.100.0/25", "dev", "lo")
	t.Cleanup(func() { _ = engineCmd("ip", "route", "del", "198.51.100.0/25", "dev", "lo").Run() })

	out, code := runDoctor(t, "--json", "--socket", pluginSocket(t))
	var rep doctor.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	var checks []string
	for _, f := range rep.Findings {
		checks = append(checks, f.Check)
	}
	want := []string{doctor.CheckMountPropagation, doctor.CheckForwardPolicy, doctor.CheckRouteCollision}
	if !slices.Equal(checks, want) {
		t.Fatalf("findings %v, want %v:\n%s", checks, want, out)
	}
	for i, fix := range []string{"mount --make-rshared /", "iptables -P FORWARD DROP", "ip route del 198.51.100.0/25 dev lo"} {
		if f := rep.Findings[i]; !strings.Contains(f.Fix, fix) {
			t.Errorf("%s's fix does not name %q: %+v", f.Check, fix, f)
		}
	}
	out, code = runDoctor(t)
	t.Logf("dualstack doctor (exit %d):\n%s", code, out)
	for _, f := range rep.Findings {
		if !strings.Contains(out, f.Problem+" ("+f.Object+")\n  fix: "+f.Fix+"\n") {
			t.Errorf("the text output lacks %s:\n%s", f.Check, out)
		}
	}
	if code != 1 {
		t.Errorf("exit %d with findings, want 1", code)
	}
}

// runDoctor runs `dualstack doctor ARGS` the way a user without a build
// does: the binary inside the installed plugin's rootfs, in the engine's
// namespaces; it finds the plugin's socket by itself (Docker puts managed
// plugins' sockets in /run/docker/plugins/<ID>/ whatever its
// --exec-root), unless ARGS give --socket. It returns the output and the
// exit code.
func runDoctor(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := strings.TrimSpace(harness.Docker(t, "info", "-f", "{{.DockerRootDir}}"))
	bin := filepath.Join(root, "plugins", pluginID(t), "rootfs", "dualstack")
	cmd := engineCmd(append([]string{bin, "doctor"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return string(out), 1
	case err != nil:
		t.Fatalf("%s: %v: %s%s", cmd, err, out, stderr.String())
	}
	return string(out), 0
}

// pluginID is the installed plugin's ID.
func pluginID(t *testing.T) string {
	t.Helper()
	return strings.TrimSpace(harness.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", harness.PluginName))
}

// pluginSocket is the plugin's socket, as Docker makes it.
func pluginSocket(t *testing.T) string {
	t.Helper()
	return filepath.Join("/run/docker/plugins", pluginID(t), "dualstack.sock")
}

// engineCmd is a command to run in the engine's network and mount
// namespaces.
func engineCmd(args ...string) *exec.Cmd {
	return exec.Command(filepath.Join(harness.Repo, "engines/in-netns.sh"), append([]string{harness.Eng.Netns}, args...)...)
}

// inEngine runs a command in the engine's namespaces, failing t if it
// fails.
func inEngine(t *testing.T, args ...string) {
	t.Helper()
	if out, err := engineCmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}
