//go:build integration

package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The cluster store is data, not commands (issue 21): what an etcd writer
// puts there does not change a host's routes, a second host under a live
// host's name is refused, and a host forgotten while its plugin was
// disabled does not allocate from a block another host leased since.

// etcdctl runs etcdctl against the bed's store.
func etcdctl(t *testing.T, args ...string) {
	t.Helper()
	full := append([]string{"netns", "exec", bed.etcdNS, "etcdctl", "--endpoints", bed.endpoint()}, args...)
	if out, err := exec.Command("ip", full...).CombinedOutput(); err != nil {
		t.Fatalf("etcdctl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// routingTables is every route of host h, both families, every table.
func routingTables(t *testing.T, h *clusterHost) string {
	t.Helper()
	var out []string
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", "-n", h.e.netns, fam, "route", "show", "table", "all").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ip %s route show table all: %v: %s", h.name, fam, err, b)
		}
		out = append(out, string(b))
	}
	return strings.Join(out, "")
}

// sameTables checks, for 5 s (the watch's changes are applied within
// moments), that every host's routing table stays as in before.
func sameTables(t *testing.T, before map[*clusterHost]string, when string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for h, want := range before {
			if got := routingTables(t, h); got != want {
				t.Fatalf("%s: %s's routing table changed:\nbefore:\n%s\nafter:\n%s", when, h.name, want, got)
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
	needFabric(t)
	clusterNet(t, "cl-hk", bed.hosts, "-o", "cluster=cl-hk", "--subnet", "198.19.56.0/24", "--ipv6", "--subnet", "fd00:c6::/64")
	startEverywhere(t, bed.hosts, "cl-hk", 1, false)
	h1, h2 := bed.hosts[0], bed.hosts[1]
	// The routes to the blocks of the other hosts are in place.
	for _, b := range clusterStatus(t).blocksOf("cl-hk")[h2.name] {
		within(t, 5*time.Second, func() error {
			fam := "-4"
			if b.Addr().Is6() {
				fam = "-6"
			}
			out, _ := exec.Command("ip", "-n", h1.e.netns, fam, "route", "show", b.String()).CombinedOutput()
			if !strings.Contains(string(out), "via") {
				return fmt.Errorf("%s has no route to %s's block %s", h1.name, h2.name, b)
			}
			return nil
		})
	}
	// The tables settle first: a new veth's link-local addresses come
	// after the container starts.
	var before map[*clusterHost]string
	within(t, 30*time.Second, func() error {
		first := map[*clusterHost]string{}
		for _, h := range bed.hosts {
			first[h] = routingTables(t, h)
		}
		time.Sleep(3 * time.Second)
		for _, h := range bed.hosts {
			if routingTables(t, h) != first[h] {
				return fmt.Errorf("%s's routing table keeps changing", h.name)
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
		{blocks + "80000000_1", h2.name},                         // 128.0.0.0/1
		{blocks + "00000000_0", "evil"},                          // 0.0.0.0/0
		{blocks + strings.Repeat("0", 32) + "_0", h2.name},       // ::/0
		{blocks + "c6336400_24", "evil"},                         // the LAN, 198.51.100.0/24
		{blocks + "fd000fab000000000000000000000000_64", "evil"}, // the LAN, fd00:fab::/64
		{blocks + "c6133805_32", "evil"},                         // 198.19.56.5/32
		{blocks + "c6133840_28", h2.name},                        // 198.19.56.64/28
		{p + "networks/cl-evil/definition", `{"mode":"bridge","subnets":["0.0.0.0/0"],"host_block4":1,"routes":"host-gw"}`},
		{p + "networks/cl-evil/blocks/00000000_1", "evil"},
	}
	t.Cleanup(func() {
		for _, kv := range keys {
			_ = exec.Command("ip", "netns", "exec", bed.etcdNS, "etcdctl", "--endpoints", bed.endpoint(), "del", kv[0]).Run()
		}
	})
	for _, kv := range keys {
		etcdctl(t, "put", kv[0], kv[1])
	}
	sameTables(t, before, "with hostile keys in the store")
	log := h1.e.pluginLog()
	for _, w := range []string{"ignoring block 0.0.0.0/1 of cluster network cl-hk (held by evil): outside every subnet", "ignoring block 198.19.56.5/32 of cluster network cl-hk (held by evil): a /32, but the definition cuts 198.19.56.0/24 into /26 blocks"} {
		if !strings.Contains(log, w) {
			t.Errorf("%s's log does not say %q", h1.name, w)
		}
	}
	if out, err := clusterCLI("status"); err != nil || !strings.Contains(out, "ignored: block 0.0.0.0/1 held by evil: outside every subnet") {
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
	needFabric(t)
	h1, h3 := bed.hosts[0], bed.hosts[2]
	set := func(name string) error {
		for _, args := range [][]string{{"plugin", "disable", "-f", pluginName}, {"plugin", "set", pluginName, "CLUSTER_NODE=" + name}, {"plugin", "enable", pluginName}} {
			if out, err := h3.dockerCmd(args...); err != nil {
				return fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}
		return nil
	}
	t.Cleanup(func() {
		if err := set(h3.name); err != nil {
			t.Error(err)
		}
	})
	if err := set(h1.name); err != nil {
		t.Fatal(err)
	}
	want := []string{"node name " + h1.name + " is taken", "the host at " + h1.addr4.String(), "this host (" + h3.addr4.String(), "CLUSTER_NODE=NAME"}
	within(t, 20*time.Second, func() error {
		log := h3.e.pluginLog()
		for _, w := range want {
			if !strings.Contains(log, w) {
				return fmt.Errorf("%s's log does not say %q", h3.name, w)
			}
		}
		return nil
	})
	out, err := h3.dockerCmd("network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName, "-o", "cluster=cl-sn", "--subnet", "198.19.64.0/24", "cl-sn")
	if err == nil {
		_, _ = h3.dockerCmd("network", "rm", "cl-sn")
		t.Fatalf("a cluster network was created on a host refused in the cluster: %s", out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "node name "+h1.name+" is taken") {
		t.Errorf("the refusal of the network does not say the name is taken: %s", out)
	}
	for _, n := range clusterStatus(t).Nodes {
		if n.Name == h1.name && (!n.Alive || len(n.Addresses) == 0 || n.Addresses[0] != h1.addr4) {
			t.Errorf("node %s in the store: %+v, want %s's record, alive", h1.name, n, h1.name)
		}
	}
}

// A host forgotten while its plugin is disabled, whose block another host
// leased since, comes back, says which of its containers hold addresses
// in the block it lost, keeps them running with their addresses, and
// hands out no address of that block any more.
func TestClusterForgottenWhileDisabled(t *testing.T) {
	needFabric(t)
	h2, h3 := bed.hosts[1], bed.hosts[2]
	clusterNet(t, "cl-fg", []*clusterHost{h2, h3}, "-o", "cluster=cl-fg", "--subnet", "198.19.68.0/24")
	run := func(h *clusterHost, name string) netip.Addr {
		t.Helper()
		t.Cleanup(func() { _, _ = h.dockerCmd("rm", "-f", name) })
		h.docker(t, "run", "-d", "--label", testLabel, "--name", name, "--network", "cl-fg", image, "sleep", "3600")
		return netip.MustParseAddr(h.docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \"cl-fg\").IPAddress}}", name))
	}
	old := run(h3, "cl-fg-old")
	endpoint := h3.docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \"cl-fg\").EndpointID}}", "cl-fg-old")
	lostBlocks := clusterStatus(t).blocksOf("cl-fg")[h3.name]
	if len(lostBlocks) != 1 || !lostBlocks[0].Contains(old) {
		t.Fatalf("%s's blocks of cl-fg: %v, want one holding %s", h3.name, lostBlocks, old)
	}
	lost := lostBlocks[0]

	h3.docker(t, "plugin", "disable", "-f", pluginName)
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			_, _ = h3.dockerCmd("plugin", "enable", pluginName)
		}
	})
	within(t, 20*time.Second, func() error {
		if out, err := clusterCLI("forget", h3.name); err != nil {
			return fmt.Errorf("forget %s: %v: %s", h3.name, err, out)
		}
		return nil
	})
	if got := run(h2, "cl-fg-new"); !lost.Contains(got) {
		t.Fatalf("%s's container got %s, want an address of the forgotten block %s", h2.name, got, lost)
	}
	h3.docker(t, "plugin", "enable", pluginName)
	enabled = true
	said := "block " + lost.String() + " of cluster network cl-fg is no longer this host"
	within(t, 30*time.Second, func() error {
		for _, l := range strings.Split(h3.e.pluginLog(), "\n") {
			if strings.Contains(l, said) && strings.Contains(l, endpoint) && strings.Contains(l, old.String()) {
				t.Logf("the user sees: %s", l)
				return nil
			}
		}
		return fmt.Errorf("%s's log has no line saying %q and naming endpoint %s with address %s", h3.name, said, endpoint, old)
	})
	// The old container runs, with its address.
	if out := h3.docker(t, "exec", "cl-fg-old", "ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, old.String()+"/") {
		t.Errorf("cl-fg-old lost its address %s: %s", old, out)
	}
	for i := 0; i < 3; i++ {
		if got := run(h3, fmt.Sprintf("cl-fg-after-%d", i)); lost.Contains(got) {
			t.Fatalf("%s handed out %s, in the block %s it lost to %s", h3.name, got, lost, h2.name)
		}
	}
}
