//go:build integration

package cluster

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The cluster networks' end-to-end tests, on the cluster test bed
// (harness.Fabric, `make integration-cluster`).

// Acceptance 1: one bridge cluster network with an IPv4 and two IPv6
// subnets on three hosts; 20 containers per host, all started at once: no
// address twice, each host's containers inside its blocks, and every
// container reaches a container of each other host on every subnet, from
// its own addresses.
func TestClusterBridge(t *testing.T) {
	subnets := []string{"198.18.0.0/16", "fd00:c1::/48", "fd00:c2::/48"}
	harness.ClusterNet(t, "cl-br", harness.Bed.Hosts, "-o", "cluster=cl-br", "--subnet", subnets[0], "--ipv6", "--subnet", subnets[1], "--subnet", subnets[2])
	cs := harness.StartEverywhere(t, harness.Bed.Hosts, "cl-br", 20, false)
	if len(cs) != 60 {
		t.Fatalf("%d containers started, want 60", len(cs))
	}
	addrs := harness.WantClusterAddrs(t, cs, "cl-br", subnets...)
	for _, a := range addrs[cs[0]] {
		if a.Addr().Is4() && a.Bits() != 26 || a.Addr().Is6() && a.Bits() != 64 {
			t.Errorf("%s has %s: want the block's length (/26, /64)", cs[0].Name, a)
		}
	}
	harness.WantCrossHostPings(t, cs, addrs)
	// Across hosts, containers keep their own addresses: a connection
	// from a container of host 1 arrives from that container's address.
	from, to := cs[0], cs[len(cs)-1]
	if from.Host == to.Host {
		t.Fatal("the first and last containers are on one host")
	}
	var src, dst netip.Addr
	for _, a := range addrs[from] {
		if a.Addr().Is4() {
			src = a.Addr()
		}
	}
	for _, a := range addrs[to] {
		if a.Addr().Is4() {
			dst = a.Addr()
		}
	}
	to.Host.Docker(t, "exec", "-d", to.Name, "sh", "-c", "nc -l -p 7777 >/dev/null")
	from.Host.Docker(t, "exec", "-d", from.Name, "sh", "-c", "sleep 10 | nc "+dst.String()+" 7777")
	harness.Within(t, 5*time.Second, func() error {
		out, _ := to.Host.DockerCmd("exec", to.Name, "netstat", "-tn")
		if !strings.Contains(out, src.String()+":") {
			return fmt.Errorf("%s (%s) sees no connection from %s on %s:\n%s", to.Name, to.Host.Name, src, from.Host.Name, out)
		}
		return nil
	})
}

// Acceptance 2: a macvlan cluster network on the fabric, with an
// ip-range that holds the hosts' own addresses: no address twice, every
// container reaches the other hosts' containers, and no host address is
// handed out.
func TestClusterMacvlan(t *testing.T) {
	subnets := []string{harness.FabricSubnet4, harness.FabricSubnet6}
	harness.ClusterNet(t, "cl-mv", harness.Bed.Hosts, "-o", "mode=macvlan", "-o", "parent="+harness.FabricIf, "-o", "cluster=cl-mv",
		"--subnet", subnets[0], "--ip-range", "198.51.100.0/25", "--ipv6", "--subnet", subnets[1], "--ip-range", "fd00:fab::/112")
	cs := harness.StartEverywhere(t, harness.Bed.Hosts, "cl-mv", 20, false)
	if len(cs) != 60 {
		t.Fatalf("%d containers started, want 60", len(cs))
	}
	addrs := harness.WantClusterAddrs(t, cs, "cl-mv", subnets...)
	for c, as := range addrs {
		for _, a := range as {
			for _, h := range harness.Bed.Hosts {
				if a.Addr() == h.Addr4 || a.Addr() == h.Addr6 {
					t.Errorf("%s on %s got %s, the address of %s", c.Name, c.Host.Name, a, h.Name)
				}
			}
			if !strings.HasSuffix(a.String(), "/24") && !strings.HasSuffix(a.String(), "/64") {
				t.Errorf("%s has %s: want the LAN's length", c.Name, a)
			}
		}
	}
	harness.WantCrossHostPings(t, cs, addrs)
}

