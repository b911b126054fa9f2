//go:build integration

package cluster

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The cluster store is data, not commands (issue 21): what an etcd writer
// puts there does not change a host's routes, a second host under a live
// host's name is refused, and a host forgotten while its plugin was
// disabled does not allocate from a block another host leased since.

// etcdctl runs etcdctl against the bed's store.
func etcdctl(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{"netns", "exec", harness.Bed.EtcdNS, "etcdctl", "--endpoints", harness.Bed.Endpoint()}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		t.Fatalf("etcdctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// routingTables is every route of host h, both families, every table.
func routingTables(t *testing.T, h *harness.ClusterHost) string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", "-n", h.Engine.Netns, fam, "route", "show", "table", "all").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ip %s route show table all: %v: %s", h.Name, fam, err, b)
		}
		out = append(out, string(b))
	}
	return strings.Join(out, "")
}

// sameTables checks, for 5 s (the watch's changes are applied within
// moments), that every host's routing table stays as in before.
func sameTables(t *testing.T, before map[*harness.ClusterHost]string, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for h, want := range before {
			if got := routingTables(t, h); got != want {
				t.Fatalf("%s: %s's routing table changed:\nbefore:\n%s\nafter:\n%s", when, h.Name, want, got)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Hostile keys written with etcdctl, as any etcd writer can: a node with
// an address of its choice on the hosts' LAN, blocks held by it and by a
// real host that cover half the address space, the default routes, the
// hosts' LAN, a single address, a block of the wrong length, and a block
// of a network whose definition would allow anything. No host's routing
// table changes, in any table, neither while they are there nor once they
// are deleted; the plugin's log names what it ignores.
func TestClusterHostileKeys(t *testing.T) {
	harness.ClusterNet(t, "cl-hk", harness.Bed.Hosts, "-o", "cluster=cl-hk", "--subnet", "198.19.56.0/24", "--ipv6", "--subnet", "fd00:c6::/64")
	harness.StartEverywhere(t, harness.Bed.Hosts, "cl-hk", 1, false)
	h1, h2 := harness.Bed.Hosts[0], harness.Bed.Hosts[1]
	// The routes to the blocks of the other hosts are in place.
	for _, b := range harness.ClusterStatus(t).BlocksOf("cl-hk")[h2.Name] {
		harness.Within(t, 5*time.Second, func() error {
			fam := "-4"
			if b.Addr().Is6() {
				fam = "-6"
			}
			out, _ := exec.Command("ip", "-n", h1.Engine.Netns, fam, "route", "show", b.String()).CombinedOutput()
			if !strings.Contains(string(out), "via") {
				return fmt.Errorf("%s has no route to %s's block %s", h1.Name, h2.Name, b)
			}
			return nil
		})
	}
	// The tables settle first: a new veth's link-local addresses come
	// after the container starts.
	var before map[*harness.ClusterHost]string
	harness.Within(t, 30*time.Second, func() error {
		first := map[*harness.ClusterHost]string{}
		for _, h := range harness.Bed.Hosts {
			first[h] = routingTables(t, h)
		}
		time.Sleep(3 * time.Second)
		for _, h := range harness.Bed.Hosts {
			if routingTables(t, h) != first[h] {
				return fmt.Errorf("%s's routing table keeps changing", h.Name)
			}
		}
		before = first
		return nil
	})
	p := "/dualstack/v1/"
	blocks := p + "networks/cl-hk/blocks/"
	keys := [][2]string{
		{p + "nodes/evil", `{"addresses":["198.51.100.66","fd00:fab::66"]}`},
		{blocks + "00000000_1", "evil"},                          // 0.0.0.0/1
		{blocks + "80000000_1", h2.Name},                         // 128.0.0.0/1
		{blocks + "00000000_0", "evil"},                          // 0.0.0.0/0
		{blocks + strings.Repeat("0", 32) + "_0", h2.Name},       // ::/0
		{blocks + "c6336400_24", "evil"},                         // the LAN, 198.51.100.0/24
		{blocks + "fd000fab000000000000000000000000_64", "evil"}, // the LAN, fd00:fab::/64
		{blocks + "c6133805_32", "evil"},                         // 198.19.56.5/32
		{blocks + "c6133840_28", h2.Name},                        // 198.19.56.64/28
		{p + "networks/cl-evil/definition", `{"mode":"bridge","subnets":["0.0.0.0/0"],"host_block4":1,"routes":"host-gw"}`},
		{p + "networks/cl-evil/blocks/00000000_1", "evil"},
	}
	t.Cleanup(func() {
		for _, kv := range keys {
			_ = exec.Command("ip", "netns", "exec", harness.Bed.EtcdNS, "etcdctl", "--endpoints", harness.Bed.Endpoint(), "del", kv[0]).Run()
		}
	})
	for _, kv := range keys {
		etcdctl(t, "put", kv[0], kv[1])
	}
	sameTables(t, before, "with hostile keys in the store")
	log := h1.Engine.PluginLog()
	for _, w := range []string{"ignoring block 0.0.0.0/1 of cluster network cl-hk (held by evil): outside every subnet", "ignoring block 198.19.56.5/32 of cluster network cl-hk (held by evil): a /32, but the definition cuts 198.19.56.0/24 into /26 blocks"} {
		if !strings.Contains(log, w) {
			t.Errorf("%s's log does not say %q", h1.Name, w)
		}
	}
	if out, err := harness.ClusterCLI("status"); err != nil || !strings.Contains(out, "ignored: block 0.0.0.0/1 held by evil: outside every subnet") {
		t.Errorf("dualstack cluster status does not list the ignored blocks: %v\n%s", err, out)
	}
	for _, kv := range keys {
		etcdctl(t, "del", kv[0])
	}
	sameTables(t, before, "after the hostile keys were deleted")
}

// A second host started with the CLUSTER_NODE of a live host is refused:
// its log names both hosts' addresses and says to set CLUSTER_NODE, a
// cluster network cannot be created there, and the first host's record
// is untouched.
func TestClusterSameNodeName(t *testing.T) {
	h1, h3 := harness.Bed.Hosts[0], harness.Bed.Hosts[2]
	set := func(name string) error {
		for _, args := range [][]string{{"plugin", "disable", "-f", harness.PluginName}, {"plugin", "set", harness.PluginName, "CLUSTER_NODE=" + name}, {"plugin", "enable", harness.PluginName}} {
			if out, err := h3.DockerCmd(args...); err != nil {
				return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return nil
	}
	t.Cleanup(func() {
		if err := set(h3.Name); err != nil {
			t.Error(err)
		}
	})
	if err := set(h1.Name); err != nil {
		t.Fatal(err)
	}
	want := []string{"node name " + h1.Name + " is taken", "the host at " + h1.Addr4.String(), "this host (" + h3.Addr4.String(), "CLUSTER_NODE=NAME"}
	harness.Within(t, 20*time.Second, func() error {
		log := h3.Engine.PluginLog()
		for _, w := range want {
			if !strings.Contains(log, w) {
				return fmt.Errorf("%s's log does not say %q", h3.Name, w)
			}
		}
		return nil
	})
	out, err := h3.DockerCmd("network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "cluster=cl-sn", "--subnet", "198.19.64.0/24", "cl-sn")
	if err == nil {
		_, _ = h3.DockerCmd("network", "rm", "cl-sn")
		t.Fatalf("a cluster network was created on a host refused in the cluster: %s", out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "node name "+h1.Name+" is taken") {
		t.Errorf("the refusal of the network does not say the name is taken: %s", out)
	}
	for _, n := range harness.ClusterStatus(t).Nodes {
		if n.Name == h1.Name && (!n.Alive || len(n.Addresses) == 0 || n.Addresses[0] != h1.Addr4) {
			t.Errorf("node %s in the store: %+v, want %s's record, alive", h1.Name, n, h1.Name)
		}
	}
}

// A host forgotten while its plugin is disabled, whose block another host
// leased since, comes back, says which of its containers hold addresses
// in the block it lost, keeps them running with their addresses, and
// hands out no address of that block any more.
func TestClusterForgottenWhileDisabled(t *testing.T) {
	h2, h3 := harness.Bed.Hosts[1], harness.Bed.Hosts[2]
	harness.ClusterNet(t, "cl-fg", []*harness.ClusterHost{h2, h3}, "-o", "cluster=cl-fg", "--subnet", "198.19.68.0/24")
	run := func(h *harness.ClusterHost, name string) netip.Addr {
		t.Helper()
		t.Cleanup(func() { _, _ = h.DockerCmd("rm", "-f", name) })
		h.Docker(t, "run", "-d", "--label", harness.TestLabel, "--name", name, "--network", "cl-fg", harness.Image, "sleep", "3600")
		return netip.MustParseAddr(h.Docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \"cl-fg\").IPAddress}}", name))
	}
	old := run(h3, "cl-fg-old")
	endpoint := h3.Docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \"cl-fg\").EndpointID}}", "cl-fg-old")
	lostBlocks := harness.ClusterStatus(t).BlocksOf("cl-fg")[h3.Name]
	if len(lostBlocks) != 1 || !lostBlocks[0].Contains(old) {
		t.Fatalf("%s's blocks of cl-fg: %v, want one holding %s", h3.Name, lostBlocks, old)
	}
	lost := lostBlocks[0]

	h3.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			_, _ = h3.DockerCmd("plugin", "enable", harness.PluginName)
		}
	})
	harness.Within(t, 20*time.Second, func() error {
		if out, err := harness.ClusterCLI("forget", h3.Name); err != nil {
			return fmt.Errorf("forget %s: %v: %s", h3.Name, err, out)
		}
		return nil
	})
	if got := run(h2, "cl-fg-new"); !lost.Contains(got) {
		t.Fatalf("%s's container got %s, want an address of the forgotten block %s", h2.Name, got, lost)
	}
	h3.Docker(t, "plugin", "enable", harness.PluginName)
	enabled = true
	said := "block " + lost.String() + " of cluster network cl-fg is no longer this host"
	harness.Within(t, 30*time.Second, func() error {
		for _, l := range strings.Split(h3.Engine.PluginLog(), "\n") {
			if strings.Contains(l, said) && strings.Contains(l, endpoint) && strings.Contains(l, old.String()) {
				t.Logf("the user sees: %s", l)
				return nil
			}
		}
		return fmt.Errorf("%s's log has no line saying %q and naming endpoint %s with address %s", h3.Name, said, endpoint, old)
	})
	// The old container runs, with its address.
	if out := h3.Docker(t, "exec", "cl-fg-old", "ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, old.String()+"/") {
		t.Errorf("cl-fg-old lost its address %s: %s", old, out)
	}
	for i := 0; i < 3; i++ {
		if got := run(h3, fmt.Sprintf("cl-fg-after-%d", i)); lost.Contains(got) {
			t.Fatalf("%s handed out %s, in the block %s it lost to %s", h3.Name, got, lost, h2.Name)
		}
	}
}
