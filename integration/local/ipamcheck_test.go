//go:build integration

package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/ipamcheck"
)

// Issue 26, item 4: `dualstack ipam check` finds an address leaked on
// purpose (a state entry without an endpoint) and a link left on purpose,
// and nothing about the running containers; --release removes exactly
// those. The CLI runs as a user who installed the plugin runs it: the
// binary inside the plugin's rootfs, on the engine's host.

const (
	checkNet    = "ds-ipamcheck"
	leakedAddr  = "198.18.80.200"
	leakedMAC   = "02:00:5e:10:00:99"
	leftLink    = "dsv0a1b2c3d4e5f"
	leftPeer    = "ipamchk0"
	leftLinkFor = "endpoint:0a1b2c3d4e5f00000000000000000000000000000000000000000000000000"
)

func TestIPAMCheck(t *testing.T) {
	harness.CreateNetwork(t, checkNet, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", "198.18.80.0/24", "--subnet", "2001:db8:80::/64")
	harness.RunContainer(t, "ds-ipamcheck-a", checkNet)
	harness.RunContainer(t, "ds-ipamcheck-b", checkNet)
	before := map[string]string{}
	for _, c := range []string{"ds-ipamcheck-a", "ds-ipamcheck-b"} {
		v4, v6 := harness.InspectAddrs(t, c, checkNet)
		before[c] = v4.String() + " " + v6.String()
	}
	cli := newCheckCLI(t)
	if out, code := cli.run(t, "--json"); code != 0 {
		t.Fatalf("ipam check before anything was leaked: exit %d, want 0:\n%s", code, out)
	}

	// Docker asks for an address that never gets an endpoint (its release
	// lost), and a crash leaves a veth of dualstack's.
	pool := poolOf(t, cli.view(t), "198.18.80.0/24")
	cli.plugin(t, "/IpamDriver.RequestAddress", fmt.Sprintf(`{"PoolID":%q,"Address":%q,"Options":{"com.docker.network.endpoint.macaddress":%q}}`, pool, leakedAddr, leakedMAC), nil)
	inNetns(t, "ip", "link", "add", leftLink, "type", "veth", "peer", "name", leftPeer)
	t.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", leftLink).Run() })
	inNetns(t, "ip", "link", "set", leftLink, "alias", "dualstack:"+leftLinkFor)

	out, code := cli.run(t, "--json")
	var report ipamcheck.Report
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("ipam check --json: %v:\n%s", err, out)
	}
	want := []string{ipamcheck.LeakedAddress + " " + leakedAddr + " in pool " + pool, ipamcheck.LeftLink + " link " + leftLink}
	if got := findings(report); code != 1 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("ipam check: exit %d, findings\n%s\nwant exit 1 and exactly\n%s\n(full answer:\n%s)", code, strings.Join(got, "\n"), strings.Join(want, "\n"), out)
	}

	out, code = cli.run(t, "--release")
	if code != 0 || !strings.Contains(out, "2 found, all released") {
		t.Fatalf("ipam check --release: exit %d, want 0 and both released:\n%s", code, out)
	}
	if err := exec.Command("ip", "-n", harness.Eng.Netns, "link", "show", leftLink).Run(); err == nil {
		t.Errorf("link %s is still there after --release", leftLink)
	}
	for c, addrs := range before {
		v4, v6 := harness.InspectAddrs(t, c, checkNet)
		if got := v4.String() + " " + v6.String(); got != addrs {
			t.Errorf("%s has %s after --release, had %s", c, got, addrs)
		}
	}
	wantEndpointsLinked(t, cli.view(t), 2)
	if out, code := cli.run(t); code != 0 || !strings.Contains(out, "no problems found") {
		t.Fatalf("ipam check after --release: exit %d, want 0 and nothing found:\n%s", code, out)
	}
	// The address is free again: a container may have it.
	harness.RunContainer(t, "ds-ipamcheck-c", checkNet, "--ip", leakedAddr)
}

// findings lists r's findings as "kind object".
func findings(r ipamcheck.Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind+" "+f.Object)
	}
	return out
}

// poolOf is the ID of the address book's pool of subnet.
func poolOf(t *testing.T, v ipamcheck.PluginView, subnet string) string {
	t.Helper()
	for _, p := range v.Pools {
		if p.Subnet.String() == subnet {
			return p.ID
		}
	}
	t.Fatalf("the plugin's view has no pool of %s: %+v", subnet, v.Pools)
	return ""
}

// wantEndpointsLinked wants n endpoints in v, each with its host link.
func wantEndpointsLinked(t *testing.T, v ipamcheck.PluginView, n int) {
	t.Helper()
	links := map[string]bool{}
	for _, l := range v.Links {
		links[l.Name] = true
	}
	if len(v.Endpoints) != n {
		t.Errorf("the plugin has %d endpoints, want %d", len(v.Endpoints), n)
	}
	for _, ep := range v.Endpoints {
		if !links[ep.HostLink] {
			t.Errorf("endpoint %.12s lost its host link %s", ep.ID, ep.HostLink)
		}
	}
}

func inNetns(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns", "exec", harness.Eng.Netns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// checkCLI runs the binary inside the installed plugin's rootfs, which
// finds the plugin's socket itself: Docker puts managed plugins' sockets
// in /run/docker/plugins/<ID>/ whatever its exec-root.
type checkCLI struct {
	binary string
}

func newCheckCLI(t *testing.T) *checkCLI {
	t.Helper()
	if harness.Eng.External {
		t.Skip("needs a private engine: its data-root and exec-root")
	}
	id := harness.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", harness.PluginName)
	return &checkCLI{
		binary: filepath.Join(harness.Eng.DataRoot(), "plugins", id, "rootfs", "dualstack"),
	}
}

// run runs `dualstack ipam check ARGS` on the engine's host (its network
// and mount namespaces) and returns its output and exit code.
func (c *checkCLI) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	full := append([]string{harness.Eng.Netns, "env", "DOCKER_HOST=" + harness.Eng.Host, c.binary, "ipam", "check"}, args...)
	cmd := exec.Command(filepath.Join(harness.Repo, "engines/in-netns.sh"), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if exit.ExitCode() > 1 {
			t.Fatalf("dualstack ipam check %s: %v:\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
		}
		return stdout.String() + stderr.String(), exit.ExitCode()
	case err != nil:
		t.Fatalf("dualstack ipam check %s: %v:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("dualstack ipam check %s:\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	return stdout.String() + stderr.String(), 0
}

// view is the plugin's answer to GET /dualstack/ipam.
func (c *checkCLI) view(t *testing.T) ipamcheck.PluginView {
	t.Helper()
	var v ipamcheck.PluginView
	c.plugin(t, ipamcheck.ViewPath, "", &v)
	return v
}

// plugin calls the plugin at path (POST with body, GET without), through
// the plugin process's root: the socket's path under a private engine's
// exec-root may be too long for a unix socket address.
func (c *checkCLI) plugin(t *testing.T, path, body string, out any) {
	t.Helper()
	pids := harness.PluginPIDs()
	if len(pids) != 1 {
		t.Fatalf("want one plugin process, found %v", pids)
	}
	sock := fmt.Sprintf("/proc/%d/root/run/docker/plugins/dualstack.sock", pids[0])
	hc := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	req, _ := http.NewRequest(method, "http://plugin"+path, strings.NewReader(body))
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s: %v %s", method, path, resp.Status, err, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}