// Acceptance 3: a host that defines the network differently is refused,
// with the difference named, and nothing is created.
func TestClusterMismatch(t *testing.T) {
	harness.ClusterNet(t, "cl-mm", harness.Bed.Hosts[:1], "-o", "cluster=cl-mm", "--subnet", "198.19.0.0/16")
	h := harness.Bed.Hosts[1]
	out, err := h.DockerCmd("network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "cluster=cl-mm", "-o", "host_block4=24", "--subnet", "198.19.0.0/16", "cl-mm")
	if err == nil {
		t.Cleanup(func() { _, _ = h.DockerCmd("network", "rm", "cl-mm") })
		t.Fatal("a network defined differently was created")
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "host_block4") || !strings.Contains(out, "24") || !strings.Contains(out, "26") {
		t.Fatalf("the refusal does not name the difference (host_block4 24 here, 26 in the cluster): %s", out)
	}
	if o, _ := h.DockerCmd("network", "inspect", "cl-mm"); !strings.Contains(o, "No such network") && !strings.Contains(o, "[]") {
		t.Fatalf("the refused network exists on %s: %s", h.Name, o)
	}
}

// Acceptance 4: with etcd stopped, a container inside the host's free
// block still starts; one that needs a new block fails with an error
// naming the store; once etcd is back, both work, without a restart.
func TestClusterStoreDown(t *testing.T) {
	h := harness.Bed.Hosts[0]
	// Blocks of /29: a gateway and five addresses each.
	harness.ClusterNet(t, "cl-sd", []*harness.ClusterHost{h}, "-o", "cluster=cl-sd", "-o", "host_block4=29", "--subnet", "198.19.8.0/24")
	start := func(i int) error {
		c := fmt.Sprintf("cl-sd-%d", i)
		t.Cleanup(func() { _, _ = h.DockerCmd("rm", "-f", c) })
		out, err := h.DockerCmd("run", "-d", "--label", harness.TestLabel, "--name", c, "--network", "cl-sd", harness.Image, "sleep", "3600")
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
		}
		return nil
	}
	if err := start(0); err != nil {
		t.Fatal(err)
	}
	// A second network whose block goes back while the store is away.
	harness.ClusterNet(t, "cl-sd2", []*harness.ClusterHost{h}, "-o", "cluster=cl-sd2", "--subnet", "198.19.9.0/24")
	h.Docker(t, "run", "-d", "--label", harness.TestLabel, "--name", "cl-sd2-0", "--network", "cl-sd2", harness.Image, "sleep", "3600")
	if got := harness.ClusterStatus(t).BlocksOf("cl-sd2")[h.Name]; len(got) != 1 {
		t.Fatalf("blocks of cl-sd2: %v, want one", got)
	}
	harness.Bed.StopEtcd()
	h.Docker(t, "rm", "-f", "cl-sd2-0")
	h.Docker(t, "network", "rm", "cl-sd2")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := harness.Bed.StartEtcd(); err != nil {
				t.Error(err)
			}
		}
	})
	for i := 1; i < 5; i++ {
		if err := start(i); err != nil {
			t.Fatalf("a container inside the host's block, with the store down: %v", err)
		}
	}
	err := start(5)
	if err == nil {
		t.Fatal("a container that needs a new block started with the store down")
	}
	t.Logf("the user sees: %v", err)
	if !strings.Contains(err.Error(), harness.Bed.Endpoint()) {
		t.Fatalf("the error does not name the store %s: %v", harness.Bed.Endpoint(), err)
	}
	_, _ = h.DockerCmd("rm", "-f", "cl-sd-5")
	if err := harness.Bed.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// The client reconnects on its own; give it the time of a retry.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := start(5)
		if err == nil {
			break
		}
		_, _ = h.DockerCmd("rm", "-f", "cl-sd-5")
		if time.Now().After(deadline) {
			t.Fatalf("with the store back, a container that needs a new block: %v", err)
		}
		time.Sleep(time.Second)
	}
	if err := start(6); err != nil {
		t.Fatalf("with the store back, a container inside the new block: %v", err)
	}
	// The block of the network removed while the store was away goes back
	// at the next retry (every 30 s).
	harness.Within(t, 45*time.Second, func() error {
		if got := harness.ClusterStatus(t).BlocksOf("cl-sd2")[h.Name]; len(got) != 0 {
			time.Sleep(time.Second)
			return fmt.Errorf("blocks of cl-sd2, removed while the store was away, are still %s's: %v", h.Name, got)
		}
		return nil
	})
}

