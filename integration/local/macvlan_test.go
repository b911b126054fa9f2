//go:build integration

package local

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/internal/sysctl"
)

// Issue 5, acceptance 1 and 2 (bridge mode).
func TestMacvlanEverySubnet(t *testing.T) {
	harness.NewLAN(t)
	harness.MacvlanNet(t, "ds-mv", harness.LANSubnets...)
	harness.RunContainer(t, "ds-mv-a", "ds-mv")
	harness.RunContainer(t, "ds-mv-b", "ds-mv")
	harness.WantIfaceAddrs(t, "ds-mv-a", "eth0", "192.0.2.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64")
	harness.WantIfaceAddrs(t, "ds-mv-b", "eth0", "192.0.2.2/24", "2001:db8:1::2/64", "2001:db8:2::2/64")
	if got := sysctlOf(t, "ds-mv-a", "net/ipv6/conf/eth0/accept_dad"); got != "0" {
		t.Errorf("accept_dad %s in the container", got)
	}
	harness.Ping(t, "ds-mv-a", harness.Router4, harness.Router6a, harness.Router6b)
	harness.Ping(t, "ds-mv-a", "192.0.2.2", "2001:db8:1::2", "2001:db8:2::2")
	// Default routes to the routers the user named.
	var routes []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	harness.IPJSON(t, "ds-mv-a", &routes, "-4", "route")
	if !hasDefault(routes, harness.Router4) {
		t.Errorf("no IPv4 default route via %s: %+v", harness.Router4, routes)
	}
}

func hasDefault(routes []struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
}, via string) bool {
	for _, r := range routes {
		if r.Dst == "default" && (via == "" || r.Gateway == via || strings.HasPrefix(r.Gateway, via)) {
			return true
		}
	}
	return false
}

