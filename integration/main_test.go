//go:build integration

// Package integration runs dualstack end to end against a real dockerd:
// `go test -tags integration ./integration/...` (or `make integration`), as
// root. See startEngine for which dockerd it uses.
package integration

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

const (
	// pluginName is what networks name as driver and IPAM driver. Docker
	// registers a managed plugin's drivers under its full name, tag
	// included: "dualstack" alone finds the plugin but not its driver.
	pluginName = "dualstack:latest"
	// image is the busybox image the suite imports.
	image = "dualstack-busybox:latest"
	// testLabel marks every network and container the suite makes, so that
	// the final sweep removes them even when a test forgot to.
	testLabel = "dualstack.test=1"
)

var (
	eng  *engine
	repo string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests need root (they start a dockerd and install a plugin)")
		return 1
	}
	_, file, _, _ := runtime.Caller(0)
	repo = filepath.Dir(filepath.Dir(file))

	var err error
	if eng, err = startEngine(repo); err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		if eng != nil {
			eng.close()
		}
		return 1
	}
	os.Setenv("DOCKER_HOST", eng.host)
	defer eng.close()
	out, _ := exec.Command("docker", "version", "--format", "client {{.Client.Version}}, engine {{.Server.Version}} (API {{.Server.APIVersion}})").CombinedOutput()
	fmt.Printf("engine: %s at %s (private: %v, root mount: %s, Docker's firewall backend: %s)\n", strings.TrimSpace(string(out)), eng.host, !eng.external, eng.root, cmp.Or(eng.dockerFirewall, "default"))

	if err := importBusybox(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		return 1
	}
	// DUALSTACK_CLUSTER: the cluster test bed, the fabric (1) or the
	// routed one (bgp); see clusterbed_test.go.
	if topo := os.Getenv("DUALSTACK_CLUSTER"); topo != "" {
		if topo != "1" && topo != "bgp" {
			fmt.Fprintf(os.Stderr, "DUALSTACK_CLUSTER=%s: want 1 (the fabric) or bgp (the routed bed)\n", topo)
			return 1
		}
		if eng.external {
			fmt.Fprintf(os.Stderr, "DUALSTACK_CLUSTER=%s needs private engines: unset DOCKER_HOST\n", topo)
			return 1
		}
		start := time.Now()
		b, err := startClusterBed(eng.kind, eng.root, topo == "bgp")
		if b != nil {
			defer b.close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster test bed:", err)
			return 1
		}
		bed = b
		fmt.Printf("cluster test bed (started in %.1fs): %s\n", time.Since(start).Seconds(), bed)
	}
	if err := installPlugin(); err != nil {
		fmt.Fprintln(os.Stderr, "plugin:", err)
		return 1
	}
	defer removePlugin()
	if bed != nil {
		if err := bed.installPlugins(); err != nil {
			fmt.Fprintln(os.Stderr, "plugin:", err)
			return 1
		}
	}
	defer sweep()

	code := m.Run()
	// Issue 4: with the networks gone and the plugin removed, the host's
	// packet filter holds nothing of dualstack's.
	sweep()
	removePlugin()
	if left := leftoverRules(); left != "" {
		fmt.Fprintf(os.Stderr, "dualstack rules left after every network and the plugin were removed:\n%s\n", left)
		code = 1
	}
	if code != 0 {
		fmt.Printf("--- plugin log (last lines) ---\n%s\n", lastLines(eng.pluginLog(), 80))
	}
	if code != 0 || os.Getenv("DUALSTACK_IT_KEEP_LOG") != "" {
		eng.keepLog()
	}
	return code
}

// importBusybox makes the test image from Debian's busybox-static.
func importBusybox() error {
	if exec.Command("docker", "image", "inspect", image).Run() == nil {
		return nil
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found: apt-get install busybox-static")
	}
	root, err := os.MkdirTemp("", "dualstack-busybox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		return err
	}
	list, err := exec.Command(bb, "--list").Output()
	if err != nil {
		return fmt.Errorf("busybox --list: %w", err)
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			_ = os.Symlink("busybox", filepath.Join(root, "bin", applet))
		}
	}
	cmd := exec.Command("sh", "-c", fmt.Sprintf("tar -C %s -c . | docker import -c 'CMD [\"/bin/sh\"]' - %s", root, image))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import: %v\n%s", err, out)
	}
	return nil
}

// installPlugin builds the end-to-end tests' plugin (make install-test:
// the plugin with its test seams) and enables it with its state in
// the engine's private directory.
func installPlugin() error {
	cmd := exec.Command("make", "-C", repo, "install-test", "PLUGIN="+pluginName, "PLUGIN_SETTINGS="+strings.Join(pluginSettings(), " "))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make install-test: %v\n%s", err, out)
	}
	return nil
}

// pluginSettings are the `docker plugin set` arguments of the suite's
// plugin: its state is the engine's own. (The engine's exec-root is below
// /run, which the plugin mounts by default.) Its log level is debug, for
// the tests' failure reports, unless DUALSTACK_IT_LOG_LEVEL says otherwise
// (bench/run.sh: info, the plugin's default, as users run it).
func pluginSettings() []string {
	level := os.Getenv("DUALSTACK_IT_LOG_LEVEL")
	if level == "" {
		level = "debug"
	}
	settings := []string{
		"state.source=" + filepath.Join(eng.dir, "plugin-state"),
		"LOG_LEVEL=" + level,
	}
	if bed != nil {
		settings = append(settings, bed.pluginSettings(bed.hosts[0])...)
	}
	return settings
}

// leftoverRules lists the private engine's dualstack rules and chains, in
// both backends.
func leftoverRules() string {
	if eng.external {
		return ""
	}
	var out []string
	for _, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		b, _ := exec.Command("ip", "netns", "exec", eng.netns, cmd).CombinedOutput()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "DUALSTACK") {
				out = append(out, cmd+": "+l)
			}
		}
	}
	return strings.Join(out, "\n")
}

func removePlugin() {
	_ = exec.Command("docker", "plugin", "disable", "-f", pluginName).Run()
	_ = exec.Command("docker", "plugin", "rm", "-f", pluginName).Run()
}

// sweep removes every container and network the suite made.
func sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label="+testLabel).Output(); err == nil {
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_ = exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	}
	if out, err := exec.CommandContext(ctx, "docker", "network", "ls", "-q", "--filter", "label="+testLabel).Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			_ = exec.CommandContext(ctx, "docker", "network", "rm", id).Run()
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