// Acceptance 5: the plugin of host 1 SIGKILLed in a burst of starts on
// host 1 and host 2: afterwards no address is held twice in the cluster,
// and once host 1's containers and network are gone, the store holds no
// block of host 1 (none leaked between its lease and its record).
func TestClusterPluginKilledDuringBurst(t *testing.T) {
	// Blocks of /28: 13 containers each, so the burst leases blocks.
	harness.ClusterNet(t, "cl-kill", harness.Bed.Hosts[:2], "-o", "cluster=cl-kill", "-o", "host_block4=28", "--subnet", "198.19.16.0/20")
	done := make(chan []harness.Started)
	go func() { done <- harness.StartEverywhere(t, harness.Bed.Hosts[:2], "cl-kill", 20, true) }()
	time.Sleep(1500 * time.Millisecond)
	harness.KillPlugin(t)
	cs := <-done
	t.Logf("%d of 40 containers started around the crash", len(cs))
	var runningCs []harness.Started
	for _, c := range cs {
		if out, _ := c.Host.DockerCmd("inspect", "-f", "{{.State.Running}}", c.Name); strings.TrimSpace(out) == "true" {
			runningCs = append(runningCs, c)
		}
	}
	harness.WantClusterAddrs(t, runningCs, "cl-kill", "198.19.16.0/20")
	h1 := harness.Bed.Hosts[0]
	for _, c := range cs {
		if c.Host == h1 {
			_, _ = h1.DockerCmd("rm", "-f", c.Name)
		}
	}
	// Those that failed are gone too.
	for i := 0; i < 20; i++ {
		_, _ = h1.DockerCmd("rm", "-f", fmt.Sprintf("cl-kill-%s-%d", h1.Name, i))
	}
	h1.Docker(t, "network", "rm", "cl-kill")
	if left := harness.ClusterStatus(t).BlocksOf("cl-kill")[h1.Name]; len(left) != 0 {
		t.Fatalf("blocks of %s left in the store after its network went: %v", h1.Name, left)
	}
}

// Acceptance 6: `dualstack cluster status` shows the three nodes and
// their blocks; `dualstack cluster forget` refuses a live node and
// releases a dead one's blocks.
func TestClusterStatusAndForget(t *testing.T) {
	harness.ClusterNet(t, "cl-st", harness.Bed.Hosts, "-o", "cluster=cl-st", "--subnet", "198.19.32.0/24")
	harness.StartEverywhere(t, harness.Bed.Hosts, "cl-st", 1, false)
	st := harness.ClusterStatus(t)
	blocks := st.BlocksOf("cl-st")
	for _, h := range harness.Bed.Hosts {
		i := slices.IndexFunc(st.Nodes, func(n struct {
			Name      string
			Addresses []netip.Addr
			Alive     bool
		}) bool {
			return n.Name == h.Name
		})
		if i < 0 || !st.Nodes[i].Alive || !slices.Contains(st.Nodes[i].Addresses, h.Addr4) {
			t.Errorf("status has no live node %s with address %s: %+v", h.Name, h.Addr4, st.Nodes)
		}
		if len(blocks[h.Name]) != 1 {
			t.Errorf("status shows blocks %v of %s in cl-st, want one", blocks[h.Name], h.Name)
		}
	}
	text, err := harness.ClusterCLI("status")
	t.Logf("dualstack cluster status:\n%s", text)
	if err != nil || !strings.Contains(text, "host3") || !strings.Contains(text, "cl-st") {
		t.Fatalf("status: %v", err)
	}

	out, err := harness.ClusterCLI("forget", "host2")
	if err == nil || !strings.Contains(out, "alive") {
		t.Fatalf("forget of a live node: %v: %s; want a refusal saying it is alive", err, out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	h3 := harness.Bed.Hosts[2]
	h3.Docker(t, "plugin", "disable", "-f", harness.PluginName)
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			_, _ = h3.DockerCmd("plugin", "enable", harness.PluginName)
		}
	})
	harness.Within(t, 10*time.Second, func() error {
		for _, n := range harness.ClusterStatus(t).Nodes {
			if n.Name == h3.Name && n.Alive {
				return fmt.Errorf("%s is still alive in the store after its plugin stopped", h3.Name)
			}
		}
		return nil
	})
	// Its containers still run: the other hosts keep routing to them.
	h1 := harness.Bed.Hosts[0]
	for _, b := range blocks[h3.Name] {
		out, err := exec.Command("ip", "-n", h1.Engine.Netns, "route", "show", b.String()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via "+h3.Addr4.String()) {
			t.Errorf("with %s's plugin stopped, %s has no route to its block %s: %v %s", h3.Name, h1.Name, b, err, out)
		}
	}
	if out, err := harness.ClusterCLI("forget", h3.Name); err != nil || !strings.Contains(out, "released") {
		t.Fatalf("forget of a dead node: %v: %s", err, out)
	}
	st = harness.ClusterStatus(t)
	if left := st.BlocksOf("cl-st")[h3.Name]; len(left) != 0 {
		t.Fatalf("blocks of the forgotten %s left: %v", h3.Name, left)
	}
	if len(st.BlocksOf("cl-st")[harness.Bed.Hosts[0].Name]) != 1 {
		t.Fatal("forgetting host3 took another host's block")
	}
	h3.Docker(t, "plugin", "enable", harness.PluginName)
	enabled = true
}

