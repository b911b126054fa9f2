//go:build integration

package local

import (
	"context"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// gatewayModeSubnets are the subnets of TestGatewayModes' networks, which
// the outside hosts route via the Docker host.
var gatewayModeSubnets = []string{
	"198.18.1.0/24", "2001:db8:61::/64", // routed
	"198.18.2.0/24", "2001:db8:62::/64", // nat-unprotected
	"198.18.3.0/24", "2001:db8:63::/64", // trusted host interfaces
	"198.18.5.0/24", "2001:db8:65::/64", // examples/gateway-mode.yaml's public
}

// Issue 25, build 1: Docker's gateway modes and trusted host interfaces,
// under Docker's names and dualstack's, probed from an outside host on the
// trusted interface dsout0 and from another on dsut0, which is not.
func TestGatewayModes(t *testing.T) {
	o := harness.NewOutside(t, gatewayModeSubnets...)
	u := harness.NewOutsideOn(t, harness.Outside{HostEnd: "dsut0", Host4: "203.0.113.1", Addr4: "203.0.113.2", Host6: "2001:db8:fe::1", Addr6: "2001:db8:fe::2"}, "dsut-", "dsut1", gatewayModeSubnets...)
	harness.AcceptForwarding(t)
	o.ServeSource(t)

	harness.DSNet(t, "ds-gw-routed", "-o", "com.docker.network.bridge.gateway_mode_ipv4=routed", "--ipv6", "--subnet", "198.18.1.0/24", "--subnet", "2001:db8:61::/64")
	harness.DSNet(t, "ds-gw-unprot", "-o", "gateway_mode_ipv4=nat-unprotected", "-o", "com.docker.network.bridge.gateway_mode_ipv6=nat-unprotected", "--ipv6", "--subnet", "198.18.2.0/24", "--subnet", "2001:db8:62::/64")
	harness.DSNet(t, "ds-gw-trusted", "-o", "com.docker.network.bridge.trusted_host_interfaces=dsout0:wg0", "-o", "gateway_mode_ipv6=nat", "--ipv6", "--subnet", "198.18.3.0/24", "--subnet", "2001:db8:63::/64")
	harness.RunServer(t, "ds-gw-routed-srv", "ds-gw-routed", "-p", "8180:80")
	harness.RunServer(t, "ds-gw-unprot-srv", "ds-gw-unprot", "-p", "8181:80")
	harness.RunServer(t, "ds-gw-trusted-srv", "ds-gw-trusted", "-p", "8182:80")

	// routed: the published port at the container's own IPv4 address,
	// and nothing else; the host port's translation is kept.
	harness.WantReach(t, "routed IPv4, published port at the container's address", o.Path, harness.HostPort("198.18.1.2", "80"), "ds-gw-routed-srv")
	harness.WantReach(t, "routed IPv4, the host's port", o.Path, harness.HostPort(harness.OutsideHost4, "8180"), "ds-gw-routed-srv")
	harness.WantBlocked(t, "routed IPv4, unpublished port", o.Path, harness.HostPort("198.18.1.2", "81"))
	if got, err := harness.HTTPGet(harness.ContainerNS(t, "ds-gw-routed-srv"), harness.HostPort(harness.Outside4, harness.OutsidePort)); err != nil || got != "198.18.1.2" {
		t.Errorf("routed IPv4: the outside host saw the container as %q (%v), want its own address 198.18.1.2", got, err)
	}

	// nat-unprotected: every port, both families, from outside; not from
	// another network's container.
	harness.WantReach(t, "nat-unprotected IPv4, unpublished port", o.Path, harness.HostPort("198.18.2.2", "81"), "ds-gw-unprot-srv")
	harness.WantReach(t, "nat-unprotected IPv6, unpublished port", o.Path, harness.HostPort("2001:db8:62::2", "81"), "ds-gw-unprot-srv")
	harness.WantBlocked(t, "nat-unprotected, from another network's container", harness.ContainerNS(t, "ds-gw-routed-srv"), harness.HostPort("198.18.2.2", "81"))

	// trusted: the published port at the container's addresses from
	// dsout0 only; the unpublished one from nowhere.
	for _, a := range []string{"198.18.3.2", "2001:db8:63::2"} {
		harness.WantReach(t, "trusted interface, published port at the container's address", o.Path, harness.HostPort(a, "80"), "ds-gw-trusted-srv")
		harness.WantBlocked(t, "trusted interface, unpublished port", o.Path, harness.HostPort(a, "81"))
		harness.WantBlocked(t, "untrusted interface, published port at the container's address", u.Path, harness.HostPort(a, "80"))
	}
	harness.WantReach(t, "untrusted interface, the host's port", u.Path, harness.HostPort(u.Host4, "8182"), "ds-gw-trusted-srv")

	gatewayModeCompose(t, o)
}

// gatewayModeCompose runs examples/gateway-mode.yaml with compose v5 on
// current engines, docker-compose 1.29 on Engine 20.10: web's published
// port at its routed address, and db on the isolated backend without a
// default route.
func gatewayModeCompose(t *testing.T, o harness.Outside) {
	name := "docker-compose-1.29"
	if harness.APIAtLeast(t, 48) {
		name = "compose-v5"
	}
	tool, ok := composeTools(t)[name]
	if !ok {
		t.Logf("skipping examples/gateway-mode.yaml: %s is not installed", name)
		return
	}
	const project, file = "dsgwmode", "gateway-mode.yaml"
	t.Cleanup(func() { _ = composeCmd(context.Background(), tool, file, project, "down").Run() })
	composeFile(t, tool, file, project, "up", "-d")
	web := composeFile(t, tool, file, project, "ps", "-q", "web")
	db := composeFile(t, tool, file, project, "ps", "-q", "db")
	v4, _ := harness.InspectAddrs(t, web, project+"_public")
	harness.WantReach(t, "compose, routed IPv4, published port at the container's address", o.Path, harness.HostPort(v4.String(), "80"), "web")
	harness.WantBlocked(t, "compose, routed IPv4, unpublished port", o.Path, harness.HostPort(v4.String(), "81"))
	wantNoDefaultRoute(t, db)
	_, backend6 := harness.InspectAddrs(t, web, project+"_backend")
	harness.Ping(t, db, backend6.String())
	composeFile(t, tool, file, project, "down")
}

// Issue 25, build 1 and 3: an isolated family has no gateway: none on the
// bridge, no default route in the containers, which still reach each
// other; on current engines (GwAllocCheck) Docker reserves none either,
// nor for a macvlan network without --gateway, which refuses the modes.
func TestGatewayModeIsolated(t *testing.T) {
	harness.DSNet(t, "ds-gw-iso", "--internal", "-o", "gateway_mode_ipv4=isolated", "-o", "com.docker.network.bridge.gateway_mode_ipv6=isolated",
		"--ipv6", "--subnet", "198.18.4.0/24", "--subnet", "2001:db8:64::/64", "--subnet", "2001:db8:67::/64")
	harness.RunContainer(t, "ds-gw-iso-a", "ds-gw-iso")
	harness.RunContainer(t, "ds-gw-iso-b", "ds-gw-iso")
	harness.WantIfaceAddrs(t, "", "ds-"+harness.NetID(t, "ds-gw-iso")[:12])
	wantNoDefaultRoute(t, "ds-gw-iso-a")
	v4, v6 := harness.InspectAddrs(t, "ds-gw-iso-b", "ds-gw-iso")
	harness.Ping(t, "ds-gw-iso-a", v4.String(), v6.String())

	out := harness.DockerFails(t, "network", "create", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--label", harness.TestLabel,
		"-o", "com.docker.network.bridge.gateway_mode_ipv4=isolated", "--subnet", "198.18.7.0/24", "ds-gw-iso-bad")
	harness.WantMessage(t, out, "gateway_mode_ipv4=isolated", "can only be used for an internal network")
	harness.NetworkGone(t, "ds-gw-iso-bad")

	// Docker's gateway modes are the bridge's: a macvlan network's router
	// is on the LAN.
	harness.NewLAN(t)
	out = harness.DockerFails(t, "network", "create", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--label", harness.TestLabel,
		"-o", "mode=macvlan", "-o", "parent="+harness.LANParent, "-o", "com.docker.network.bridge.gateway_mode_ipv4=routed", "--subnet", "198.18.8.0/24", "ds-gw-mv-bad")
	harness.WantMessage(t, out, "gateway_mode_ipv4", "not for mode=macvlan networks")
	harness.NetworkGone(t, "ds-gw-mv-bad")

	if !harness.APIAtLeast(t, 48) {
		t.Log("Engine 20.10 never asks GwAllocCheck: it reserves the gateways, which dualstack gives back")
		return
	}
	if gws := gatewaysOf(t, "ds-gw-iso"); gws != "" {
		t.Errorf("Docker reserved gateways %q for an isolated network", gws)
	}
	harness.MacvlanNet(t, "ds-gw-mv", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64")
	if gws := gatewaysOf(t, "ds-gw-mv"); gws != "" {
		t.Errorf("Docker reserved gateways %q for a macvlan network without --gateway", gws)
	}
}

// gatewaysOf lists the gateways docker network inspect shows for network.
func gatewaysOf(t *testing.T, network string) string {
	t.Helper()
	return strings.TrimSpace(harness.Docker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}} {{end}}", network))
}

// wantNoDefaultRoute fails the test if container has a default route in
// either family.
func wantNoDefaultRoute(t *testing.T, container string) {
	t.Helper()
	for _, f := range []string{"-4", "-6"} {
		var routes []struct {
			Dst string `json:"dst"`
		}
		harness.IPJSON(t, container, &routes, f, "route")
		for _, r := range routes {
			if r.Dst == "default" {
				t.Errorf("%s has a default route (%s): want none on an isolated network", container, f)
			}
		}
	}
}
