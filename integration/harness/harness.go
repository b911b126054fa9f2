//go:build integration

// Package harness runs dualstack end to end against a real dockerd, for
// the suites under integration/ and the benchmarks under bench/e2e. Main
// is each suite's TestMain: it starts a private engine (see startEngine
// for which) and the test bed the suite's topology asks for, and installs
// the end-to-end tests' plugin. The rest is what the suites share: the
// docker CLI and the engine's API, networks, addresses and pings, peer
// namespaces, and the cluster beds' hosts, store and router. As root:
// `go test -tags integration -p 1 ./integration/...`, or the make targets
// (make integration, integration-moby, ...), which pick the suites.
package harness

import (
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// PluginName is what networks name as driver and IPAM driver. Docker
	// registers a managed plugin's drivers under its full name, tag
	// included: "dualstack" alone finds the plugin but not its driver.
	PluginName = "dualstack:latest"
	// Image is the busybox image the suite imports.
	Image = "dualstack-busybox:latest"
	// TestLabel marks every network and container the suite makes, so that
	// the final sweep removes them even when a test forgot to.
	TestLabel = "dualstack.test=1"
)

// Topology is the test bed a suite runs on: its package's TestMain
// passes it to Main.
type Topology int

const (
	// OneHost is the suite's engine alone (make integration,
	// integration-moby, integration-shared, integration-nftables).
	OneHost Topology = iota
	// Fabric is the cluster test bed: the suite's engine and two more on
	// one LAN, with etcd (make integration-cluster; see bed.go).
	Fabric
	// Routed is the routed test bed: the same three engines, each on its
	// own link to a BIRD router, with etcd (make integration-bgp; see
	// router.go).
	Routed
)

// String names the topology, for messages.
func (t Topology) String() string {
	switch t {
	case Fabric:
		return "the cluster test bed (fabric)"
	case Routed:
		return "the routed test bed (BGP)"
	}
	return "one host"
}

var (
	// Eng is the suite's engine, started by Main.
	Eng *Engine
	// Bed is the cluster test bed of a Fabric or Routed suite, nil on
	// OneHost; its first host's engine is Eng.
	Bed *ClusterBed
	// Repo is the repository's root directory.
	Repo string
)

// Main is a suite's TestMain: it starts the suite's engine (see
// startEngine: DUALSTACK_ENGINE, DUALSTACK_ROOT and
// DUALSTACK_DOCKER_FIREWALL configure it) and the test bed topo asks for,
// installs the end-to-end tests' plugin on each of their engines, runs
// the tests, then removes everything it made, pass or fail. Each suite
// is a test binary of its own that pays that start once: run several
// with `go test -p 1` (the make targets do), so that their engines run
// one after the other; Main waits for any other suite's engine to go
// first anyway.
func Main(m *testing.M, topo Topology) {
	os.Exit(run(m, topo))
}

func run(m *testing.M, topo Topology) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "integration tests need root (they start a dockerd and install a plugin)")
		return 1
	}
	_, file, _, _ := runtime.Caller(0)
	Repo = filepath.Dir(filepath.Dir(filepath.Dir(file)))
	unlock, err := oneSuiteAtATime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		return 1
	}
	defer unlock()

	if Eng, err = startEngine(); err != nil {
		fmt.Fprintln(os.Stderr, "engine:", err)
		if Eng != nil {
			Eng.close()
		}
		return 1
	}
	os.Setenv("DOCKER_HOST", Eng.Host)
	defer Eng.close()
	out, _ := exec.Command("docker", "version", "--format", "client {{.Client.Version}}, engine {{.Server.Version}} (API {{.Server.APIVersion}})").CombinedOutput()
	fmt.Printf("engine: %s at %s (private: %v, root mount: %s, Docker's firewall backend: %s)\n", strings.TrimSpace(string(out)), Eng.Host, !Eng.External, Eng.Root, cmp.Or(Eng.DockerFirewall, "default"))

	if err := importBusybox(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		return 1
	}
	if topo != OneHost {
		b, err := startBed(topo)
		if b != nil {
			defer b.close()
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster test bed:", err)
			return 1
		}
		Bed = b
	}
	if err := installPlugin(); err != nil {
		fmt.Fprintln(os.Stderr, "plugin:", err)
		return 1
	}
	defer removePlugin()
	if Bed != nil {
		if err := Bed.installPlugins(); err != nil {
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
	if left := LeftoverRules(); left != "" {
		fmt.Fprintf(os.Stderr, "dualstack rules left after every network and the plugin were removed:\n%s\n", left)
		code = 1
	}
	if code != 0 {
		fmt.Printf("--- plugin log (last lines) ---\n%s\n", LastLines(Eng.PluginLog(), 80))
	}
	if code != 0 || os.Getenv("DUALSTACK_IT_KEEP_LOG") != "" {
		Eng.keepLog()
	}
	return code
}

// startBed starts the cluster test bed topo asks for around Eng.
func startBed(topo Topology) (*ClusterBed, error) {
	if Eng.External {
		return nil, fmt.Errorf("%s needs private engines: unset DOCKER_HOST", topo)
	}
	start := time.Now()
	b, err := startClusterBed(Eng.Kind, Eng.Root, topo == Routed)
	if err == nil {
		fmt.Printf("cluster test bed (started in %.1fs): %s\n", time.Since(start).Seconds(), b)
	}
	return b, err
}

// lockFile serializes the suites of a `go test` run that was not given
// -p 1, and suites run at the same time by hand: one private engine (or
// test bed) at a time.
const lockFile = "/run/dualstack-it.lock"

// oneSuiteAtATime waits until no other suite holds lockFile, takes it,
// and returns what lets it go.
func oneSuiteAtATime() (unlock func(), err error) {
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		fmt.Printf("waiting for another suite's engine to go (%s)\n", lockFile)
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("%s: %w", lockFile, err)
		}
	}
	return func() { f.Close() }, nil
}

