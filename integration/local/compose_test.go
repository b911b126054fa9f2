//go:build integration

package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// composeSubnets are examples/compose.yaml's.
var composeSubnets = []string{"192.0.2.0/24", "2001:db8:a1::/64", "2001:db8:a2::/64", "2001:db8:a3::/64"}

// composeTools are the compose implementations the suite drives: compose
// v5 (the CLI plugin build-moby.sh builds, run on its own) and Debian's
// docker-compose 1.29.
func composeTools(t *testing.T) map[string]string {
	t.Helper()
	tools := map[string]string{}
	if p := filepath.Join(harness.MobyBinDir(), "cli-plugins", "docker-compose"); fileExists(p) {
		tools["compose-v5"] = p
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		tools["docker-compose-1.29"] = p
	}
	return tools
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func compose(t *testing.T, tool, project string, args ...string) string {
	t.Helper()
	return composeFile(t, tool, "compose.yaml", project, args...)
}

// composeFile runs tool on examples/file for project.
func composeFile(t *testing.T, tool, file, project string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	full := append([]string{"-p", project, "-f", filepath.Join(harness.Repo, "examples", file)}, args...)
	cmd := exec.CommandContext(ctx, tool, full...)
	cmd.Env = append(os.Environ(), "IMAGE="+harness.Image, "DOCKER_HOST="+harness.Eng.Host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(tool), strings.Join(full, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Issue 6, build 2: examples/compose.yaml with compose v5 and
// docker-compose 1.29: name resolution (A and AAAA), pings over every
// family and subnet, and nothing left after `down`.
func TestCompose(t *testing.T) {
	tools := composeTools(t)
	for _, name := range []string{"compose-v5", "docker-compose-1.29"} {
		t.Run(name, func(t *testing.T) {
			tool, ok := tools[name]
			if !ok {
				t.Skipf("%s is not installed (make integration-moby builds compose v5; apt-get install docker-compose)", name)
			}
			before := ""
			if !harness.Eng.External {
				before = hostSnapshot(t)
			}
			const project = "dscompose"
			t.Cleanup(func() {
				cmd := exec.Command(tool, "-p", project, "-f", filepath.Join(harness.Repo, "examples", "compose.yaml"), "down")
				cmd.Env = append(os.Environ(), "IMAGE="+harness.Image, "DOCKER_HOST="+harness.Eng.Host)
				_ = cmd.Run()
			})
			compose(t, tool, project, "up", "-d")
			web := compose(t, tool, project, "ps", "-q", "web")
			client := compose(t, tool, project, "ps", "-q", "client")
			if web == "" || client == "" {
				t.Fatalf("services not running: web %q client %q", web, client)
			}
			addrs := harness.ContainerAddrs(t, web, "eth0")
			if len(addrs) != len(composeSubnets) {
				t.Fatalf("web has %v, want one address in each of %v", addrs, composeSubnets)
			}
			// Docker's DNS answers both families for the service name.
			out := harness.Docker(t, "exec", client, "nslookup", "web")
			v4, v6 := harness.InspectAddrs(t, web, project+"_net")
			if !strings.Contains(out, v4.String()) || !strings.Contains(out, v6.String()) {
				t.Errorf("nslookup web from client: want A %s and AAAA %s:\n%s", v4, v6, out)
			}
			var targets []string
			for _, a := range addrs {
				targets = append(targets, a.Addr().String())
			}
			harness.Ping(t, client, targets...)

			compose(t, tool, project, "down")
			if out := harness.Docker(t, "network", "ls", "-q", "--filter", "name="+project); out != "" {
				t.Errorf("networks left after down: %s", out)
			}
			if !harness.Eng.External {
				if after := hostSnapshot(t); after != before {
					t.Errorf("compose down left the host changed:\n%s", diffLines(before, after))
				}
			}
		})
	}
}
