//go:build integration

package local

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 25, item 5: sticky addresses. A container that goes and comes
// back under its name on a sticky_addresses network gets the same
// addresses in every subnet, on an engine that sends container names to
// the IPAM (API 1.52); on older ones it gets addresses as without the
// option, and the plugin says why.

// stickyRunSubnets are the docker run part's; examples/sticky.yaml has
// 198.18.77.0/24, 2001:db8:77:1::/64 and 2001:db8:77:2::/64.
var stickyRunSubnets = []string{"198.18.78.0/24", "2001:db8:78:1::/64", "2001:db8:78:2::/64"}

func TestStickyAddresses(t *testing.T) {
	if !harness.APIAtLeast(t, 52) {
		stickyWithoutNames(t)
		return
	}
	t.Run("compose", stickyCompose)
	t.Run("docker run", stickyRun)
}

// stickyAddrs returns the global addresses container c sees on eth0,
// sorted, and wants one in each of the network's 3 subnets.
func stickyAddrs(t *testing.T, c string) string {
	t.Helper()
	var out []string
	for _, a := range harness.ContainerAddrs(t, c, "eth0") {
		out = append(out, a.String())
	}
	if len(out) != 3 {
		t.Fatalf("container %s has %v, want one address in each of the network's 3 subnets", c, out)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// composeState maps each container of project, by name, to its ID and
// its addresses.
func composeState(t *testing.T, project string) (ids, addrs map[string]string) {
	t.Helper()
	list := harness.Docker(t, "ps", "-q", "--filter", "label=com.docker.compose.project="+project)
	ids, addrs = map[string]string{}, map[string]string{}
	for _, id := range strings.Fields(list) {
		name := strings.TrimPrefix(harness.Docker(t, "inspect", "-f", "{{.Name}}", id), "/")
		ids[name], addrs[name] = id, stickyAddrs(t, id)
	}
	return ids, addrs
}

// stickyCompose: examples/sticky.yaml's 20 containers keep every address
// across three `up -d --force-recreate`.
func stickyCompose(t *testing.T) {
	tool, ok := composeTools(t)["compose-v5"]
	if !ok {
		t.Skip("compose v5 is not installed (make integration-moby builds it)")
	}
	const project = "dssticky"
	t.Cleanup(func() {
		cmd := exec.Command(tool, "-p", project, "-f", filepath.Join(harness.Repo, "examples", "sticky.yaml"), "down")
		cmd.Env = append(cmd.Environ(), "IMAGE="+harness.Image, "DOCKER_HOST="+harness.Eng.Host)
		_ = cmd.Run()
	})
	composeFile(t, tool, "sticky.yaml", project, "up", "-d")
	ids, first := composeState(t, project)
	if len(first) != 20 {
		t.Fatalf("%d containers up, want examples/sticky.yaml's 20", len(first))
	}
	for round := 1; round <= 3; round++ {
		composeFile(t, tool, "sticky.yaml", project, "up", "-d", "--force-recreate")
		newIDs, got := composeState(t, project)
		for name, want := range first {
			switch {
			case newIDs[name] == "" || newIDs[name] == ids[name]:
				t.Fatalf("recreate %d: container %s is %q, was %s: not recreated", round, name, newIDs[name], ids[name])
			case got[name] != want:
				t.Errorf("recreate %d: %s has %s, had %s", round, name, got[name], want)
			}
		}
		ids = newIDs
	}
	composeFile(t, tool, "sticky.yaml", project, "down")
}

// stickyRun: `docker rm -f X; docker run --name X` keeps X's addresses,
// and a container of another name started meanwhile gets others;
// `dualstack sticky` shows both.
func stickyRun(t *testing.T) {
	const network = "ds-sticky"
	harness.CreateNetwork(t, network, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", stickyRunSubnets[0], "--subnet", stickyRunSubnets[1], "--subnet", stickyRunSubnets[2], "-o", "sticky_addresses=true")
	harness.RunContainer(t, "sticky-x", network)
	x := stickyAddrs(t, "sticky-x")
	harness.Docker(t, "rm", "-f", "sticky-x")
	harness.RunContainer(t, "sticky-y", network)
	y := stickyAddrs(t, "sticky-y")
	for _, a := range strings.Fields(y) {
		if slices.Contains(strings.Fields(x), a) {
			t.Fatalf("sticky-y got %s, kept for sticky-x (%s)", a, x)
		}
	}
	harness.RunContainer(t, "sticky-x", network)
	if again := stickyAddrs(t, "sticky-x"); again != x {
		t.Fatalf("sticky-x came back with %s, had %s", again, x)
	}
	harness.Docker(t, "rm", "-f", "sticky-y")
	cli := filepath.Join(harness.Repo, "build", "dualstack")
	out, err := exec.Command(cli, "sticky", "--state-dir", filepath.Join(harness.Eng.Dir, "plugin-state")).CombinedOutput()
	if err != nil {
		t.Fatalf("%s sticky: %v: %s", cli, err, out)
	}
	t.Logf("dualstack sticky:\n%s", out)
	line := func(name string) string {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "  "+name+"  ") {
				return l
			}
		}
		t.Fatalf("dualstack sticky shows no reservation of %s", name)
		return ""
	}
	if id := harness.Docker(t, "network", "inspect", "-f", "{{.ID}}", network); !strings.Contains(string(out), "network "+id[:12]+" ") {
		t.Errorf("dualstack sticky does not name network %s (%s)", network, id[:12])
	}
	lx, ly := line("sticky-x"), line("sticky-y")
	for _, a := range strings.Fields(x) {
		if !strings.Contains(lx, strings.Split(a, "/")[0]) {
			t.Errorf("dualstack sticky does not show sticky-x's %s", a)
		}
	}
	if !strings.HasSuffix(lx, "in use") || !strings.Contains(ly, "kept until") {
		t.Errorf("dualstack sticky: sticky-x is to be in use, sticky-y kept")
	}
}

// stickyWithoutNames: on an engine that sends no container names to the
// IPAM (before API 1.52), a sticky network still gives addresses, and the
// plugin says once per pool asked (IPv4, the first IPv6 subnet) that the
// option has no effect.
func stickyWithoutNames(t *testing.T) {
	const network = "ds-sticky-old"
	const warning = "the engine sends no container names to IPAM plugins"
	before := strings.Count(harness.Eng.PluginLog(), warning)
	harness.CreateNetwork(t, network, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", stickyRunSubnets[0], "--subnet", stickyRunSubnets[1], "--subnet", stickyRunSubnets[2], "-o", "sticky_addresses=true")
	harness.RunContainer(t, "sticky-old", network)
	stickyAddrs(t, "sticky-old")
	harness.Docker(t, "rm", "-f", "sticky-old")
	harness.RunContainer(t, "sticky-old", network)
	stickyAddrs(t, "sticky-old")
	if n := strings.Count(harness.Eng.PluginLog(), warning) - before; n != 2 {
		t.Fatalf("the plugin's log holds %d warnings %q, want one for each pool Docker asked (2):\n%s", n, warning, harness.Eng.PluginLog())
	}
}
