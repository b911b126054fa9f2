//go:build integration

package local

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

var fourSubnetList = []string{"192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64"}

// Issue 3, acceptance 1 and 7.
func TestBridgeEveryIPv6Subnet(t *testing.T) {
	harness.DSNet(t, "ds-br", harness.FourSubnets...)
	br := "ds-" + harness.NetID(t, "ds-br")[:12]
	harness.WantIfaceAddrs(t, "", br, "192.0.2.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:3::1/64")

	harness.RunContainer(t, "ds-br-a", "ds-br")
	harness.RunContainer(t, "ds-br-b", "ds-br")
	harness.WantIfaceAddrs(t, "ds-br-a", "eth0", harness.AddrSet(2, fourSubnetList...)...)
	harness.WantIfaceAddrs(t, "ds-br-b", "eth0", harness.AddrSet(3, fourSubnetList...)...)

	var routes []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	harness.IPJSON(t, "ds-br-a", &routes, "-4", "route")
	var v6routes []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	harness.IPJSON(t, "ds-br-a", &v6routes, "-6", "route")
	hasDefault := func(rs []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}) bool {
		for _, r := range rs {
			if r.Dst == "default" && r.Gateway != "" {
				return true
			}
		}
		return false
	}
	if !hasDefault(routes) || !hasDefault(v6routes) {
		t.Fatalf("default routes: IPv4 %v, IPv6 %v", routes, v6routes)
	}
	for _, a := range harness.AddrSet(3, fourSubnetList...) {
		harness.Ping(t, "ds-br-a", strings.Split(a, "/")[0])
	}
	harness.Ping(t, "ds-br-a", "192.0.2.1", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1")

	// Cleanup: nothing of the network is left on the host.
	harness.Docker(t, "rm", "-f", "ds-br-a", "ds-br-b")
	harness.Docker(t, "network", "rm", "ds-br")
	var links []struct {
		Name string `json:"ifname"`
	}
	harness.IPJSON(t, "", &links, "link", "show")
	for _, l := range links {
		if strings.HasPrefix(l.Name, "ds") {
			t.Fatalf("link %s left after docker network rm", l.Name)
		}
	}
	var addrs []struct {
		Name     string           `json:"ifname"`
		AddrInfo []netnstest.Addr `json:"addr_info"`
	}
	harness.IPJSON(t, "", &addrs, "addr", "show")
	for _, l := range addrs {
		for _, a := range l.AddrInfo {
			if strings.HasPrefix(a.Local, "192.0.2.") || strings.HasPrefix(a.Local, "2001:db8:") {
				t.Fatalf("address %s of the removed network left on %s", a.Local, l.Name)
			}
		}
	}
}

// --internal: no route out of the network.
func TestBridgeInternal(t *testing.T) {
	harness.DSNet(t, "ds-int", "--internal", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:9::/64", "--subnet", "2001:db8:19::/64")
	harness.RunContainer(t, "ds-int-a", "ds-int")
	harness.WantIfaceAddrs(t, "ds-int-a", "eth0", harness.AddrSet(2, "198.51.100.0/24", "2001:db8:9::/64", "2001:db8:19::/64")...)
	for _, family := range []string{"-4", "-6"} {
		var routes []struct {
			Dst string `json:"dst"`
		}
		harness.IPJSON(t, "ds-int-a", &routes, family, "route")
		for _, r := range routes {
			if r.Dst == "default" {
				t.Fatalf("internal network: the container has a default route (%s)", family)
			}
		}
	}
	harness.Ping(t, "ds-int-a", "198.51.100.1", "2001:db8:9::1", "2001:db8:19::1")
}

// Issue 3, acceptance 3: only IPv6 subnets.
func TestBridgeIPv6Subnets(t *testing.T) {
	harness.DSNet(t, "ds-v6", "--ipv6", "--subnet", "fd00:a::/64", "--subnet", "fd00:b::/64")
	harness.RunContainer(t, "ds-v6-a", "ds-v6")
	harness.RunContainer(t, "ds-v6-b", "ds-v6")
	for _, c := range []struct {
		name string
		n    int
	}{{"ds-v6-a", 2}, {"ds-v6-b", 3}} {
		have := map[string]bool{}
		for _, a := range harness.AddrsOf(t, c.name, "eth0") {
			if a.Tentative {
				t.Fatalf("%s: tentative %s", c.name, a.Local)
			}
			have[fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)] = true
		}
		for _, want := range harness.AddrSet(c.n, "fd00:a::/64", "fd00:b::/64") {
			if !have[want] {
				t.Fatalf("%s lacks %s: %v", c.name, want, have)
			}
		}
	}
	harness.Ping(t, "ds-v6-a", "fd00:a::3", "fd00:b::3", "fd00:a::1", "fd00:b::1")
}

