//go:build integration

package local

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/integration/harness"
)

// ipamNet creates a Docker bridge network that takes its addresses from
// dualstack's IPAM.
func ipamNet(t *testing.T, name string, args ...string) {
	t.Helper()
	harness.CreateNetwork(t, name, append([]string{"-d", "bridge", "--ipam-driver", harness.PluginName}, args...)...)
}

// wantAddrs checks what Docker reports and what the container itself has.
func wantAddrs(t *testing.T, container, network, v4, v6 string) {
	t.Helper()
	got4, got6 := harness.InspectAddrs(t, container, network)
	if got4.String() != v4 || got6.String() != v6 {
		t.Fatalf("%s: docker inspect shows %s and %s, want %s and %s", container, got4, got6, v4, v6)
	}
	have := map[string]bool{}
	for _, p := range harness.ContainerAddrs(t, container, "eth0") {
		have[p.Addr().String()] = true
	}
	if !have[v4] || !have[v6] {
		t.Fatalf("%s: eth0 inside the container has %v, want %s and %s", container, have, v4, v6)
	}
}

// Acceptance 1: gateways .1/::1, containers in start order, no reuse of a
// released address before wrap-around.
func TestSequentialAddresses(t *testing.T) {
	ipamNet(t, "ds-seq", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64")

	harness.RunContainer(t, "ds-seq-a", "ds-seq")
	routes := harness.Docker(t, "exec", "ds-seq-a", "sh", "-c", "ip route; ip -6 route")
	for _, want := range []string{"default via 192.0.2.1", "default via 2001:db8:1::1"} {
		if !strings.Contains(routes, want) {
			t.Fatalf("container routes lack %q (the gateway):\n%s", want, routes)
		}
	}
	harness.RunContainer(t, "ds-seq-b", "ds-seq")
	harness.RunContainer(t, "ds-seq-c", "ds-seq")
	wantAddrs(t, "ds-seq-a", "ds-seq", "192.0.2.2", "2001:db8:1::2")
	wantAddrs(t, "ds-seq-b", "ds-seq", "192.0.2.3", "2001:db8:1::3")
	wantAddrs(t, "ds-seq-c", "ds-seq", "192.0.2.4", "2001:db8:1::4")

	harness.Docker(t, "rm", "-f", "ds-seq-b")
	harness.RunContainer(t, "ds-seq-d", "ds-seq")
	wantAddrs(t, "ds-seq-d", "ds-seq", "192.0.2.5", "2001:db8:1::5")
}

// Acceptance 2: allocations survive plugin disable/enable, SIGKILL of the
// plugin and a dockerd restart; the next container gets the next address.
func TestAllocationsSurviveRestarts(t *testing.T) {
	ipamNet(t, "ds-keep", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:2::/64")
	harness.RunContainer(t, "ds-keep-0", "ds-keep")
	wantAddrs(t, "ds-keep-0", "ds-keep", "198.51.100.2", "2001:db8:2::2")

	restarts := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"plugin disable and enable", func(t *testing.T) {
			harness.Docker(t, "plugin", "disable", "-f", harness.PluginName)
			harness.Docker(t, "plugin", "enable", harness.PluginName)
			harness.WaitPlugin(t)
		}},
		{"SIGKILL of the plugin", func(t *testing.T) { harness.KillPlugin(t) }},
		{"dockerd restart", func(t *testing.T) {
			if harness.Eng.External {
				t.Skip("restarting dockerd needs a private engine")
			}
			if err := harness.Eng.Restart(); err != nil {
				t.Fatal(err)
			}
			harness.WaitPlugin(t)
		}},
	}
	held := []string{"198.51.100.2"}
	held6 := []string{"2001:db8:2::2"}
	parent := t
	for i, r := range restarts {
		t.Run(r.name, func(t *testing.T) {
			r.do(t)
			name := "ds-keep-" + strconv.Itoa(i+1)
			// Owned by the parent test: the container must outlive this step.
			harness.RunContainer(parent, name, "ds-keep")
			v4, v6 := "198.51.100."+strconv.Itoa(i+3), "2001:db8:2::"+strconv.Itoa(i+3)
			wantAddrs(t, name, "ds-keep", v4, v6)
			// Every earlier allocation, gateways included, is still held.
			for _, a := range append([]string{"198.51.100.1"}, held...) {
				out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-keep", "--ip", a, harness.Image, "true")
				if !strings.Contains(out, "already in use") {
					t.Fatalf("--ip %s after %s: want an 'already in use' error, got:\n%s", a, r.name, out)
				}
			}
			// A fixed, free --ip keeps the IPv4 request (made first) from
			// taking the next address in sequence; it is released again.
			for _, a := range append([]string{"2001:db8:2::1"}, held6...) {
				out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-keep", "--ip", "198.51.100.200", "--ip6", a, harness.Image, "true")
				if !strings.Contains(out, "already in use") {
					t.Fatalf("--ip6 %s after %s: want an 'already in use' error, got:\n%s", a, r.name, out)
				}
			}
			held, held6 = append(held, v4), append(held6, v6)
			// The first container still answers on its address.
			harness.Docker(t, "exec", name, "ping", "-c", "1", "-W", "2", "198.51.100.2")
		})
	}
}

