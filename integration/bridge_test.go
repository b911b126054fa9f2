//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// dsNet creates a dualstack bridge network with dualstack's IPAM.
func dsNet(t *testing.T, name string, args ...string) {
	t.Helper()
	createNetwork(t, name, append([]string{"-d", pluginName, "--ipam-driver", pluginName}, args...)...)
}

// ipJSON runs the host's ip(8) with -j in the network namespace of the
// engine (container == "") or of a running container.
func ipJSON(t testing.TB, container string, v any, args ...string) {
	t.Helper()
	var cmd *exec.Cmd
	if container == "" {
		cmd = exec.Command("ip", append([]string{"-n", eng.netns, "-j"}, args...)...)
	} else {
		pid := docker(t, "inspect", "-f", "{{.State.Pid}}", container)
		cmd = exec.Command("nsenter", append([]string{"-t", pid, "-n", "ip", "-j"}, args...)...)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
}

// addrsOf lists the addresses of dev in the engine's (container == "") or a
// container's namespace.
func addrsOf(t testing.TB, container, dev string) []netnstest.Addr {
	t.Helper()
	var out []struct {
		AddrInfo []netnstest.Addr `json:"addr_info"`
	}
	ipJSON(t, container, &out, "addr", "show", "dev", dev)
	var all []netnstest.Addr
	for _, o := range out {
		all = append(all, o.AddrInfo...)
	}
	return all
}

// wantIfaceAddrs checks that dev holds exactly the global addresses want
// (in any order), every IPv6 address nodad and none tentative, link-local
// included.
func wantIfaceAddrs(t testing.TB, container, dev string, want ...string) {
	t.Helper()
	var global []string
	for _, a := range addrsOf(t, container, dev) {
		if a.Tentative {
			t.Fatalf("%s %s: address %s is tentative", container, dev, a.Local)
		}
		if a.Scope != "global" {
			continue
		}
		if a.Family == "inet6" && !a.NoDAD {
			t.Fatalf("%s %s: %s is not nodad", container, dev, a.Local)
		}
		global = append(global, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
	}
	if strings.Join(sorted(global), " ") != strings.Join(sorted(want), " ") {
		t.Fatalf("%s %s has %v, want %v", container, dev, sorted(global), sorted(want))
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func netID(t testing.TB, name string) string {
	t.Helper()
	return docker(t, "network", "inspect", "-f", "{{.Id}}", name)
}

func ping(t testing.TB, from string, addrs ...string) {
	t.Helper()
	for _, a := range addrs {
		if out, err := dockerCmd("exec", from, "ping", "-c", "1", "-W", "3", a); err != nil {
			t.Fatalf("%s cannot ping %s: %v\n%s", from, a, err, out)
		}
	}
}

var fourSubnets = []string{"--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64", "--subnet", "2001:db8:2::/64", "--subnet", "2001:db8:3::/64"}

// addrSet is a container's expected global addresses: the n-th address of
// each subnet.
func addrSet(n int, subnets ...string) []string {
	var out []string
	for _, s := range subnets {
		p := netip.MustParsePrefix(s)
		a := p.Addr()
		for i := 0; i < n; i++ {
			a = a.Next()
		}
		out = append(out, netip.PrefixFrom(a, p.Bits()).String())
	}
	return out
}

var fourSubnetList = []string{"192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64"}

// Issue 3, acceptance 1 and 7.
func TestBridgeEveryIPv6Subnet(t *testing.T) {
	dsNet(t, "ds-br", fourSubnets...)
	br := "ds-" + netID(t, "ds-br")[:12]
	wantIfaceAddrs(t, "", br, "192.0.2.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64", "2001:db8:3::1/64")

	runContainer(t, "ds-br-a", "ds-br")
	runContainer(t, "ds-br-b", "ds-br")
	wantIfaceAddrs(t, "ds-br-a", "eth0", addrSet(2, fourSubnetList...)...)
	wantIfaceAddrs(t, "ds-br-b", "eth0", addrSet(3, fourSubnetList...)...)

	var routes []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	ipJSON(t, "ds-br-a", &routes, "-4", "route")
	var v6routes []struct {
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
	}
	ipJSON(t, "ds-br-a", &v6routes, "-6", "route")
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
	for _, a := range addrSet(3, fourSubnetList...) {
		ping(t, "ds-br-a", strings.Split(a, "/")[0])
	}
	ping(t, "ds-br-a", "192.0.2.1", "2001:db8:1::1", "2001:db8:2::1", "2001:db8:3::1")

	// Cleanup: nothing of the network is left on the host.
	docker(t, "rm", "-f", "ds-br-a", "ds-br-b")
	docker(t, "network", "rm", "ds-br")
	var links []struct {
		Name string `json:"ifname"`
	}
	ipJSON(t, "", &links, "link", "show")
	for _, l := range links {
		if strings.HasPrefix(l.Name, "ds") {
			t.Fatalf("link %s left after docker network rm", l.Name)
		}
	}
	var addrs []struct {
		Name     string           `json:"ifname"`
		AddrInfo []netnstest.Addr `json:"addr_info"`
	}
	ipJSON(t, "", &addrs, "addr", "show")
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
	dsNet(t, "ds-int", "--internal", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:9::/64", "--subnet", "2001:db8:19::/64")
	runContainer(t, "ds-int-a", "ds-int")
	wantIfaceAddrs(t, "ds-int-a", "eth0", addrSet(2, "198.51.100.0/24", "2001:db8:9::/64", "2001:db8:19::/64")...)
	for _, family := range []string{"-4", "-6"} {
		var routes []struct {
			Dst string `json:"dst"`
		}
		ipJSON(t, "ds-int-a", &routes, family, "route")
		for _, r := range routes {
			if r.Dst == "default" {
				t.Fatalf("internal network: the container has a default route (%s)", family)
			}
		}
	}
	ping(t, "ds-int-a", "198.51.100.1", "2001:db8:9::1", "2001:db8:19::1")
}

// Issue 3, acceptance 2, and issue 12: the container's first command
// already sees every address, none tentative, on any host.
func TestFirstCommandSeesEveryAddress(t *testing.T) {
	dsNet(t, "ds-first", fourSubnets...)
	firstCommandSees(t, "ds-first", func(run int) []string {
		return addrSet(run+2, "2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64")
	})
}

// firstCommandSees starts 50 containers on network one after another (5
// with -short), and checks that the first command of the run-th (from 0)
// sees the addresses want(run), and no tentative one.
func firstCommandSees(t *testing.T, network string, want func(run int) []string) {
	t.Helper()
	runs := 50
	if testing.Short() {
		runs = 5
	}
	for i := 0; i < runs; i++ {
		out := docker(t, "run", "--rm", "--label", testLabel, "--network", network, image, "ip", "-6", "addr", "show", "eth0")
		for _, w := range want(i) {
			if !strings.Contains(out, w) {
				t.Fatalf("run %d: first command does not see %s:\n%s", i+1, w, out)
			}
		}
		if strings.Contains(out, "tentative") {
			t.Fatalf("run %d: tentative address:\n%s", i+1, out)
		}
	}
}

// Issue 3, acceptance 3: only IPv6 subnets.
func TestBridgeIPv6Subnets(t *testing.T) {
	dsNet(t, "ds-v6", "--ipv6", "--subnet", "fd00:a::/64", "--subnet", "fd00:b::/64")
	runContainer(t, "ds-v6-a", "ds-v6")
	runContainer(t, "ds-v6-b", "ds-v6")
	for _, c := range []struct {
		name string
		n    int
	}{{"ds-v6-a", 2}, {"ds-v6-b", 3}} {
		have := map[string]bool{}
		for _, a := range addrsOf(t, c.name, "eth0") {
			if a.Tentative {
				t.Fatalf("%s: tentative %s", c.name, a.Local)
			}
			have[fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)] = true
		}
		for _, want := range addrSet(c.n, "fd00:a::/64", "fd00:b::/64") {
			if !have[want] {
				t.Fatalf("%s lacks %s: %v", c.name, want, have)
			}
		}
	}
	ping(t, "ds-v6-a", "fd00:a::3", "fd00:b::3", "fd00:a::1", "fd00:b::1")
}

// Issue 3, acceptance 4: connect gives eth1 the full set, disconnect takes
// it away and releases the addresses. Issue 12: the addresses are there
// within 1 s of `docker network connect`, on any host.
func TestConnectDisconnect(t *testing.T) {
	dsNet(t, "ds-c1", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:a::/64")
	dsNet(t, "ds-c2", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:b::/64", "--subnet", "2001:db8:c::/64")
	runContainer(t, "ds-conn", "ds-c1")
	docker(t, "network", "connect", "ds-c2", "ds-conn")
	want := addrSet(2, "192.0.2.0/24", "2001:db8:b::/64", "2001:db8:c::/64")
	within(t, time.Second, func() error {
		have := map[string]bool{}
		for _, a := range addrsOf(t, "ds-conn", "eth1") {
			have[fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)] = true
		}
		for _, w := range want {
			if !have[w] {
				return fmt.Errorf("eth1 lacks %s: %v", w, have)
			}
		}
		return nil
	})
	wantIfaceAddrs(t, "ds-conn", "eth1", want...)
	ping(t, "ds-conn", "192.0.2.1", "2001:db8:b::1", "2001:db8:c::1")

	docker(t, "network", "disconnect", "ds-c2", "ds-conn")
	var links []struct {
		Name string `json:"ifname"`
	}
	ipJSON(t, "ds-conn", &links, "link", "show")
	for _, l := range links {
		if l.Name == "eth1" {
			t.Fatal("eth1 still there after disconnect")
		}
	}
	// Released: each address can be asked for again.
	for _, a := range []string{"--ip6=2001:db8:b::2", "--ip6=2001:db8:c::2", "--ip=192.0.2.2"} {
		docker(t, "run", "--rm", "--label", testLabel, "--network", "ds-c2", a, image, "true")
	}
}

// eventually retries check for up to 10 s: for what Docker does after a
// call returns (a connected network's second interface).
func eventually(t testing.TB, check func() error) {
	t.Helper()
	within(t, 10*time.Second, check)
}

// within retries check until it succeeds, failing t after d.
func within(t testing.TB, d time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Issue 3, acceptance 8.
func TestBridgeBadInput(t *testing.T) {
	dsNet(t, "ds-named", "--subnet", "192.0.2.0/24", "-o", "bridge=br-named")
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
			args := append([]string{"network", "create", "-d", pluginName, "--ipam-driver", pluginName, "--subnet", "198.51.100.0/24"}, c.args...)
			out := dockerFails(t, append(args, "ds-bad")...)
			wantMessage(t, out, c.want...)
			noNetwork(t, "ds-bad")
			var links []struct {
				Name string `json:"ifname"`
			}
			ipJSON(t, "", &links, "link", "show")
			for _, l := range links {
				if strings.HasPrefix(l.Name, "bars") || strings.HasPrefix(l.Name, "x") || strings.HasPrefix(l.Name, "abcdefgh") {
					t.Fatalf("the refused network left link %s", l.Name)
				}
			}
			if r := rulesIn(t); strings.Contains(r, "198.51.100.0/24") || strings.Contains(r, "+") {
				t.Fatalf("the refused network left rules:\n%s", r)
			}
			// The subnet was released: a good network can take it.
			dsNet(t, "ds-bad-ok", "--subnet", "198.51.100.0/24")
			docker(t, "network", "rm", "ds-bad-ok")
		})
	}
}

var liveSubnets = []string{"198.51.100.0/24", "2001:db8:5::/64", "2001:db8:6::/64"}

func addrsOnly(prefixes []string) []string {
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		out[i] = strings.Split(p, "/")[0]
	}
	return out
}

// Issue 3, acceptance 5: the network survives plugin restarts, container
// restarts, dockerd restarts and a simulated reboot; after each, containers
// ping each other and a new container gets the next addresses.
func TestBridgeSurvives(t *testing.T) {
	dsNet(t, "ds-live", "--ipv6", "--subnet", liveSubnets[0], "--subnet", liveSubnets[1], "--subnet", liveSubnets[2])
	runContainer(t, "ds-live-a", "ds-live")
	runContainer(t, "ds-live-b", "ds-live")
	wantIfaceAddrs(t, "ds-live-b", "eth0", addrSet(3, liveSubnets...)...)
	bAddrs := addrSet(3, liveSubnets...)
	next := 4
	parent := t
	newContainer := func(t *testing.T, name string) {
		runContainer(parent, name, "ds-live")
		wantIfaceAddrs(t, name, "eth0", addrSet(next, liveSubnets...)...)
		ping(t, name, addrsOnly(bAddrs)...)
		next++
	}
	br := "ds-" + netID(t, "ds-live")[:12]

	t.Run("plugin restart with running containers", func(t *testing.T) {
		// The containers keep pinging while the plugin is killed and back.
		pinger := exec.Command("docker", "exec", "ds-live-a", "ping", "-c", "30", "-i", "0.1", "-W", "1", "2001:db8:6::3")
		out := &strings.Builder{}
		pinger.Stdout, pinger.Stderr = out, out
		if err := pinger.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		killPlugin(t)
		if err := pinger.Wait(); err != nil || !strings.Contains(out.String(), " 0% packet loss") {
			t.Fatalf("pings across the plugin restart: %v\n%s", err, out)
		}
		ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-p")
	})
	t.Run("container stop and start", func(t *testing.T) {
		docker(t, "stop", "-t", "1", "ds-live-b")
		docker(t, "start", "ds-live-b")
		bAddrs = addrSet(next, liveSubnets...)
		next++
		wantIfaceAddrs(t, "ds-live-b", "eth0", bAddrs...)
		ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-s")
	})
	t.Run("dockerd restart", func(t *testing.T) {
		if eng.external {
			t.Skip("restarting dockerd needs a private engine")
		}
		if err := eng.restart(); err != nil {
			t.Fatal(err)
		}
		waitPlugin(t)
		ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-d")
	})
	t.Run("simulated reboot", func(t *testing.T) {
		if out, err := exec.Command("ip", "-n", eng.netns, "link", "del", br).CombinedOutput(); err != nil {
			t.Fatalf("delete %s: %v: %s", br, err, out)
		}
		killPlugin(t)
		wantIfaceAddrs(t, "", br, "198.51.100.1/24", "2001:db8:5::1/64", "2001:db8:6::1/64")
		ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-r")
	})
}

// sysctlIn reads a sysctl in the engine's network namespace.
func sysctlIn(t testing.TB, key string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", eng.netns, "cat", "/proc/sys/"+key).Output()
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return strings.TrimSpace(string(out))
}

func setSysctlIn(t testing.TB, key, value string) {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", eng.netns, "sh", "-c", "echo "+value+" > /proc/sys/"+key).CombinedOutput(); err != nil {
		t.Fatalf("write %s: %v: %s", key, err, out)
	}
}

func setPlugin(t testing.TB, settings ...string) {
	t.Helper()
	docker(t, "plugin", "disable", "-f", pluginName)
	docker(t, append([]string{"plugin", "set", pluginName}, settings...)...)
	docker(t, "plugin", "enable", pluginName)
	waitPlugin(t)
}

// Issue 3, acceptance 6: an uplink with accept_ra=1 is set to 2 when a
// network turns IPv6 forwarding on, unless UPLINK_ACCEPT_RA=false.
func TestUplinkAcceptRA(t *testing.T) {
	if eng.external {
		t.Skip("needs the private engine's network namespace")
	}
	if out, err := exec.Command("ip", "-n", eng.netns, "link", "add", "dsup0", "type", "veth", "peer", "name", "dsup1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "-n", eng.netns, "link", "del", "dsup0").Run() })
	const key = "net/ipv6/conf/dsup0/accept_ra"

	setSysctlIn(t, key, "1")
	dsNet(t, "ds-fwd", "--ipv6", "--subnet", "2001:db8:f::/64")
	if got := sysctlIn(t, key); got != "2" {
		t.Fatalf("uplink accept_ra = %s after a network turned forwarding on, want 2", got)
	}
	if got := sysctlIn(t, "net/ipv6/conf/all/forwarding"); got != "1" {
		t.Fatalf("IPv6 forwarding = %s", got)
	}
	docker(t, "network", "rm", "ds-fwd")

	setSysctlIn(t, key, "1")
	setPlugin(t, "UPLINK_ACCEPT_RA=false")
	t.Cleanup(func() { setPlugin(t, "UPLINK_ACCEPT_RA=true") })
	dsNet(t, "ds-fwd2", "--ipv6", "--subnet", "2001:db8:f::/64")
	if got := sysctlIn(t, key); got != "1" {
		t.Fatalf("with UPLINK_ACCEPT_RA=false the uplink's accept_ra changed to %s", got)
	}
}
