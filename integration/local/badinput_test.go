//go:build integration

package local

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The tests of issue 14: hostile and mistaken input is refused with the
// reason and changes nothing; answers lost in a crash cost nothing.

// refused runs `docker network create ARGS NAME`, wants it refused saying
// words, and wants nothing changed: no network, and the same links,
// addresses, rules and plugin state (hostSnapshot).
func refused(t *testing.T, name string, args []string, words ...string) {
	t.Helper()
	before := hostSnapshot(t)
	out := harness.DockerFails(t, append(append([]string{"network", "create", "--label", harness.TestLabel}, args...), name)...)
	harness.WantMessage(t, out, words...)
	noNetwork(t, name)
	if after := hostSnapshot(t); after != before {
		t.Fatalf("the refused request changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestRefusedNetworks: every row of the table that Docker's
// network create carries, refused with its reason, leaving nothing.
func TestRefusedNetworks(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	ds := []string{"-d", harness.PluginName, "--ipam-driver", harness.PluginName}
	harness.DSNet(t, "ds-rf-other", "--subnet", "198.18.0.0/24")
	otherBridge := "ds-" + harness.NetID(t, "ds-rf-other")[:12]
	// A LAN on a host interface.
	harness.IPRun(t, "-n", harness.Eng.Netns, "link", "add", "dslan0", "type", "veth", "peer", "name", "dslan1")
	t.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", "dslan0").Run() })
	harness.IPRun(t, "-n", harness.Eng.Netns, "addr", "add", "203.0.113.253/24", "dev", "dslan0")
	harness.IPRun(t, "-n", harness.Eng.Netns, "link", "set", "dslan0", "up")
	// A network the host reaches through a router on that LAN.
	harness.IPRun(t, "-n", harness.Eng.Netns, "route", "add", "198.18.5.0/24", "via", "203.0.113.1", "dev", "dslan0", "proto", "static")
	// An interface whose name starts with '-', which Linux allows.
	harness.IPRun(t, "-n", harness.Eng.Netns, "link", "add", "name", "-dslan9", "type", "veth", "peer", "name", "dslan8")
	t.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", "dev", "-dslan9").Run() })
	// A Docker network whose bridge has a name of the user's.
	harness.CreateNetwork(t, "ds-rf-dockbr", "-d", "bridge", "-o", "com.docker.network.bridge.name=dsdockbr0", "--subnet", "198.18.20.0/24")

	for _, c := range []struct {
		name  string
		args  []string
		words []string
	}{
		{"parent lo", []string{"-o", "mode=macvlan", "-o", "parent=lo", "--subnet", "198.51.100.0/24"}, []string{"parent lo", "loopback"}},
		{"parent docker0", []string{"-o", "mode=macvlan", "-o", "parent=docker0", "--subnet", "198.51.100.0/24"}, []string{"parent docker0", "Docker network"}},
		{"parent another network's bridge", []string{"-o", "mode=macvlan", "-o", "parent=" + otherBridge, "--subnet", "198.51.100.0/24"}, []string{"parent " + otherBridge, "dualstack's own links"}},
		{"parent a bridge port", []string{"-o", "mode=macvlan", "-o", "parent=dslan1", "--subnet", "198.51.100.0/24"}, nil},
		{"subnet 0.0.0.0/0", []string{"--subnet", "0.0.0.0/0"}, []string{"shorter than /8"}},
		{"subnet 2000::/3", []string{"--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2000::/3"}, []string{"shorter than /32"}},
		{"a host LAN's subnet", []string{"--subnet", "203.0.113.0/24"}, []string{"203.0.113.0/24", "dslan0", "host_overlap=true"}},
		// Issue 21: the rest of the catalogue.
		{"subnet 255.255.255.255/32", []string{"--subnet", "255.255.255.255/32"}, []string{"255.255.255.255/32", "limited broadcast", "give another subnet"}},
		{"subnet 240.0.0.0/8", []string{"--subnet", "240.0.0.0/8"}, []string{"240.0.0.0/8", "240.0.0.0/4, reserved", "give another subnet"}},
		{"subnet 0.1.0.0/16", []string{"--subnet", "0.1.0.0/16"}, []string{"0.1.0.0/16", `"this network"`, "give another subnet"}},
		{"a subnet inside a host route", []string{"--subnet", "198.18.5.0/26"}, []string{"subnet 198.18.5.0/26 overlaps the host's route 198.18.5.0/24 via 203.0.113.1 dev dslan0 proto static", "host_overlap=true"}},
		{"a subnet around a host route", []string{"--subnet", "198.18.4.0/22"}, []string{"subnet 198.18.4.0/22 overlaps the host's route 198.18.5.0/24 via 203.0.113.1"}},
		{"bridge name starting with '-'", []string{"-o", "com.docker.network.bridge.name=-dsx", "--subnet", "198.51.100.0/24"}, []string{`"-dsx"`, "starts with '-'"}},
		{"parent starting with '-'", []string{"-o", "mode=macvlan", "-o", "parent=-dslan9", "--subnet", "198.51.100.0/24"}, []string{`parent="-dslan9"`, "starts with '-'"}},
		{"parent a Docker bridge of a custom name", []string{"-o", "mode=macvlan", "-o", "parent=dsdockbr0", "--subnet", "198.51.100.0/24"}, []string{"parent dsdockbr0 is a bridge with no port", "Docker network"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.words == nil {
				// dslan1 sits in the engine's namespace as a veth peer, not
				// a bridge port: make it one for this case.
				harness.IPRun(t, "-n", harness.Eng.Netns, "link", "add", "dslanbr", "type", "bridge")
				t.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", "dslanbr").Run() })
				harness.IPRun(t, "-n", harness.Eng.Netns, "link", "set", "dslan1", "master", "dslanbr")
				c.words = []string{"parent dslan1", "port of dslanbr"}
			}
			refused(t, "ds-rf", append(append([]string{}, ds...), c.args...), c.words...)
		})
	}
	// The override: the host's own address in the subnet is never handed
	// out, even where it is the next in sequence (the range's gateway is
	// .252, the host holds .253).
	harness.DSNet(t, "ds-rf-lan", "-o", "host_overlap=true", "--subnet", "203.0.113.0/24", "--ip-range", "203.0.113.252/30")
	harness.RunContainer(t, "ds-rf-a", "ds-rf-lan")
	if v4, _ := harness.InspectAddrs(t, "ds-rf-a", "ds-rf-lan"); v4.String() != "203.0.113.254" {
		t.Fatalf("the container got %s: want 203.0.113.254, the host holding 203.0.113.253 on dslan0", v4)
	}
}

// TestOneMACTwoContainers: two containers given one MAC address on one
// network get two addresses, never one address twice.
func TestOneMACTwoContainers(t *testing.T) {
	const mac = "02:42:c6:33:64:99"
	harness.DSNet(t, "ds-mac", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "fd00:14:1::/64", "--subnet", "fd00:14:2::/64")
	run := func(name string) {
		if harness.APIAtLeast(t, 44) {
			harness.RunContainer(t, name, "ds-mac", "--mac-address", mac)
			return
		}
		// Today's CLI sends --mac-address per network, which needs API
		// 1.44; to Engine 20.10 the container's own MacAddress is its
		// endpoint's, so create the container through the API.
		a := harness.NewEngineAPI(t)
		t.Cleanup(func() { _, _ = harness.DockerCmd("rm", "-f", name) })
		id := a.Create(t, "?name="+name, fmt.Sprintf(`{"Image":%q,"Cmd":["sleep","3600"],"MacAddress":%q,"Labels":{"dualstack.test":"1"},"HostConfig":{"NetworkMode":"ds-mac"}}`, harness.Image, mac))
		a.Post(t, "/containers/"+id+"/start", "")
	}
	run("ds-mac-a")
	run("ds-mac-b")
	for _, c := range []string{"ds-mac-a", "ds-mac-b"} {
		if got := harness.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "ds-mac").MacAddress}}`, c); got != mac {
			t.Fatalf("%s has MAC address %s on ds-mac; want %s as given", c, got, mac)
		}
	}
	a4, a6 := harness.InspectAddrs(t, "ds-mac-a", "ds-mac")
	b4, b6 := harness.InspectAddrs(t, "ds-mac-b", "ds-mac")
	if a4 == b4 || a6 == b6 {
		t.Fatalf("two containers with one MAC share an address: %s %s and %s %s", a4, a6, b4, b6)
	}
}

// TestInternalMacvlan: containers on an --internal macvlan network reach
// each other and nothing else, in both directions.
func TestInternalMacvlan(t *testing.T) {
	l := harness.NewLAN(t)
	harness.MacvlanNet(t, "ds-mvi", "--internal", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:1::/64")
	harness.RunContainer(t, "ds-mvi-a", "ds-mvi")
	harness.RunContainer(t, "ds-mvi-b", "ds-mvi")
	harness.Ping(t, "ds-mvi-a", "192.0.2.2", "2001:db8:1::2")
	harness.NoPing(t, "ds-mvi-a", harness.Router4, harness.Router6a)
	for _, a := range []string{"192.0.2.1", "2001:db8:1::1"} {
		if out, err := exec.Command("ip", "netns", "exec", l.Name, "busybox", "ping", "-c", "1", "-W", "1", a).CombinedOutput(); err == nil {
			t.Fatalf("the LAN's router reaches %s on the internal network:\n%s", a, out)
		}
	}
	// The user's parent is not the internal network's: nothing of it is
	// on the LAN's interface.
	var links []struct {
		Name string `json:"ifname"`
		Link string `json:"link"`
	}
	harness.IPJSON(t, "", &links, "link", "show")
	for _, ln := range links {
		if ln.Link == harness.LANParent {
			t.Fatalf("link %s hangs from the LAN's interface %s", ln.Name, harness.LANParent)
		}
	}
}

// TestMacvlanHostAddress: the host's own address on the parent is never
// handed to a container, even where it is the next in sequence.
func TestMacvlanHostAddress(t *testing.T) {
	harness.NewLAN(t)
	harness.IPRun(t, "-n", harness.Eng.Netns, "addr", "add", "192.0.2.100/24", "dev", harness.LANParent)
	harness.MacvlanNet(t, "ds-mvh", "--subnet", "192.0.2.0/24", "--gateway", harness.Router4, "--ip-range", "192.0.2.100/31")
	harness.RunContainer(t, "ds-mvh-a", "ds-mvh")
	if v4, _ := harness.InspectAddrs(t, "ds-mvh-a", "ds-mvh"); v4.String() != "192.0.2.101" {
		t.Fatalf("the container got %s: want 192.0.2.101, the host holding 192.0.2.100 on %s", v4, harness.LANParent)
	}
}

// TestLostReplies: an answer lost in a crash after the commit (the
// TEST_CRASH_AFTER seam), at each step of a network's creation and of a
// container's start. Docker sends the call again to the restarted plugin,
// but without its body (moby pkg/plugins spends it on the first attempt);
// dualstack refuses it saying why, the command fails, and Docker's
// rollback takes what the lost answer committed. Running the command
// again works each time, and once the network goes, the host is as it
// was: no link, rule, pool or address is stuck.
func TestLostReplies(t *testing.T) {
	if harness.Eng.External {
		t.Skip("changes the plugin's settings")
	}
	before := hostSnapshot(t)
	paths := []string{"/IpamDriver.RequestPool", "/IpamDriver.RequestAddress", "/NetworkDriver.CreateNetwork", "/NetworkDriver.CreateEndpoint"}
	harness.SetPlugin(t, "TEST_CRASH_AFTER="+strings.Join(paths, ","))
	t.Cleanup(func() { harness.SetPlugin(t, "TEST_CRASH_AFTER=") })
	lost := func(out string) {
		t.Helper()
		harness.WantMessage(t, out, "arrived without its request", "run the command again")
	}
	// The network: its pool, its gateway's address, its creation, each
	// answer lost once (in that order), then created.
	args := []string{"network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName,
		"--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "fd00:14:3::/64", "--subnet", "fd00:14:4::/64", "ds-lost"}
	t.Cleanup(func() { _, _ = harness.DockerCmd("network", "rm", "ds-lost") })
	for i := range 3 {
		out := harness.DockerFails(t, args...)
		if !strings.Contains(out, paths[i]) {
			t.Fatalf("attempt %d: want the answer to %s lost:\n%s", i+1, paths[i], out)
		}
		lost(out)
		noNetwork(t, "ds-lost")
	}
	harness.Docker(t, args...)
	// A container: its endpoint's answer lost, then started; the endpoint
	// Docker gave up on left nothing.
	links := func() string {
		out, err := exec.Command("ip", "-n", harness.Eng.Netns, "-o", "link", "show").CombinedOutput()
		if err != nil {
			t.Fatalf("ip link show: %v: %s", err, out)
		}
		return string(out)
	}
	linksBefore := links()
	run := []string{"run", "--rm", "--label", harness.TestLabel, "--network", "ds-lost", harness.Image, "ip", "-o", "addr", "show", "eth0"}
	out := harness.DockerFails(t, run...)
	if !strings.Contains(out, "/NetworkDriver.CreateEndpoint") {
		t.Fatalf("want the answer to CreateEndpoint lost:\n%s", out)
	}
	lost(out)
	if after := links(); countDualstackLinks(after) != countDualstackLinks(linksBefore) {
		t.Fatalf("the endpoint Docker gave up on left links:\nbefore:\n%s\nafter:\n%s", linksBefore, after)
	}
	out = harness.Docker(t, run...)
	for _, want := range []string{"inet 198.51.100.", "inet6 fd00:14:3::", "inet6 fd00:14:4::"} {
		if !strings.Contains(out, want) {
			t.Fatalf("the container lacks an address %s…:\n%s", want, out)
		}
	}
	log := harness.Eng.PluginLog()
	for _, p := range paths {
		if !strings.Contains(log, fmt.Sprintf("path=%s", p)) || !strings.Contains(log, "dying after the commit") {
			t.Fatalf("no crash after %s in the plugin's log:\n%s", p, harness.LastLines(log, 40))
		}
	}
	harness.Docker(t, "network", "rm", "ds-lost")
	if after := hostSnapshot(t); after != before {
		t.Fatalf("lost answers left something behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// countDualstackLinks counts the veths and macvlans of dualstack's
// endpoints in `ip -o link show` output.
func countDualstackLinks(out string) int {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, ": dsv") || strings.Contains(l, ": dsc") {
			n++
		}
	}
	return n
}
