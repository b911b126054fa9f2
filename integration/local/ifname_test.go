//go:build integration

package local

import (
	"context"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 25: the container's interface name from the endpoint option
// com.docker.network.endpoint.ifname (compose interface_name), which Moby
// (v2.0.0-beta.24 on) takes from Join's answer and Engine 20.10 ignores.

const ifnameOpt = "driver-opt=com.docker.network.endpoint.ifname="

// ifnameDev is the interface a container asking for name gets: name where
// the engine honours it, eth0 on Engine 20.10.
func ifnameDev(name string) string {
	if harness.Eng.Kind == harness.EngineDockerIO {
		return "eth0"
	}
	return name
}

// TestInterfaceName: a container asking for wan0 gets wan0 with every
// address of the network (the extra IPv6 subnet's too) and reaches its
// peer; on Engine 20.10 the option is accepted and the container has eth0
// as before. An invalid name is refused with the option's name, leaving no
// endpoint; two networks asking one container for the same name are
// refused.
func TestInterfaceName(t *testing.T) {
	subnets := []string{"198.18.75.0/24", "2001:db8:75::/64", "2001:db8:76::/64"}
	harness.DSNet(t, "ds-if", "--ipv6", "--subnet", subnets[0], "--subnet", subnets[1], "--subnet", subnets[2])
	harness.RunContainer(t, "if-a", "name=ds-if,"+ifnameOpt+"wan0")
	harness.RunContainer(t, "if-b", "ds-if")
	harness.WantIfaceAddrs(t, "if-a", ifnameDev("wan0"), harness.AddrSet(2, subnets...)...)
	var peer []string
	for _, a := range harness.AddrSet(3, subnets...) {
		peer = append(peer, strings.Split(a, "/")[0])
	}
	harness.Ping(t, "if-a", peer...)

	for _, bad := range []string{"bad.name/x", "sixteen-chars-xx"} {
		out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel, "--network", "name=ds-if,"+ifnameOpt+bad, harness.Image, "true")
		harness.WantMessage(t, out, "com.docker.network.endpoint.ifname", bad)
	}
	if n := harness.Docker(t, "network", "inspect", "-f", "{{len .Containers}}", "ds-if"); n != "2" {
		t.Errorf("network ds-if has %s endpoints after the refusals, want 2", n)
	}
	if harness.Eng.Kind == harness.EngineDockerIO {
		return // 20.10 ignores the name: no clash
	}
	harness.DSNet(t, "ds-if2", "--subnet", "198.18.77.0/24")
	out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel,
		"--network", "name=ds-if,"+ifnameOpt+"wan0", "--network", "name=ds-if2,"+ifnameOpt+"wan0", harness.Image, "true")
	harness.WantMessage(t, out, "already has an interface named wan0")
}

// TestInterfaceNameCompose: examples/interface-name.yaml with compose v5
// (interface_name): the service's interface is lan0 with its addresses.
func TestInterfaceNameCompose(t *testing.T) {
	tool, ok := composeTools(t)["compose-v5"]
	if !ok {
		t.Skip("compose v5 is not installed (make integration-moby builds it)")
	}
	if harness.Eng.Kind == harness.EngineDockerIO {
		t.Skip("Engine 20.10 ignores interface names; TestInterfaceName covers it")
	}
	const project, file = "dsifname", "interface-name.yaml"
	t.Cleanup(func() { _ = composeCmd(context.Background(), tool, file, project, "down").Run() })
	composeFile(t, tool, file, project, "up", "-d")
	app := composeFile(t, tool, file, project, "ps", "-q", "app")
	harness.WantIfaceAddrs(t, app, "lan0", harness.AddrSet(2, "198.18.78.0/24", "2001:db8:78::/64", "2001:db8:79::/64")...)
	composeFile(t, tool, file, project, "down")
}