// subnets returns the subnets Docker reports for network.
func subnets(t *testing.T, network string) (v4, v6 netip.Prefix) {
	t.Helper()
	out := harness.Docker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", network)
	for _, s := range strings.Fields(out) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatalf("network %s: bad subnet %q", network, s)
		}
		if p.Addr().Is4() {
			v4 = p
		} else {
			v6 = p
		}
	}
	if !v4.IsValid() || !v6.IsValid() {
		t.Fatalf("network %s: want an IPv4 and an IPv6 subnet, inspect shows %q", network, out)
	}
	return v4, v6
}

// Acceptance 3: networks with no subnet get distinct default IPv4 pools
// and distinct /64s of the host's ULA /48, before and after a plugin restart.
func TestDefaultPools(t *testing.T) {
	machineID, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		t.Skipf("no /etc/machine-id to derive the ULA prefix from: %v", err)
	}
	ula := addrbook.ULAPrefix(strings.TrimSpace(string(machineID)))

	ipamNet(t, "ds-auto-1", "--ipv6")
	ipamNet(t, "ds-auto-2", "--ipv6")
	a4, a6 := subnets(t, "ds-auto-1")
	b4, b6 := subnets(t, "ds-auto-2")
	check := func(nets [][2]netip.Prefix) {
		t.Helper()
		for i, n := range nets {
			if n[1].Bits() != 64 || !ula.Contains(n[1].Addr()) {
				t.Fatalf("IPv6 pool %s is not a /64 of the host's ULA %s", n[1], ula)
			}
			for _, m := range nets[:i] {
				if n[0].Overlaps(m[0]) || n[1].Overlaps(m[1]) {
					t.Fatalf("default pools overlap: %v and %v", n, m)
				}
			}
		}
	}
	check([][2]netip.Prefix{{a4, a6}, {b4, b6}})

	harness.KillPlugin(t)
	ipamNet(t, "ds-auto-3", "--ipv6")
	c4, c6 := subnets(t, "ds-auto-3")
	check([][2]netip.Prefix{{a4, a6}, {b4, b6}, {c4, c6}})
	// The pools are still held: a container on the first network gets the
	// first address after the gateway.
	harness.RunContainer(t, "ds-auto-c", "ds-auto-1")
	first4, first6 := a4.Addr().Next().Next(), a6.Addr().Next().Next()
	wantAddrs(t, "ds-auto-c", "ds-auto-1", first4.String(), first6.String())
}