// eventually retries check for up to 10 s: for what Docker does after a
// call returns (a connected network's second interface).
func eventually(t testing.TB, check func() error) {
	t.Helper()
	harness.Within(t, 10*time.Second, check)
}

// Issue 3, acceptance 8.
func TestBridgeBadInput(t *testing.T) {
	harness.DSNet(t, "ds-named", "--subnet", "192.0.2.0/24", "-o", "bridge=br-named")
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"bridge name of 16 characters", []string{"-o", "bridge=abcdefghijklmnop"}, []string{"abcdefghijklmnop", "at most 15"}},
		{"MTU 10", []string{"-o", "mtu=10"}, []string{`mtu="10"`}},
		{"MTU 70000", []string{"-o", "mtu=70000"}, []string{`mtu="70000"`}},
		{"unknown option", []string{"-o", "colour=blue"}, []string{"unknown option(s) colour"}},
		{"bridge name of another network", []string{"-o", "bridge=br-named"}, []string{"br-named", "already used"}},
		{"bridge name with an iptables wildcard", []string{"-o", "bridge=x+"}, []string{`bridge="x+"`, "only letters, digits"}},
		{"bridge name that matches every interface", []string{"-o", "bridge=+"}, []string{`bridge="+"`}},
		{"bridge name the kernel expands", []string{"-o", "bridge=bars%d"}, []string{`bridge="bars%d"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"network", "create", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--subnet", "198.51.100.0/24"}, c.args...)
			out := harness.DockerFails(t, append(args, "ds-bad")...)
			harness.WantMessage(t, out, c.want...)
			noNetwork(t, "ds-bad")
			var links []struct {
				Name string `json:"ifname"`
			}
			harness.IPJSON(t, "", &links, "link", "show")
			for _, l := range links {
				if strings.HasPrefix(l.Name, "bars") || strings.HasPrefix(l.Name, "x") || strings.HasPrefix(l.Name, "abcdefgh") {
					t.Fatalf("the refused network left link %s", l.Name)
				}
			}
			if r := harness.RulesIn(t); strings.Contains(r, "198.51.100.0/24") || strings.Contains(r, "+") {
				t.Fatalf("the refused network left rules:\n%s", r)
			}
			// The subnet was released: a good network can take it.
			harness.DSNet(t, "ds-bad-ok", "--subnet", "198.51.100.0/24")
			harness.Docker(t, "network", "rm", "ds-bad-ok")
		})
	}
}

// Issue 3, acceptance 6: an uplink with accept_ra=1 is set to 2 when a
// network turns IPv6 forwarding on, unless UPLINK_ACCEPT_RA=false.
func TestUplinkAcceptRA(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	if out, err := exec.Command("ip", "-n", harness.Eng.Netns, "link", "add", "dsup0", "type", "veth", "peer", "name", "dsup1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", "dsup0").Run() })
	const key = "net/ipv6/conf/dsup0/accept_ra"

	harness.SetSysctlIn(t, key, "1")
	harness.DSNet(t, "ds-fwd", "--ipv6", "--subnet", "2001:db8:f::/64")
	if got := harness.SysctlIn(t, key); got != "2" {
		t.Fatalf("uplink accept_ra = %s after a network turned forwarding on, want 2", got)
	}
	if got := harness.SysctlIn(t, "net/ipv6/conf/all/forwarding"); got != "1" {
		t.Fatalf("IPv6 forwarding = %s", got)
	}
	harness.Docker(t, "network", "rm", "ds-fwd")

	harness.SetSysctlIn(t, key, "1")
	harness.SetPlugin(t, "UPLINK_ACCEPT_RA=false")
	t.Cleanup(func() { harness.SetPlugin(t, "UPLINK_ACCEPT_RA=true") })
	harness.DSNet(t, "ds-fwd2", "--ipv6", "--subnet", "2001:db8:f::/64")
	if got := harness.SysctlIn(t, key); got != "1" {
		t.Fatalf("with UPLINK_ACCEPT_RA=false the uplink's accept_ra changed to %s", got)
	}
}