// importBusybox makes the test image from Debian's busybox-static.
func importBusybox() error {
	if exec.Command("docker", "image", "inspect", Image).Run() == nil {
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
	cmd := exec.Command("sh", "-c", fmt.Sprintf("tar -C %s -c . | docker import -c 'CMD [\"/bin/sh\"]' - %s", root, Image))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker import: %v\n%s", err, out)
	}
	return nil
}

// installPlugin installs the end-to-end tests' plugin (make plugin-test:
// the plugin with its test seams) on Eng, with its state in the engine's
// private directory. It builds it first (make install-test) unless
// build/plugin-test is newer than every file it is made from: the make
// targets build it once before their suites, which then only install it.
func installPlugin() error {
	settings := PluginSettings()
	if why := pluginStale(); why != "" {
		fmt.Printf("plugin: make install-test (%s)\n", why)
		cmd := exec.Command("make", "-C", Repo, "install-test", "PLUGIN="+PluginName, "PLUGIN_SETTINGS="+strings.Join(settings, " "))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("make install-test: %v\n%s", err, out)
		}
		return nil
	}
	cmd := exec.Command(filepath.Join(Repo, "packaging/install.sh"), append([]string{PluginName, filepath.Join(Repo, testPluginDir)}, settings...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("install the plugin from %s: %v\n%s", testPluginDir, err, out)
	}
	return nil
}

// testPluginDir is where make plugin-test leaves the tests' plugin; its
// config.json is written last.
const testPluginDir = "build/plugin-test"

// pluginStale says why testPluginDir must be built again: it is missing,
// or a file of the repository is newer (outside build/, .git/, docs/ and
// the tests' own integration/ and bench/); "" when it is up to date.
func pluginStale() string {
	fi, err := os.Stat(filepath.Join(Repo, testPluginDir, "config.json"))
	if err != nil {
		return "no " + testPluginDir
	}
	built := fi.ModTime()
	var newer string
	_ = filepath.WalkDir(Repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(Repo, p)
		if d.IsDir() {
			switch rel {
			case "build", ".git", "docs", "integration", "bench":
				return filepath.SkipDir
			}
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().After(built) {
			newer = rel
			return filepath.SkipAll
		}
		return nil
	})
	if newer != "" {
		return newer + " is newer than " + testPluginDir
	}
	return ""
}

// MetricsAddr is the suite's plugin's METRICS_ADDR: its metrics server,
// in the engine's network namespace (the plugin's host namespace).
const MetricsAddr = "127.0.0.1:19474"

// PluginSettings are the `docker plugin set` arguments of the suite's
// plugin: its state is the engine's own; it serves metrics on
// MetricsAddr. (The engine's exec-root is below
// /run, which the plugin mounts by default.) Its log level is debug, for
// the tests' failure reports, unless DUALSTACK_IT_LOG_LEVEL says otherwise
// (bench/run.sh: info, the plugin's default, as users run it).
func PluginSettings() []string {
	level := os.Getenv("DUALSTACK_IT_LOG_LEVEL")
	if level == "" {
		level = "debug"
	}
	settings := []string{
		"state.source=" + filepath.Join(Eng.Dir, "plugin-state"),
		"LOG_LEVEL=" + level,
		"METRICS_ADDR=" + MetricsAddr,
	}
	if Bed != nil {
		settings = append(settings, Bed.pluginSettings(Bed.Hosts[0])...)
	}
	return settings
}

// LeftoverRules lists the private engine's dualstack rules and chains, in
// both backends.
func LeftoverRules() string {
	if Eng.External {
		return ""
	}
	var out []string
	for _, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		b, _ := exec.Command("ip", "netns", "exec", Eng.Netns, cmd).CombinedOutput()
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "DUALSTACK") {
				out = append(out, cmd+": "+l)
			}
		}
	}
	return strings.Join(out, "\n")
}

func removePlugin() {
	_ = exec.Command("docker", "plugin", "disable", "-f", PluginName).Run()
	_ = exec.Command("docker", "plugin", "rm", "-f", PluginName).Run()
}

// sweep removes every container and network the suite made.
func sweep() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "ps", "-aq", "--filter", "label="+TestLabel).Output(); err == nil {
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_ = exec.CommandContext(ctx, "docker", append([]string{"rm", "-f"}, ids...)...).Run()
		}
	}
	if out, err := exec.CommandContext(ctx, "docker", "network", "ls", "-q", "--filter", "label="+TestLabel).Output(); err == nil {
		for _, id := range strings.Fields(string(out)) {
			_ = exec.CommandContext(ctx, "docker", "network", "rm", id).Run()
		}
	}
}

// LastLines is the last n lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