// Acceptance 4: bad input fails with a message that names the problem, and
// leaves nothing allocated.
func TestBadInput(t *testing.T) {
	t.Run("prefix length 129", func(t *testing.T) {
		out := harness.DockerFails(t, "network", "create", "-d", "bridge", "--ipam-driver", harness.PluginName, "--ipv6",
			"--subnet", "2001:db8:9::/129", "ds-bad")
		harness.WantMessage(t, out, "2001:db8:9::/129")
		noNetwork(t, "ds-bad")
	})
	t.Run("ip-range outside the subnet", func(t *testing.T) {
		out := harness.DockerFails(t, "network", "create", "-d", "bridge", "--ipam-driver", harness.PluginName,
			"--subnet", "192.0.2.0/24", "--ip-range", "198.51.100.0/25", "ds-bad")
		harness.WantMessage(t, out, "198.51.100.0/25")
		noNetwork(t, "ds-bad")
		// Nothing was held: the same subnet can be used.
		ipamNet(t, "ds-bad-ok", "--subnet", "192.0.2.0/24")
	})
	t.Run("subnet overlapping a held pool", func(t *testing.T) {
		ipamNet(t, "ds-held", "--subnet", "192.0.2.0/24")
		out := harness.DockerFails(t, "network", "create", "-d", "bridge", "--ipam-driver", harness.PluginName,
			"--subnet", "192.0.2.128/25", "ds-bad")
		harness.WantMessage(t, out, "192.0.2.128/25", "192.0.2.0/24", "overlaps")
		noNetwork(t, "ds-bad")
	})

	ipamNet(t, "ds-addr", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:3::/64")
	harness.RunContainer(t, "ds-addr-a", "ds-addr")
	wantAddrs(t, "ds-addr-a", "ds-addr", "192.0.2.2", "2001:db8:3::2")
	addrCases := []struct {
		name string
		args []string
		want []string
	}{
		{"ip outside the subnet", []string{"--ip", "198.51.100.7"}, []string{"198.51.100.7"}},
		{"ip already in use", []string{"--ip", "192.0.2.2"}, []string{"192.0.2.2", "already in use"}},
		{"ip6 that is not an address", []string{"--ip6", "2001:db8:3::zz"}, []string{"2001:db8:3::zz"}},
	}
	next := 3
	for _, c := range addrCases {
		t.Run(c.name, func(t *testing.T) {
			name := "ds-addr-bad"
			t.Cleanup(func() { _, _ = harness.DockerCmd("rm", "-f", name) })
			out := harness.DockerFails(t, append(append([]string{"run", "-d", "--label", harness.TestLabel, "--name", name, "--network", "ds-addr"}, c.args...), harness.Image, "sleep", "60")...)
			harness.WantMessage(t, out, c.want...)
			_, _ = harness.DockerCmd("rm", "-f", name)
			// Nothing was allocated: the next container gets the next address.
			ok := "ds-addr-ok-" + c.name[:2]
			harness.RunContainer(t, ok, "ds-addr")
			wantAddrs(t, ok, "ds-addr", "192.0.2."+strconv.Itoa(next), "2001:db8:3::"+strconv.Itoa(next))
			next++
		})
	}

	t.Run("exhausted /30", func(t *testing.T) {
		ipamNet(t, "ds-tiny", "--subnet", "198.51.100.0/30")
		harness.RunContainer(t, "ds-tiny-a", "ds-tiny")
		if v4, _ := harness.InspectAddrs(t, "ds-tiny-a", "ds-tiny"); v4.String() != "198.51.100.2" {
			t.Fatalf("first container on a /30 got %s, want 198.51.100.2", v4)
		}
		t.Cleanup(func() { _, _ = harness.DockerCmd("rm", "-f", "ds-tiny-b") })
		out := harness.DockerFails(t, "run", "-d", "--label", harness.TestLabel, "--name", "ds-tiny-b", "--network", "ds-tiny", harness.Image, "sleep", "60")
		harness.WantMessage(t, out, "198.51.100.0/30", "exhausted")
	})
}

func noNetwork(t *testing.T, name string) {
	t.Helper()
	if out, err := harness.DockerCmd("network", "inspect", name); err == nil {
		t.Fatalf("network %s exists after a failed create:\n%s", name, out)
	}
}

// Acceptance (issue 26, releases): make release builds the plugin for
// amd64 and arm64 and pushes both tags to a registry (Debian's
// docker-registry, in the engine's network namespace); the amd64 one
// installs beside the running plugin under an alias; the running
// installation upgrades to it (disable -f, upgrade, enable) with ten
// containers running on a dualstack network: each keeps every address it
// had and its connectivity in both families, the next container gets the
// next address, and an address in use is still refused: state lives in
// the host's state directory, not in the plugin's rootfs. It runs on both
// engines, about 30 seconds each: the second run keeps the rootfs the
// first one made (make release reuses it while the binary is the same).
func TestAllocationsSurvivePluginUpgrade(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs a private engine to run a registry beside")
	}
	if _, err := exec.LookPath("qemu-aarch64-static"); err != nil {
		t.Skip("make release checks the arm64 plugin with qemu-aarch64-static: apt-get install qemu-user-static")
	}
	const addr = "127.0.0.1:5999"
	registryGet := startRegistry(t, addr)

	start := time.Now()
	cmd := exec.Command("make", "-C", harness.Repo, "release", "VERSION=e2e", "REGISTRY="+addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release: %v\n%s", err, out)
	}
	t.Logf("make release took %s", time.Since(start).Round(100*time.Millisecond))
	var tags struct{ Tags []string }
	if err := json.Unmarshal([]byte(registryGet("/v2/dualstack/tags/list")), &tags); err != nil {
		t.Fatalf("registry tags of dualstack: %v", err)
	}
	if slices.Sort(tags.Tags); !slices.Equal(tags.Tags, []string{"e2e-amd64", "e2e-arm64"}) {
		t.Fatalf("registry has dualstack tags %v, want e2e-amd64 and e2e-arm64", tags.Tags)
	}
	remote := addr + "/dualstack:e2e-amd64"
	harness.Docker(t, "plugin", "install", "--alias", "ds-release", "--grant-all-permissions", "--disable", remote)
	got := harness.Docker(t, "plugin", "inspect", "-f", "{{.PluginReference}} {{.Enabled}}", "ds-release")
	harness.Docker(t, "plugin", "rm", "ds-release")
	if got != remote+" false" {
		t.Fatalf("plugin installed with --alias ds-release --disable: reference and enabled %q, want %q", got, remote+" false")
	}

	const n = 10
	harness.DSNet(t, "ds-up", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:4::/64")
	before := map[string]string{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("ds-up-%d", i)
		harness.RunContainer(t, name, "ds-up")
		before[name] = upgradeAddrs(t, name)
	}
	wantAddrs(t, "ds-up-0", "ds-up", "198.51.100.2", "2001:db8:4::2")

	start = time.Now()
	harness.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	harness.Docker(t, "plugin", "upgrade", "--grant-all-permissions", "--skip-remote-check", harness.PluginName, remote)
	// An upgrade takes the new version's settings: set ours again.
	harness.Docker(t, append([]string{"plugin", "set", harness.PluginName}, harness.PluginSettings()...)...)
	harness.Docker(t, "plugin", "enable", harness.PluginName)
	harness.WaitPlugin(t)
	t.Logf("disable, upgrade, enable took %s", time.Since(start).Round(100*time.Millisecond))
	if ref := harness.Docker(t, "plugin", "inspect", "-f", "{{.PluginReference}}", harness.PluginName); ref != remote {
		t.Fatalf("plugin reference after upgrade is %q, want %s", ref, remote)
	}
	wantReleaseRunning(t, "dualstack e2e linux/amd64")

	for name, was := range before {
		if now := upgradeAddrs(t, name); now != was {
			t.Errorf("%s: addresses before the upgrade %s, after %s", name, was, now)
		}
	}
	v4, v6 := harness.InspectAddrs(t, fmt.Sprintf("ds-up-%d", n-1), "ds-up")
	harness.Ping(t, "ds-up-0", v4.String(), v6.String())
	harness.RunContainer(t, "ds-up-new", "ds-up")
	wantAddrs(t, "ds-up-new", "ds-up", "198.51.100.12", "2001:db8:4::c")
	out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-up", "--ip", "198.51.100.2", harness.Image, "true")
	harness.WantMessage(t, out, "198.51.100.2", "already in use")
}

// startRegistry runs Debian's docker-registry in the engine's network
// namespace on addr until the test ends, and returns what GETs a path of
// its HTTP API there (failing the test if it cannot).
func startRegistry(t *testing.T, addr string) func(path string) string {
	t.Helper()
	registry, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Skip("docker-registry not installed (apt-get install docker-registry)")
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(
		"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	inNetns := filepath.Join(harness.Repo, "engines/in-netns.sh")
	reg := exec.Command(inNetns, harness.Eng.Netns, registry, "serve", config)
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Process.Kill(); _ = reg.Wait() })
	get := func(path string) (string, error) {
		out, err := exec.Command(inNetns, harness.Eng.Netns, "busybox", "wget", "-q", "-O", "-", "http://"+addr+path).CombinedOutput()
		return string(out), err
	}
	harness.Within(t, 10*time.Second, func() error { _, err := get("/v2/"); return err })
	return func(path string) string {
		t.Helper()
		out, err := get(path)
		if err != nil {
			t.Fatalf("GET http://%s%s in the engine's network namespace: %v\n%s", addr, path, err, out)
		}
		return out
	}
}

