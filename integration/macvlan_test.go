//go:build integration

package integration

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/internal/sysctl"
)

// The macvlan tests (issue 5) put containers on a "LAN": a veth pair whose
// end dsmv0 is the parent on the Docker host and whose other end sits in a
// "router" namespace with 192.0.2.254, 2001:db8:1::fe and 2001:db8:2::fe.
const (
	lanParent  = "dsmv0"
	routerLink = "dsrtr0"
	router4    = "192.0.2.254"
	router6a   = "2001:db8:1::fe"
	router6b   = "2001:db8:2::fe"
)

type lan struct{ peerNS }

func newLAN(t *testing.T) lan {
	t.Helper()
	l := lan{newPeerNS(t, "dsrtr-", lanParent, routerLink)}
	// The router's link-local address must not be tentative when it
	// advertises.
	if err := netns.Do(l.path, func() error { return sysctl.Set("net/ipv6/conf/"+routerLink+"/accept_dad", "0") }); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{router4 + "/24", router6a + "/64", router6b + "/64"} {
		ipRun(t, "-n", l.name, "addr", "add", a, "dev", routerLink, "nodad")
	}
	ipRun(t, "-n", l.name, "link", "set", routerLink, "up")
	ipRun(t, "-n", eng.netns, "link", "set", lanParent, "up")
	return l
}

// advertise makes the router send router advertisements for prefix
// (on-link, autonomous) every 300 ms until the test ends: a small sender
// instead of radvd.
func (l lan) advertise(t *testing.T, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	var fd int
	var ifindex int
	var mac net.HardwareAddr
	if err := netns.Do(l.path, func() error {
		ifi, err := net.InterfaceByName(routerLink)
		if err != nil {
			return err
		}
		ifindex, mac = ifi.Index, ifi.HardwareAddr
		if fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex)
	}); err != nil {
		t.Fatal(err)
	}
	// RFC 4861 4.2: the router advertisement, with a prefix information
	// and a source link-layer address option; the kernel fills in the
	// checksum of an ICMPv6 raw socket.
	ra := make([]byte, 16, 16+32+8)
	ra[0] = 134                                             // type
	ra[4] = 64                                              // current hop limit
	binary.BigEndian.PutUint16(ra[6:], 1800)                // router lifetime
	pi := make([]byte, 32)                                  // prefix information
	pi[0], pi[1], pi[2], pi[3] = 3, 4, byte(p.Bits()), 0xc0 // on-link, autonomous
	binary.BigEndian.PutUint32(pi[4:], 86400)               // valid lifetime
	binary.BigEndian.PutUint32(pi[8:], 14400)               // preferred lifetime
	a16 := p.Addr().As16()
	copy(pi[16:], a16[:])
	sll := append([]byte{1, 1}, mac...)
	ra = append(append(ra, pi...), sll...)
	dst := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(ifindex)}

	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done; unix.Close(fd) })
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			_ = unix.Sendto(fd, ra, 0, dst)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
}

// macvlanNet creates a dualstack macvlan network on the LAN.
func macvlanNet(t *testing.T, name string, args ...string) {
	t.Helper()
	dsNet(t, name, append([]string{"-o", "mode=macvlan", "-o", "parent=" + lanParent}, args...)...)
}

var lanSubnets = []string{"--ipv6", "--subnet", "192.0.2.0/24", "--gateway", router4,
	"--subnet", "2001:db8:1::/64", "--gateway", router6a, "--subnet", "2001:db8:2::/64", "--gateway", router6b}

// Issue 5, acceptance 1 and 2 (bridge mode).
func TestMacvlanEverySubnet(t *testing.T) {
	newLAN(t)
	macvlanNet(t, "ds-mv", lanSubnets...)
	runContainer(t, "ds-mv-a", "ds-mv")
	runContainer(t, "ds-mv-b", "ds-mv")
	wantIfaceAddrs(t, "ds-mv-a", "eth0", "192.0.2.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64")
	wantIfaceAddrs(t, "ds-mv-b", "eth0", "192.0.2.2/24", "2001:db8:1::2/64", "2001:db8:2::2/64")
	if got := sysctlOf(t, "ds-mv-a", "net/ipv6/conf/eth0/accept_dad"); got != "0" {
		t.Errorf("accept_dad %s in the container", got)
	}
	ping(t, "ds-mv-a", router4, router6a, router6b)
	ping(t, "ds-mv-a", "192.0.2.2", "2001:db8:1::2", "2001:db8:2::2")
	// Default routes to the routers the user named.
	var routes []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	ipJSON(t, "ds-mv-a", &routes, "-4", "route")
	if !hasDefault(routes, router4) {
		t.Errorf("no IPv4 default route via %s: %+v", router4, routes)
	}
}

