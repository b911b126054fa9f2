//go:build integration

package local

import (
	"context"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 25: gateway priority (Docker 28, API 1.48). Docker sends
// ProgramExternalConnectivity only to the container's gateway endpoint and
// revokes it when the gateway moves; published ports follow the gateway,
// as with Docker's own bridge.

// The outside host of these tests: a namespace on a link of the engine's
// host, which reaches published ports at the host's address.
const (
	gwHost4    = "203.0.113.1"
	gwOutside4 = "203.0.113.2"
)

// gwOutside makes the outside host and returns its namespace's path.
func gwOutside(t *testing.T) string {
	t.Helper()
	o := harness.NewPeerNS(t, "dsgpout-", "dsgp0", "dsgp1")
	harness.IPRun(t, "-n", harness.Eng.Netns, "addr", "add", gwHost4+"/24", "dev", "dsgp0")
	harness.IPRun(t, "-n", harness.Eng.Netns, "link", "set", "dsgp0", "up")
	harness.IPRun(t, "-n", o.Name, "addr", "add", gwOutside4+"/24", "dev", "dsgp1")
	harness.IPRun(t, "-n", o.Name, "link", "set", "dsgp1", "up")
	return o.Path
}

// needGwPriority skips on engines without gw_priority (Engine 20.10).
func needGwPriority(t *testing.T) {
	t.Helper()
	if !harness.APIAtLeast(t, 48) {
		t.Skip("gw_priority needs Docker 28 (API 1.48); Engine 20.10 has a single gateway endpoint and publishes through it, which the other published-port tests cover")
	}
}

// defaultVia returns the next hop of the container's default route in
// family ("-4" or "-6").
func defaultVia(t *testing.T, container, family string) string {
	t.Helper()
	f := strings.Fields(harness.Docker(t, "exec", container, "ip", family, "route", "show", "default"))
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			return f[i+1]
		}
	}
	return ""
}

// wantDefaults checks the container's default routes, both families.
func wantDefaults(t *testing.T, container, via4, via6 string) {
	t.Helper()
	if got := defaultVia(t, container, "-4"); got != via4 {
		t.Errorf("%s: IPv4 default route via %q, want via %s", container, got, via4)
	}
	if got := defaultVia(t, container, "-6"); got != via6 {
		t.Errorf("%s: IPv6 default route via %q, want via %s", container, got, via6)
	}
}

// serveByAddress starts in container one HTTP server on port 80 of each
// of its IPv4 addresses, each answering with the name given: who answers
// a published port tells which network's rules carried it. A listening
// socket bound to an address keeps serving when the address comes back
// after a disconnect and connect (pinned with --ip).
func serveByAddress(t *testing.T, container string, names map[string]string) {
	t.Helper()
	script := "true"
	for addr, name := range names {
		script += " && mkdir -p /www/" + name + " && echo " + name + " > /www/" + name + "/index.html && httpd -p " + addr + ":80 -h /www/" + name
	}
	harness.Docker(t, "exec", container, "sh", "-c", script)
}

// dsPublishes reports whether dualstack's rules publish port 80 of addr.
func dsPublishes(t *testing.T, addr string) bool {
	t.Helper()
	if strings.Contains(addr, ":") {
		addr = "[" + addr + "]"
	}
	return strings.Contains(harness.RulesIn(t), "--to-destination "+addr+":80")
}

// TestGatewayPriority: a container on a Docker bridge network and a
// dualstack network, port 80 published. With dualstack's network as the
// gateway (the higher gw-priority) the default routes of both families
// go through dualstack's gateways and the published port reaches the
// container through dualstack's rules; once Docker's bridge is the
// gateway (docker network connect --gw-priority) the routes move, no rule
// of dualstack's names the container any more, and the port is Docker's.
func TestGatewayPriority(t *testing.T) {
	needGwPriority(t)
	outside := gwOutside(t)
	harness.AcceptForwarding(t)
	harness.DSNet(t, "ds-gp", "--ipv6", "--subnet", "198.18.71.0/24", "--subnet", "2001:db8:71::/64")
	harness.CreateNetwork(t, "dk-gp", "-d", "bridge", "--ipv6", "--subnet", "198.18.72.0/24", "--subnet", "2001:db8:72::/64")
	const c, ds4, ds6, dk4 = "gp-srv", "198.18.71.10", "2001:db8:71::10", "198.18.72.10"
	t.Cleanup(func() { _, _ = harness.DockerCmd("rm", "-f", c) })
	harness.Docker(t, "run", "-d", "--label", harness.TestLabel, "--name", c, "-p", "8095:80",
		"--network", "name=ds-gp,gw-priority=10,ip="+ds4+",ip6="+ds6,
		"--network", "name=dk-gp,ip="+dk4, harness.Image, "sleep", "3600")
	serveByAddress(t, c, map[string]string{ds4: "ds", dk4: "dk"})
	published := harness.HostPort(gwHost4, "8095")

	wantDefaults(t, c, "198.18.71.1", "2001:db8:71::1")
	if !dsPublishes(t, ds4) || !dsPublishes(t, ds6) {
		t.Errorf("dualstack's network is the gateway, but its rules do not publish the container's port 80:\n%s", harness.RulesIn(t))
	}
	harness.WantReach(t, "published port, dualstack's network the gateway", outside, published, "ds")

	// Docker's bridge takes over: reconnected with a higher priority.
	harness.Docker(t, "network", "disconnect", "dk-gp", c)
	harness.Docker(t, "network", "connect", "--gw-priority", "20", "--ip", dk4, "dk-gp", c)
	wantDefaults(t, c, "198.18.72.1", "2001:db8:72::1")
	if r := harness.RulesIn(t); strings.Contains(r, ds4) || strings.Contains(r, ds6) {
		t.Errorf("Docker's bridge is the gateway, but dualstack's rules still name the container:\n%s", r)
	}
	harness.WantReach(t, "published port, Docker's bridge the gateway", outside, published, "dk")

	// And back: dualstack's network reconnected above Docker's.
	harness.Docker(t, "network", "disconnect", "ds-gp", c)
	harness.Docker(t, "network", "connect", "--gw-priority", "30", "--ip", ds4, "--ip6", ds6, "ds-gp", c)
	wantDefaults(t, c, "198.18.71.1", "2001:db8:71::1")
	harness.WantReach(t, "published port, dualstack's network the gateway again", outside, published, "ds")

	harness.Docker(t, "rm", "-f", c)
	if r := harness.RulesIn(t); strings.Contains(r, ds4) {
		t.Errorf("rules left after the container went:\n%s", r)
	}
}