// upgradeAddrs is what a container has: its global addresses on eth0, as
// it sees them and as docker inspect shows them.
func upgradeAddrs(t *testing.T, container string) string {
	t.Helper()
	var have []string
	for _, p := range harness.ContainerAddrs(t, container, "eth0") {
		have = append(have, p.String())
	}
	slices.Sort(have)
	v4, v6 := harness.InspectAddrs(t, container, "ds-up")
	if len(have) != 2 || !v4.Is4() || !v6.Is6() {
		t.Fatalf("%s: eth0 has %v, docker inspect shows %s and %s: want an IPv4 and an IPv6 address", container, have, v4, v6)
	}
	return fmt.Sprintf("eth0 %v, inspect %s %s", have, v4, v6)
}

// wantReleaseRunning checks what `dualstack version` says of the binary
// in the running plugin's rootfs.
func wantReleaseRunning(t *testing.T, want string) {
	t.Helper()
	id := harness.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", harness.PluginName)
	bin := filepath.Join(harness.Eng.Dir, "data/plugins", id, "rootfs/dualstack")
	out, err := exec.Command(bin, "version").CombinedOutput()
	if got := strings.TrimSpace(string(out)); err != nil || got != want {
		t.Fatalf("%s version: %q (%v), want %q", bin, got, err, want)
	}
}