// Issue 12: on a macvlan network with two IPv6 subnets too, the first
// command sees every address, on any host.
func TestMacvlanFirstCommandSeesEveryAddress(t *testing.T) {
	newLAN(t)
	macvlanNet(t, "ds-mv-first", lanSubnets...)
	firstCommandSees(t, "ds-mv-first", func(run int) []string {
		return addrSet(run+1, "2001:db8:1::/64", "2001:db8:2::/64")
	})
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
	if err := netns.Do(containerNS(t, container), func() (err error) { v, err = sysctl.Get(key); return err }); err != nil {
		t.Fatal(err)
	}
	return v
}

// Issue 5, acceptance 2: private mode keeps containers apart.
func TestMacvlanPrivate(t *testing.T) {
	newLAN(t)
	macvlanNet(t, "ds-mvp", append([]string{"-o", "macvlan_mode=private"}, lanSubnets...)...)
	runContainer(t, "ds-mvp-a", "ds-mvp")
	runContainer(t, "ds-mvp-b", "ds-mvp")
	ping(t, "ds-mvp-a", router4, router6a)
	noPing(t, "ds-mvp-a", "192.0.2.2", "2001:db8:1::2")
}

// Issue 5, acceptance 3: router advertisements, per accept_ra.
func TestMacvlanRouterAdvertisements(t *testing.T) {
	l := newLAN(t)
	l.advertise(t, "2001:db8:1::/64")
	for _, c := range []struct {
		acceptRA      string
		route, slaacd bool
	}{{"0", false, false}, {"1", true, false}, {"slaac", true, true}} {
		t.Run("accept_ra="+c.acceptRA, func(t *testing.T) {
			// No IPv6 gateway: routes come from the router's advertisements, if at all.
			macvlanNet(t, "ds-mvra", "-o", "accept_ra="+c.acceptRA, "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64")
			runContainer(t, "ds-mvra-a", "ds-mvra")
			time.Sleep(2 * time.Second) // several advertisements
			var routes []struct {
				Dst      string `json:"dst"`
				Gateway  string `json:"gateway"`
				Protocol string `json:"protocol"`
			}
			ipJSON(t, "ds-mvra-a", &routes, "-6", "route")
			raRoute := false
			for _, r := range routes {
				if r.Dst == "default" && r.Protocol == "ra" && strings.HasPrefix(r.Gateway, "fe80::") {
					raRoute = true
				}
			}
			var slaac []string
			for _, a := range addrsOf(t, "ds-mvra-a", "eth0") {
				// dualstack's and Docker's addresses are nodad; SLAAC's are not.
				if a.Scope == "global" && strings.HasPrefix(a.Local, "2001:db8:1:") && !a.NoDAD {
					slaac = append(slaac, a.Local)
				}
			}
			if raRoute != c.route || (len(slaac) > 0) != c.slaacd {
				t.Errorf("accept_ra=%s: default route from the router %t (want %t), SLAAC addresses %v (want some: %t); routes %+v",
					c.acceptRA, raRoute, c.route, slaac, c.slaacd, routes)
			}
			docker(t, "rm", "-f", "ds-mvra-a")
			docker(t, "network", "rm", "ds-mvra")
		})
	}
}

// Issue 5, acceptance 4: the host link.
func TestMacvlanHostLink(t *testing.T) {
	newLAN(t)
	macvlanNet(t, "ds-mvh", append([]string{"-o", "host_link=true"}, lanSubnets...)...)
	runContainer(t, "ds-mvh-a", "ds-mvh")
	id := netID(t, "ds-mvh")
	shim := "dsh" + id[:12]
	var shim4, shim6 string
	for _, a := range addrsOf(t, "", shim) {
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
		t.Fatalf("host link %s addresses: %+v", shim, addrsOf(t, "", shim))
	}
	v4, v6 := inspectAddrs(t, "ds-mvh-a", "ds-mvh")
	for _, a := range []netip.Addr{v4, v6} {
		if err := pingFromHost(a); err != nil {
			t.Errorf("host cannot ping the container's %s: %v", a, err)
		}
	}
	ping(t, "ds-mvh-a", shim4, shim6)

	// Issue 5, build 6: a plugin restart keeps the network working, and
	// the next container gets the next addresses.
	docker(t, "plugin", "disable", "-f", pluginName)
	docker(t, "plugin", "enable", pluginName)
	waitPlugin(t)
	ping(t, "ds-mvh-a", router4, router6a, shim4, shim6)
	runContainer(t, "ds-mvh-b", "ds-mvh")
	nv4, _ := inspectAddrs(t, "ds-mvh-b", "ds-mvh")
	if nv4 == v4 || nv4 == netip.MustParseAddr(shim4) {
		t.Errorf("the next container got %s (first container %s, host link %s)", nv4, v4, shim4)
	}
	ping(t, "ds-mvh-b", "2001:db8:2::fe", v4.String())
	docker(t, "rm", "-f", "ds-mvh-b")
	docker(t, "rm", "-f", "ds-mvh-a")
	docker(t, "network", "rm", "ds-mvh")
	if out, _ := exec.Command("ip", "-n", eng.netns, "link", "show", shim).CombinedOutput(); !strings.Contains(string(out), "does not exist") {
		t.Errorf("host link left after docker network rm: %s", out)
	}
}