// TestGatewayPriorityCompose: examples/gw-priority.yaml with compose v5:
// of two services on the same two networks, the one that gives
// dualstack's network the higher gw_priority has its default routes and
// its published port there; the other has them on Docker's bridge, and
// dualstack publishes nothing for it.
func TestGatewayPriorityCompose(t *testing.T) {
	needGwPriority(t)
	tool, ok := composeTools(t)["compose-v5"]
	if !ok {
		t.Skip("compose v5 is not installed (make integration-moby builds it)")
	}
	const project, file = "dsgwprio", "gw-priority.yaml"
	t.Cleanup(func() { _ = composeCmd(context.Background(), tool, file, project, "down").Run() })
	composeFile(t, tool, file, project, "up", "-d")
	viaDS := composeFile(t, tool, file, project, "ps", "-q", "via-dualstack")
	viaDK := composeFile(t, tool, file, project, "ps", "-q", "via-docker")
	wantDefaults(t, viaDS, "198.18.73.1", "2001:db8:73::1")
	wantDefaults(t, viaDK, "198.18.74.1", "2001:db8:74::1")
	ds4, _ := harness.InspectAddrs(t, viaDS, project+"_ds")
	other4, _ := harness.InspectAddrs(t, viaDK, project+"_ds")
	if !dsPublishes(t, ds4.String()) {
		t.Errorf("via-dualstack's port is not published by dualstack:\n%s", harness.RulesIn(t))
	}
	if r := harness.RulesIn(t); strings.Contains(r, other4.String()) {
		t.Errorf("dualstack publishes via-docker's port, whose gateway is Docker's bridge:\n%s", r)
	}
	composeFile(t, tool, file, project, "down")
}

// TestGatewayPrioritySplit: Docker's bridge without IPv6 above a
// dual-stack dualstack network: Docker's bridge is the IPv4 gateway,
// dualstack's the IPv6 one. The container starts (each network publishes
// the port in its family, neither takes the other's host port), its
// default routes split so, and dualstack publishes in IPv6 only.
func TestGatewayPrioritySplit(t *testing.T) {
	needGwPriority(t)
	outside := gwOutside(t)
	harness.AcceptForwarding(t)
	harness.DSNet(t, "ds-gs", "--ipv6", "--subnet", "198.18.81.0/24", "--subnet", "2001:db8:81::/64")
	harness.CreateNetwork(t, "dk-gs", "-d", "bridge", "--subnet", "198.18.82.0/24")
	const c, ds4, ds6, dk4 = "gs-srv", "198.18.81.10", "2001:db8:81::10", "198.18.82.10"
	t.Cleanup(func() { _, _ = harness.DockerCmd("rm", "-f", c) })
	harness.Docker(t, "run", "-d", "--label", harness.TestLabel, "--name", c, "-p", "8099:80",
		"--network", "name=ds-gs,gw-priority=10,ip="+ds4+",ip6="+ds6,
		"--network", "name=dk-gs,gw-priority=20,ip="+dk4, harness.Image, "sleep", "3600")
	serveByAddress(t, c, map[string]string{ds4: "ds", dk4: "dk"})
	wantDefaults(t, c, "198.18.82.1", "2001:db8:81::1")
	if dsPublishes(t, ds4) || !dsPublishes(t, ds6) {
		t.Errorf("dualstack's network is the IPv6 gateway only: want the port published in IPv6 only:\n%s", harness.RulesIn(t))
	}
	harness.WantReach(t, "published port over IPv4, Docker's bridge the IPv4 gateway", outside, harness.HostPort(gwHost4, "8099"), "dk")
}