// sysctlOf reads a sysctl in a container's network namespace.
func sysctlOf(t *testing.T, container, key string) string {
	t.Helper()
	var v string
	if err := netns.Do(harness.ContainerNS(t, container), func() (err error) { v, err = sysctl.Get(key); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

// Issue 5, acceptance 2: private mode keeps containers apart.
func TestMacvlanPrivate(t *testing.T) {
	harness.NewLAN(t)
	harness.MacvlanNet(t, "ds-mvp", append([]string{"-o", "macvlan_mode=private"}, harness.LANSubnets...)...)
	harness.RunContainer(t, "ds-mvp-a", "ds-mvp")
	harness.RunContainer(t, "ds-mvp-b", "ds-mvp")
	harness.Ping(t, "ds-mvp-a", harness.Router4, harness.Router6a)
	harness.NoPing(t, "ds-mvp-a", "192.0.2.2", "2001:db8:1::2")
}

// Issue 5, acceptance 3: router advertisements, per accept_ra.
func TestMacvlanRouterAdvertisements(t *testing.T) {
	l := harness.NewLAN(t)
	l.Advertise(t, "2001:db8:1::/64")
	for _, c := range []struct {
		acceptRA      string
		route, slaacd bool
	}{{"0", false, false}, {"1", true, false}, {"slaac", true, true}} {
		t.Run("accept_ra="+c.acceptRA, func(t *testing.T) {
			// No IPv6 gateway: routes come from the router's advertisements, if at all.
			harness.MacvlanNet(t, "ds-mvra", "-o", "accept_ra="+c.acceptRA, "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64")
			harness.RunContainer(t, "ds-mvra-a", "ds-mvra")
			time.Sleep(2 * time.Second) // several advertisements
			var routes []struct {
				Dst      string `json:"dst"`
				Gateway  string `json:"gateway"`
				Protocol string `json:"protocol"`
			}
			harness.IPJSON(t, "ds-mvra-a", &routes, "-6", "route")
			raRoute := false
			for _, r := range routes {
				if r.Dst == "default" && r.Protocol == "ra" && strings.HasPrefix(r.Gateway, "fe80::") {
					raRoute = true
				}
			}
			var slaac []string
			for _, a := range harness.AddrsOf(t, "ds-mvra-a", "eth0") {
				// dualstack's and Docker's addresses are nodad; SLAAC's are not.
				if a.Scope == "global" && strings.HasPrefix(a.Local, "2001:db8:1:") && !a.NoDAD {
					slaac = append(slaac, a.Local)
				}
			}
			if raRoute != c.route || (len(slaac) > 0) != c.slaacd {
				t.Errorf("accept_ra=%s: default route from the router %t (want %t), SLAAC addresses %v (want some: %t); routes %+v",
					c.acceptRA, raRoute, c.route, slaac, c.slaacd, routes)
			}
			harness.Docker(t, "rm", "-f", "ds-mvra-a")
			harness.Docker(t, "network", "rm", "ds-mvra")
		})
	}
}

// Issue 5, acceptance 4: the host link.
func TestMacvlanHostLink(t *testing.T) {
	harness.NewLAN(t)
	harness.MacvlanNet(t, "ds-mvh", append([]string{"-o", "host_link=true"}, harness.LANSubnets...)...)
	harness.RunContainer(t, "ds-mvh-a", "ds-mvh")
	id := harness.NetID(t, "ds-mvh")
	shim := "dsh" + id[:12]
	var shim4, shim6 string
	for _, a := range harness.AddrsOf(t, "", shim) {
		if a.Scope != "global" {
			continue
		}
		if a.Family == "inet" {
			shim4 = a.Local
		} else {
			shim6 = a.Local
		}
	}
	if shim4 == "" || shim6 == "" {
		t.Fatalf("host link %s addresses: %+v", shim, harness.AddrsOf(t, "", shim))
	}
	v4, v6 := harness.InspectAddrs(t, "ds-mvh-a", "ds-mvh")
	for _, a := range []netip.Addr{v4, v6} {
		if err := pingFromHost(a); err != nil {
			t.Errorf("host cannot ping the container's %s: %v", a, err)
		}
	}
	harness.Ping(t, "ds-mvh-a", shim4, shim6)

	// Issue 5, build 6: a plugin restart keeps the network working, and
	// the next container gets the next addresses.
	harness.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	harness.Docker(t, "plugin", "enable", harness.PluginName)
	harness.WaitPlugin(t)
	harness.Ping(t, "ds-mvh-a", harness.Router4, harness.Router6a, shim4, shim6)
	harness.RunContainer(t, "ds-mvh-b", "ds-mvh")
	nv4, _ := harness.InspectAddrs(t, "ds-mvh-b", "ds-mvh")
	if nv4 == v4 || nv4 == netip.MustParseAddr(shim4) {
		t.Errorf("the next container got %s (first container %s, host link %s)", nv4, v4, shim4)
	}
	harness.Ping(t, "ds-mvh-b", "2001:db8:2::fe", v4.String())
	harness.Docker(t, "rm", "-f", "ds-mvh-b")
	harness.Docker(t, "rm", "-f", "ds-mvh-a")
	harness.Docker(t, "network", "rm", "ds-mvh")
	if out, _ := exec.Command("ip", "-n", harness.Eng.Netns, "link", "show", shim).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("host link left after docker network rm: %s", out)
	}
}

// pingFromHost pings from the engine's namespace (the Docker host).
func pingFromHost(a netip.Addr) error {
	return netnstest.Ping(harness.EngineNetns(), a, 3*time.Second)
}

// Issue 5, acceptance 5: 802.1q parents.
func TestMacvlanVLANParent(t *testing.T) {
	harness.NewLAN(t)
	out, err := harness.DockerCmd("network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName,
		"-o", "mode=macvlan", "-o", "parent="+harness.LANParent+".10", "--subnet", "198.51.100.0/24", "ds-mvvlan")
	if err != nil && strings.Contains(out, "8021q") {
		t.Skipf("this kernel has no 802.1q VLAN links (the 8021q module); the link plan is covered by TestParentPlan: %s", strings.TrimSpace(out))
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = harness.DockerCmd("network", "rm", "ds-mvvlan") })
	if b, _ := exec.Command("ip", "-n", harness.Eng.Netns, "-d", "link", "show", harness.LANParent+".10").CombinedOutput(); !strings.Contains(string(b), "vlan") {
		t.Fatalf("no VLAN link: %s", b)
	}
	harness.Docker(t, "network", "rm", "ds-mvvlan")
	if b, _ := exec.Command("ip", "-n", harness.Eng.Netns, "link", "show", harness.LANParent+".10").CombinedOutput(); !strings.Contains(string(b), "does not exist") {
		t.Errorf("VLAN link left after the last network went: %s", b)
	}
}

// Issue 5, acceptance 6: bad input, each refused with a clear error and
// nothing left behind.
func TestMacvlanBadInput(t *testing.T) {
	harness.NewLAN(t)
	before := hostLinks(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "mode=macvlan"}, "mode=macvlan needs -o parent=IF"},
		{[]string{"-o", "mode=macvlan", "-o", "parent=dsnothere"}, "parent dsnothere does not exist on the host"},
		{[]string{"-o", "mode=macvlan", "-o", "parent=" + harness.LANParent, "-o", "macvlan_mode=bogus"}, `macvlan_mode="bogus"`},
	} {
		args := append([]string{"network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName}, c.args...)
		out := harness.DockerFails(t, append(args, "--subnet", "198.51.100.0/24", "ds-mvbad")...)
		if !strings.Contains(out, c.want) {
			t.Errorf("%v: %s, want %q", c.args, out, c.want)
		}
		t.Logf("the user sees: %s", strings.TrimSpace(out))
	}
	harness.MacvlanNet(t, "ds-mvshare", "--subnet", "198.51.100.0/25")
	out := harness.DockerFails(t, "network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName,
		"-o", "mode=macvlan", "-o", "parent="+harness.LANParent, "-o", "macvlan_mode=passthru", "--subnet", "198.51.100.128/25", "ds-mvbad")
	if !strings.Contains(out, "passthru takes the whole parent") {
		t.Errorf("passthru on a shared parent: %s", out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	harness.Docker(t, "network", "rm", "ds-mvshare")
	if after := hostLinks(t); after != before {
		t.Errorf("links changed:\n%s\nwant:\n%s", after, before)
	}
	if out := harness.Docker(t, "network", "ls", "-q", "--filter", "name=ds-mvbad"); out != "" {
		t.Errorf("a refused network exists: %s", out)
	}
}

// hostLinks lists the engine host's link names.
func hostLinks(t *testing.T) string {
	t.Helper()
	var links []struct {
		Name string `json:"ifname"`
	}
	harness.IPJSON(t, "", &links, "link", "show")
	var names []string
	for _, l := range links {
		names = append(names, l.Name)
	}
	return strings.Join(harness.Sorted(names), " ")
}

// Issue 25, D: a macvlan network without an IPv6 --gateway whose
// containers accept router advertisements names the LAN's advertising
// router to Docker as the containers' IPv6 gateway: docker inspect shows
// it, Docker's default route goes through it, and what lies behind the
// router answers. On engines with --ipv4=false the network is IPv6-only;
// Engine 20.10 makes an endpoint the container's gateway only if it has an
// IPv4 gateway, so there the IPv4 subnet has the router as --gateway.
func TestMacvlanRAGateway(t *testing.T) {
	l := harness.NewLAN(t)
	l.Advertise(t, "2001:db8:1::/64")
	l.Behind(t)
	ll := l.LinkLocal(t)
	args := []string{"-o", "accept_ra=1", "--ipv6", "--subnet", "2001:db8:1::/64"}
	if harness.APIAtLeast(t, 47) {
		args = append(args, "--ipv4=false")
	} else {
		args = append(args, "--subnet", "192.0.2.0/24", "--gateway", harness.Router4)
	}
	harness.MacvlanNet(t, "ds-mvrag", args...)
	harness.RunContainer(t, "ds-mvrag-a", "ds-mvrag")
	if gw := harness.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "ds-mvrag").IPv6Gateway}}`, "ds-mvrag-a"); gw != ll {
		t.Errorf("docker inspect: IPv6Gateway %q, want the router's link-local %s", gw, ll)
	}
	var routes []struct {
		Dst      string `json:"dst"`
		Gateway  string `json:"gateway"`
		Protocol string `json:"protocol"`
		Metric   int    `json:"metric"`
	}
	harness.IPJSON(t, "ds-mvrag-a", &routes, "-6", "route", "show", "default")
	docker := false
	for _, r := range routes {
		if r.Gateway == ll && r.Protocol != "ra" && r.Metric == 1024 {
			docker = true
		}
	}
	if !docker {
		t.Errorf("no default route of Docker's via %s in the container: %+v", ll, routes)
	}
	harness.Ping(t, "ds-mvrag-a", harness.RouterBehind6)
}