// pingFromHost pings from the engine's namespace (the Docker host).
func pingFromHost(a netip.Addr) error {
	return netnstest.Ping(engineNetns(), a, 3*time.Second)
}

// Issue 5, acceptance 5: 802.1q parents.
func TestMacvlanVLANParent(t *testing.T) {
	newLAN(t)
	out, err := dockerCmd("network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName,
		"-o", "mode=macvlan", "-o", "parent="+lanParent+".10", "--subnet", "198.51.100.0/24", "ds-mvvlan")
	if err != nil && strings.Contains(out, "8021q") {
		t.Skipf("this kernel has no 802.1q VLAN links (the 8021q module); the link plan is covered by TestParentPlan: %s", strings.TrimSpace(out))
	}
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = dockerCmd("network", "rm", "ds-mvvlan") })
	if b, _ := exec.Command("ip", "-n", eng.netns, "-d", "link", "show", lanParent+".10").CombinedOutput(); !strings.Contains(string(b), "vlan") {
		t.Fatalf("no VLAN link: %s", b)
	}
	docker(t, "network", "rm", "ds-mvvlan")
	if b, _ := exec.Command("ip", "-n", eng.netns, "link", "show", lanParent+".10").CombinedOutput(); !strings.Contains(string(b), "does not exist") {
		t.Errorf("VLAN link left after the last network went: %s", b)
	}
}

// Issue 5, acceptance 6: bad input, each refused with a clear error and
// nothing left behind.
func TestMacvlanBadInput(t *testing.T) {
	newLAN(t)
	before := hostLinks(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "mode=macvlan"}, "mode=macvlan needs -o parent=IF"},
		{[]string{"-o", "mode=macvlan", "-o", "parent=dsnothere"}, "parent dsnothere does not exist on the host"},
		{[]string{"-o", "mode=macvlan", "-o", "parent=" + lanParent, "-o", "macvlan_mode=bogus"}, `macvlan_mode="bogus"`},
	} {
		args := append([]string{"network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName}, c.args...)
		out := dockerFails(t, append(args, "--subnet", "198.51.100.0/24", "ds-mvbad")...)
		if !strings.Contains(out, c.want) {
			t.Errorf("%v: %s, want %q", c.args, out, c.want)
		}
		t.Logf("the user sees: %s", strings.TrimSpace(out))
	}
	macvlanNet(t, "ds-mvshare", "--subnet", "198.51.100.0/25")
	out := dockerFails(t, "network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName,
		"-o", "mode=macvlan", "-o", "parent="+lanParent, "-o", "macvlan_mode=passthru", "--subnet", "198.51.100.128/25", "ds-mvbad")
	if !strings.Contains(out, "passthru takes the whole parent") {
		t.Errorf("passthru on a shared parent: %s", out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	docker(t, "network", "rm", "ds-mvshare")
	if after := hostLinks(t); after != before {
		t.Errorf("links changed:\n%s\nwant:\n%s", after, before)
	}
	if out := docker(t, "network", "ls", "-q", "--filter", "name=ds-mvbad"); out != "" {
		t.Errorf("a refused network exists: %s", out)
	}
}

// hostLinks lists the engine host's link names.
func hostLinks(t *testing.T) string {
	t.Helper()
	var links []struct {
		Name string `json:"ifname"`
	}
	ipJSON(t, "", &links, "link", "show")
	var names []string
	for _, l := range links {
		names = append(names, l.Name)
	}
	return strings.Join(sorted(names), " ")
}