// A host that creates a cluster network after the others leased blocks of
// it routes to those blocks at once, though the store reports no change.
func TestClusterLateHost(t *testing.T) {
	args := []string{"-o", "cluster=cl-late", "--subnet", "198.19.40.0/24"}
	harness.ClusterNet(t, "cl-late", harness.Bed.Hosts[:1], args...)
	harness.StartEverywhere(t, harness.Bed.Hosts[:1], "cl-late", 1, false)
	blocks := harness.ClusterStatus(t).BlocksOf("cl-late")[harness.Bed.Hosts[0].Name]
	if len(blocks) != 1 {
		t.Fatalf("host1's blocks of cl-late: %v, want one", blocks)
	}
	late := harness.Bed.Hosts[2]
	harness.ClusterNet(t, "cl-late", []*harness.ClusterHost{late}, args...)
	harness.Within(t, 5*time.Second, func() error {
		out, err := exec.Command("ip", "-n", late.Engine.Netns, "route", "show", blocks[0].String()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via "+harness.Bed.Hosts[0].Addr4.String()) {
			return fmt.Errorf("%s has no route to %s via %s: %v %s", late.Name, blocks[0], harness.Bed.Hosts[0].Addr4, err, out)
		}
		return nil
	})
}

// A swarm service on a cluster network, as docs/cluster.md says to make one:
// the network stays local-scope, each node has a --config-only network
// naming the cluster, and one swarm-scoped network takes its config from
// it. The service's tasks on the three nodes get addresses from each
// node's own blocks, none twice, and reach each other.
func TestClusterSwarmService(t *testing.T) {
	// Swarm mode refuses --live-restore, which the bed's engines run with.
	restartAll := func(liveRestore bool) {
		var wg sync.WaitGroup
		for _, h := range harness.Bed.Hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.Engine.RestartWith(liveRestore); err != nil {
					t.Errorf("%s: restart dockerd (live-restore %t): %v", h.Name, liveRestore, err)
				}
			}()
		}
		wg.Wait()
	}
	restartAll(false)
	t.Cleanup(func() { restartAll(true) })
	mgr := harness.Bed.Hosts[0]
	mgr.Docker(t, "swarm", "init", "--advertise-addr", mgr.Addr4.String(), "--listen-addr", mgr.Addr4.String()+":2377")
	t.Cleanup(func() {
		for _, h := range harness.Bed.Hosts {
			_, _ = h.DockerCmd("swarm", "leave", "--force")
		}
	})
	token := mgr.Docker(t, "swarm", "join-token", "-q", "worker")
	for _, h := range harness.Bed.Hosts[1:] {
		h.Docker(t, "swarm", "join", "--token", token, "--advertise-addr", h.Addr4.String(), "--listen-addr", h.Addr4.String()+":2377", mgr.Addr4.String()+":2377")
	}
	for _, h := range harness.Bed.Hosts {
		h.Docker(t, "network", "create", "--label", harness.TestLabel, "--config-only", "--ipam-driver", harness.PluginName,
			"-o", "cluster=cl-sw", "--subnet", "198.19.48.0/24", "--ipv6", "--subnet", "fd00:c5::/48", "cl-sw-conf")
		t.Cleanup(func() { _, _ = h.DockerCmd("network", "rm", "cl-sw-conf") })
	}
	mgr.Docker(t, "network", "create", "-d", harness.PluginName, "--scope", "swarm", "--config-from", "cl-sw-conf", "cl-sw") // no label: a network with --config-from takes no configuration of its own
	t.Cleanup(func() { _, _ = mgr.DockerCmd("network", "rm", "cl-sw") })
	mgr.Docker(t, "service", "create", "--detach", "--name", "cl-sw-svc", "--network", "cl-sw", "--mode", "global", harness.Image, "sleep", "3600")
	t.Cleanup(func() { _, _ = mgr.DockerCmd("service", "rm", "cl-sw-svc") })
	var tasks []harness.Started
	harness.Within(t, 60*time.Second, func() error {
		tasks = tasks[:0]
		for _, h := range harness.Bed.Hosts {
			names, _ := h.DockerCmd("ps", "--filter", "name=cl-sw-svc", "--format", "{{.Names}}")
			for _, n := range strings.Fields(names) {
				tasks = append(tasks, harness.Started{Host: h, Name: n})
			}
		}
		if len(tasks) != len(harness.Bed.Hosts) {
			ps, _ := mgr.DockerCmd("service", "ps", "--no-trunc", "cl-sw-svc")
			return fmt.Errorf("%d tasks running, want one per node:\n%s", len(tasks), ps)
		}
		return nil
	})
	addrs := harness.WantClusterAddrs(t, tasks, "cl-sw", "198.19.48.0/24", "fd00:c5::/48")
	harness.WantCrossHostPings(t, tasks, addrs)
}
