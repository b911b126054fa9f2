//go:build integration

package harness

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Docker runs the docker CLI and fails the test if it fails.
func Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := DockerCmd(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// DockerFails runs the docker CLI, fails the test if it succeeds, and
// returns what it printed.
func DockerFails(t testing.TB, args ...string) string {
	t.Helper()
	out, err := DockerCmd(args...)
	if err == nil {
		t.Fatalf("docker %s succeeded, want an error; it printed:\n%s", strings.Join(args, " "), out)
	}
	return out
}

// WantMessage checks that out, what the user sees of a refusal, names
// each of words.
func WantMessage(t *testing.T, out string, words ...string) {
	t.Helper()
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	for _, w := range words {
		if !strings.Contains(out, w) {
			t.Fatalf("error message does not name %q:\n%s", w, out)
		}
	}
}

// DockerCmd runs the docker CLI (within 3 minutes) and returns what it
// printed, stdout and stderr.
func DockerCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	return string(out), err
}

// CreateNetwork creates a labelled network and removes it when the test
// ends (after its containers, which were registered later).
func CreateNetwork(t testing.TB, name string, args ...string) {
	t.Helper()
	Docker(t, append([]string{"network", "create", "--label", TestLabel}, append(args, name)...)...)
	t.Cleanup(func() { _, _ = DockerCmd("network", "rm", name) })
}

// RunContainer starts a long-running labelled container on network and
// removes it when the test ends.
func RunContainer(t testing.TB, name, network string, args ...string) {
	t.Helper()
	full := []string{"run", "-d", "--label", TestLabel, "--name", name, "--network", network}
	full = append(full, args...)
	full = append(full, Image, "sleep", "3600")
	t.Cleanup(func() { _, _ = DockerCmd("rm", "-f", name) })
	Docker(t, full...)
}

// APIAtLeast reports whether the engine's API version is 1.minor or later.
func APIAtLeast(t testing.TB, minor int) bool {
	t.Helper()
	v := Docker(t, "version", "-f", "{{.Server.APIVersion}}")
	var major, have int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &have); err != nil {
		t.Fatalf("engine API version %q: %v", v, err)
	}
	return major > 1 || (major == 1 && have >= minor)
}

// InspectAddrs returns the addresses Docker reports for container on network.
func InspectAddrs(t testing.TB, container, network string) (v4, v6 netip.Addr) {
	t.Helper()
	out := Docker(t, "inspect", "-f",
		fmt.Sprintf(`{{with index .NetworkSettings.Networks %q}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`, network), container)
	f := strings.Fields(out)
	if len(f) >= 1 {
		v4, _ = netip.ParseAddr(f[0])
	}
	if len(f) >= 2 {
		v6, _ = netip.ParseAddr(f[1])
	}
	return v4, v6
}

// ContainerAddrs returns the global addresses the container itself sees on
// its interface dev, as `ip -o addr` prints them.
func ContainerAddrs(t testing.TB, container, dev string) []netip.Prefix {
	t.Helper()
	out := Docker(t, "exec", container, "ip", "-o", "addr", "show", "dev", dev)
	var addrs []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "inet" && f[i] != "inet6" {
				continue
			}
			p, err := netip.ParsePrefix(f[i+1])
			if err == nil && !p.Addr().IsLinkLocalUnicast() {
				addrs = append(addrs, p)
			}
		}
	}
	return addrs
}

// PluginPIDs lists the running plugin processes of the engine: those whose
// command line is the plugin's entrypoint, in the engine's network namespace
// when the engine is private.
func PluginPIDs() []int {
	var pids []int
	candidates := NetnsPIDs(Eng.Netns)
	if Eng.External {
		candidates = AllPIDs()
	}
	for _, pid := range candidates {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.TrimRight(string(b), "\x00") == "/dualstack" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pluginSocket is the plugin's socket, reached through the plugin process's
// root: the path Docker uses (<exec-root>/plugins/<64-hex id>/…) can be
// longer than a unix socket address allows.
func pluginSocket() (string, error) {
	pids := PluginPIDs()
	if len(pids) != 1 {
		return "", fmt.Errorf("want one plugin process, found %v", pids)
	}
	return fmt.Sprintf("/proc/%d/root/run/docker/plugins/dualstack.sock", pids[0]), nil
}

// PluginSocket is the running plugin's socket, as the test reaches it.
func PluginSocket(t testing.TB) string {
	t.Helper()
	s, err := pluginSocket()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WaitPlugin waits until the plugin answers on its socket.
func WaitPlugin(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		sock, err := pluginSocket()
		if lastErr = err; err == nil {
			if lastErr = Activate(sock); lastErr == nil {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("plugin did not answer within 60s: %v", lastErr)
}

// Activate calls the plugin's /Plugin.Activate at its socket sock.
func Activate(sock string) error {
	c := http.Client{
		Timeout: 2 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}},
	}
	resp, err := c.Post("http://plugin/Plugin.Activate", "application/json", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}

// driverRegistrations counts the times dockerd asked the plugin for the
// capabilities of both its drivers, as it does when it registers them.
func driverRegistrations() int {
	log := Eng.PluginLog()
	return min(strings.Count(log, "msg=ok path=/NetworkDriver.GetCapabilities"), strings.Count(log, "msg=ok path=/IpamDriver.GetCapabilities"))
}

// waitRegistration waits, for up to 10 s, until dockerd has registered
// the plugin's drivers again since it had registered them before times.
// dockerd does that after the restarted plugin answers, and Moby's proxy
// of a network driver keeps the endpoints it created per registration: a
// container started in between may get an endpoint from the old one and
// be refused by the new one ("remote network driver: endpoint ... not
// found").
func waitRegistration(before int) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if driverRegistrations() > before {
			return
		}
	}
}

// KillPlugin SIGKILLs the plugin process and waits for Docker to restart
// it and to register its drivers again.
func KillPlugin(t testing.TB) {
	t.Helper()
	// /proc/PID/ns/net is the namespace of the plugin's main thread, which
	// the Go runtime may lend to a goroutine that works inside a
	// container's namespace for a moment (a join in a burst of starts,
	// seen on the cluster test bed): look again for a while.
	var pids []int
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if pids = PluginPIDs(); len(pids) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(pids) != 1 {
		var seen []string
		for _, pid := range NetnsPIDs(Eng.Netns) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			seen = append(seen, fmt.Sprintf("%d:%s", pid, strings.ReplaceAll(string(b), "\x00", " ")))
		}
		t.Fatalf("want one plugin process, found %v; the engine's namespace holds %d processes: %v", pids, len(seen), seen)
	}
	registered := driverRegistrations()
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if now := PluginPIDs(); len(now) == 1 && now[0] != pids[0] {
			WaitPlugin(t)
			waitRegistration(registered)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("Docker did not restart the plugin within 60s after SIGKILL of pid %d", pids[0])
}

// WaitRunning waits up to 20 s until container c runs again (after a
// restart), failing the test if it does not.
func WaitRunning(t *testing.T, c string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if out, _ := DockerCmd("inspect", "-f", "{{.State.Running}}", c); strings.TrimSpace(out) == "true" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not running after the restart", c)
}
