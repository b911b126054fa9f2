//go:build integration

package integration

import (
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The cluster networks' end-to-end tests, on the test bed of
// clusterbed_test.go (DUALSTACK_CLUSTER=1, `make integration-cluster`).

// needFabric skips a test unless the bed is the fabric: its hosts share a
// LAN (host-gw routes to each other's addresses, macvlan on the uplink).
func needFabric(t *testing.T) {
	t.Helper()
	switch {
	case bed == nil:
		t.Skip("cluster tests run on the three-host test bed: DUALSTACK_CLUSTER=1 (make integration-cluster)")
	case bed.routed:
		t.Skip("cluster tests need the hosts on one LAN, the fabric: DUALSTACK_CLUSTER=1 (make integration-cluster); this is the routed bed")
	}
}

// clusterNet creates network name with args on every host (or on hosts),
// and removes it when the test ends.
func clusterNet(t *testing.T, name string, hosts []*clusterHost, args ...string) {
	t.Helper()
	for _, h := range hosts {
		full := append([]string{"network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName}, args...)
		h.docker(t, append(full, name)...)
		t.Cleanup(func() { _, _ = h.dockerCmd("network", "rm", name) })
	}
}

// started is a container some host started.
type started struct {
	host *clusterHost
	name string
}

// startEverywhere starts n containers on network on each of hosts, all at
// once, and returns those that started. A start that fails fails the test,
// unless mayFail (a burst the plugin is killed in): then it is logged.
func startEverywhere(t *testing.T, hosts []*clusterHost, network string, n int, mayFail bool) []started {
	t.Helper()
	var mu sync.Mutex
	var out []started
	var wg sync.WaitGroup
	for _, h := range hosts {
		for i := 0; i < n; i++ {
			c := fmt.Sprintf("%s-%s-%d", network, h.name, i)
			t.Cleanup(func() { _, _ = h.dockerCmd("rm", "-f", c) })
			wg.Add(1)
			go func() {
				defer wg.Done()
				msg, err := h.dockerCmd("run", "-d", "--label", testLabel, "--name", c, "--network", network, image, "sleep", "3600")
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					out = append(out, started{h, c})
				case mayFail:
					t.Logf("%s: %s did not start: %s", h.name, c, strings.TrimSpace(msg))
				default:
					t.Errorf("%s: start %s: %v: %s", h.name, c, err, strings.TrimSpace(msg))
				}
			}()
		}
	}
	wg.Wait()
	slices.SortFunc(out, func(a, b started) int { return strings.Compare(a.name, b.name) })
	return out
}

// globalAddrs lists the global addresses of c's eth0.
func globalAddrs(t *testing.T, c started) []netip.Prefix {
	t.Helper()
	out := c.host.docker(t, "exec", c.name, "ip", "-o", "addr", "show", "dev", "eth0")
	var addrs []netip.Prefix
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" || f[i] == "inet6" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil && !p.Addr().IsLinkLocalUnicast() {
					addrs = append(addrs, p)
				}
			}
		}
	}
	return addrs
}

// wantClusterAddrs checks that every container has one address in each of
// subnets, that no address is held twice in the cluster, and that each
// host's containers are inside that host's blocks of network; it returns
// the addresses by container.
func wantClusterAddrs(t *testing.T, cs []started, network string, subnets ...string) map[started][]netip.Prefix {
	t.Helper()
	blocks := clusterStatus(t).blocksOf(network)
	holder := map[netip.Addr]string{}
	out := map[started][]netip.Prefix{}
	for _, c := range cs {
		addrs := globalAddrs(t, c)
		out[c] = addrs
		for _, s := range subnets {
			sub := netip.MustParsePrefix(s)
			n := 0
			for _, a := range addrs {
				if sub.Contains(a.Addr()) {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%s on %s has %v: want one address in %s", c.name, c.host.name, addrs, sub)
			}
		}
		for _, a := range addrs {
			if other, dup := holder[a.Addr()]; dup {
				t.Errorf("address %s is held by %s and by %s", a.Addr(), other, c.name)
			}
			holder[a.Addr()] = c.name
			if !slices.ContainsFunc(blocks[c.host.name], func(b netip.Prefix) bool { return b.Contains(a.Addr()) }) {
				t.Errorf("%s on %s has %s, outside that host's blocks %v", c.name, c.host.name, a, blocks[c.host.name])
			}
		}
	}
	return out
}

// wantCrossHostPings has every container ping, on every address, one
// container of each other host.
func wantCrossHostPings(t *testing.T, cs []started, addrs map[started][]netip.Prefix) {
	t.Helper()
	byHost := map[string][]started{}
	for _, c := range cs {
		byHost[c.host.name] = append(byHost[c.host.name], c)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 12)
	for i, c := range cs {
		var targets []string
		for host, others := range byHost {
			if host == c.host.name {
				continue
			}
			peer := others[i%len(others)]
			for _, a := range addrs[peer] {
				targets = append(targets, a.Addr().String())
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			script := "for a in " + strings.Join(targets, " ") + "; do ping -c 1 -W 3 $a >/dev/null || echo unreachable $a; done"
			if out, err := c.host.dockerCmd("exec", c.name, "sh", "-c", script); err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("from %s on %s: %v %s", c.name, c.host.name, err, strings.TrimSpace(out))
			}
		}()
	}
	wg.Wait()
}

// Acceptance 1: one bridge cluster network with an IPv4 and two IPv6
// subnets on three hosts; 20 containers per host, all started at once: no
// address twice, each host's containers inside its blocks, and every
// container reaches a container of each other host on every subnet, from
// its own addresses.
func TestClusterBridge(t *testing.T) {
	needFabric(t)
	subnets := []string{"198.18.0.0/16", "fd00:c1::/48", "fd00:c2::/48"}
	clusterNet(t, "cl-br", bed.hosts, "-o", "cluster=cl-br", "--subnet", subnets[0], "--ipv6", "--subnet", subnets[1], "--subnet", subnets[2])
	cs := startEverywhere(t, bed.hosts, "cl-br", 20, false)
	if len(cs) != 60 {
		t.Fatalf("%d containers started, want 60", len(cs))
	}
	addrs := wantClusterAddrs(t, cs, "cl-br", subnets...)
	for _, a := range addrs[cs[0]] {
		if a.Addr().Is4() && a.Bits() != 26 || a.Addr().Is6() && a.Bits() != 64 {
			t.Errorf("%s has %s: want the block's length (/26, /64)", cs[0].name, a)
		}
	}
	wantCrossHostPings(t, cs, addrs)
	// Across hosts, containers keep their own addresses: a connection
	// from a container of host 1 arrives from that container's address.
	from, to := cs[0], cs[len(cs)-1]
	if from.host == to.host {
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
	to.host.docker(t, "exec", "-d", to.name, "sh", "-c", "nc -l -p 7777 >/dev/null")
	from.host.docker(t, "exec", "-d", from.name, "sh", "-c", "sleep 10 | nc "+dst.String()+" 7777")
	within(t, 5*time.Second, func() error {
		out, _ := to.host.dockerCmd("exec", to.name, "netstat", "-tn")
		if !strings.Contains(out, src.String()+":") {
			return fmt.Errorf("%s (%s) sees no connection from %s on %s:\n%s", to.name, to.host.name, src, from.host.name, out)
		}
		return nil
	})
}

// Acceptance 2: a macvlan cluster network on the fabric, with an
// ip-range that holds the hosts' own addresses: no address twice, every
// container reaches the other hosts' containers, and no host address is
// handed out.
func TestClusterMacvlan(t *testing.T) {
	needFabric(t)
	subnets := []string{fabricSubnet4, fabricSubnet6}
	clusterNet(t, "cl-mv", bed.hosts, "-o", "mode=macvlan", "-o", "parent="+fabricIf, "-o", "cluster=cl-mv",
		"--subnet", subnets[0], "--ip-range", "198.51.100.0/25", "--ipv6", "--subnet", subnets[1], "--ip-range", "fd00:fab::/112")
	cs := startEverywhere(t, bed.hosts, "cl-mv", 20, false)
	if len(cs) != 60 {
		t.Fatalf("%d containers started, want 60", len(cs))
	}
	addrs := wantClusterAddrs(t, cs, "cl-mv", subnets...)
	for c, as := range addrs {
		for _, a := range as {
			for _, h := range bed.hosts {
				if a.Addr() == h.addr4 || a.Addr() == h.addr6 {
					t.Errorf("%s on %s got %s, the address of %s", c.name, c.host.name, a, h.name)
				}
			}
			if !strings.HasSuffix(a.String(), "/24") && !strings.HasSuffix(a.String(), "/64") {
				t.Errorf("%s has %s: want the LAN's length", c.name, a)
			}
		}
	}
	wantCrossHostPings(t, cs, addrs)
}

// Acceptance 3: a host that defines the network differently is refused,
// with the difference named, and nothing is created.
func TestClusterMismatch(t *testing.T) {
	needFabric(t)
	clusterNet(t, "cl-mm", bed.hosts[:1], "-o", "cluster=cl-mm", "--subnet", "198.19.0.0/16")
	h := bed.hosts[1]
	out, err := h.dockerCmd("network", "create", "--label", testLabel, "-d", pluginName, "--ipam-driver", pluginName, "-o", "cluster=cl-mm", "-o", "host_block4=24", "--subnet", "198.19.0.0/16", "cl-mm")
	if err == nil {
		t.Cleanup(func() { _, _ = h.dockerCmd("network", "rm", "cl-mm") })
		t.Fatal("a network defined differently was created")
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	if !strings.Contains(out, "host_block4") || !strings.Contains(out, "24") || !strings.Contains(out, "26") {
		t.Fatalf("the refusal does not name the difference (host_block4 24 here, 26 in the cluster): %s", out)
	}
	if o, _ := h.dockerCmd("network", "inspect", "cl-mm"); !strings.Contains(o, "No such network") && !strings.Contains(o, "[]") {
		t.Fatalf("the refused network exists on %s: %s", h.name, o)
	}
}

// Acceptance 4: with etcd stopped, a container inside the host's free
// block still starts; one that needs a new block fails with an error
// naming the store; once etcd is back, both work, without a restart.
func TestClusterStoreDown(t *testing.T) {
	needFabric(t)
	h := bed.hosts[0]
	// Blocks of /29: a gateway and five addresses each.
	clusterNet(t, "cl-sd", []*clusterHost{h}, "-o", "cluster=cl-sd", "-o", "host_block4=29", "--subnet", "198.19.8.0/24")
	start := func(i int) error {
		c := fmt.Sprintf("cl-sd-%d", i)
		t.Cleanup(func() { _, _ = h.dockerCmd("rm", "-f", c) })
		out, err := h.dockerCmd("run", "-d", "--label", testLabel, "--name", c, "--network", "cl-sd", image, "sleep", "3600")
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out))
		}
		return nil
	}
	if err := start(0); err != nil {
		t.Fatal(err)
	}
	// A second network whose block goes back while the store is away.
	clusterNet(t, "cl-sd2", []*clusterHost{h}, "-o", "cluster=cl-sd2", "--subnet", "198.19.9.0/24")
	h.docker(t, "run", "-d", "--label", testLabel, "--name", "cl-sd2-0", "--network", "cl-sd2", image, "sleep", "3600")
	if got := clusterStatus(t).blocksOf("cl-sd2")[h.name]; len(got) != 1 {
		t.Fatalf("blocks of cl-sd2: %v, want one", got)
	}
	bed.stopEtcd()
	h.docker(t, "rm", "-f", "cl-sd2-0")
	h.docker(t, "network", "rm", "cl-sd2")
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := bed.startEtcd(); err != nil {
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
	if !strings.Contains(err.Error(), bed.endpoint()) {
		t.Fatalf("the error does not name the store %s: %v", bed.endpoint(), err)
	}
	_, _ = h.dockerCmd("rm", "-f", "cl-sd-5")
	if err := bed.startEtcd(); err != nil {
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
		_, _ = h.dockerCmd("rm", "-f", "cl-sd-5")
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
	within(t, 45*time.Second, func() error {
		if got := clusterStatus(t).blocksOf("cl-sd2")[h.name]; len(got) != 0 {
			time.Sleep(time.Second)
			return fmt.Errorf("blocks of cl-sd2, removed while the store was away, are still %s's: %v", h.name, got)
		}
		return nil
	})
}

// Acceptance 5: the plugin of host 1 SIGKILLed in a burst of starts on
// host 1 and host 2: afterwards no address is held twice in the cluster,
// and once host 1's containers and network are gone, the store holds no
// block of host 1 (none leaked between its lease and its record).
func TestClusterPluginKilledDuringBurst(t *testing.T) {
	needFabric(t)
	// Blocks of /28: 13 containers each, so the burst leases blocks.
	clusterNet(t, "cl-kill", bed.hosts[:2], "-o", "cluster=cl-kill", "-o", "host_block4=28", "--subnet", "198.19.16.0/20")
	done := make(chan []started)
	go func() { done <- startEverywhere(t, bed.hosts[:2], "cl-kill", 20, true) }()
	time.Sleep(1500 * time.Millisecond)
	killPlugin(t)
	cs := <-done
	t.Logf("%d of 40 containers started around the crash", len(cs))
	var runningCs []started
	for _, c := range cs {
		if out, _ := c.host.dockerCmd("inspect", "-f", "{{.State.Running}}", c.name); strings.TrimSpace(out) == "true" {
			runningCs = append(runningCs, c)
		}
	}
	wantClusterAddrs(t, runningCs, "cl-kill", "198.19.16.0/20")
	h1 := bed.hosts[0]
	for _, c := range cs {
		if c.host == h1 {
			_, _ = h1.dockerCmd("rm", "-f", c.name)
		}
	}
	// Those that failed are gone too.
	for i := 0; i < 20; i++ {
		_, _ = h1.dockerCmd("rm", "-f", fmt.Sprintf("cl-kill-%s-%d", h1.name, i))
	}
	h1.docker(t, "network", "rm", "cl-kill")
	if left := clusterStatus(t).blocksOf("cl-kill")[h1.name]; len(left) != 0 {
		t.Fatalf("blocks of %s left in the store after its network went: %v", h1.name, left)
	}
}

// Acceptance 6: `dualstack cluster status` shows the three nodes and
// their blocks; `dualstack cluster forget` refuses a live node and
// releases a dead one's blocks.
func TestClusterStatusAndForget(t *testing.T) {
	needFabric(t)
	clusterNet(t, "cl-st", bed.hosts, "-o", "cluster=cl-st", "--subnet", "198.19.32.0/24")
	startEverywhere(t, bed.hosts, "cl-st", 1, false)
	st := clusterStatus(t)
	blocks := st.blocksOf("cl-st")
	for _, h := range bed.hosts {
		i := slices.IndexFunc(st.Nodes, func(n struct {
			Name      string
			Addresses []netip.Addr
			Alive     bool
		}) bool {
			return n.Name == h.name
		})
		if i < 0 || !st.Nodes[i].Alive || !slices.Contains(st.Nodes[i].Addresses, h.addr4) {
			t.Errorf("status has no live node %s with address %s: %+v", h.name, h.addr4, st.Nodes)
		}
		if len(blocks[h.name]) != 1 {
			t.Errorf("status shows blocks %v of %s in cl-st, want one", blocks[h.name], h.name)
		}
	}
	text, err := clusterCLI("status")
	t.Logf("dualstack cluster status:\n%s", text)
	if err != nil || !strings.Contains(text, "host3") || !strings.Contains(text, "cl-st") {
		t.Fatalf("status: %v", err)
	}

	out, err := clusterCLI("forget", "host2")
	if err == nil || !strings.Contains(out, "alive") {
		t.Fatalf("forget of a live node: %v: %s; want a refusal saying it is alive", err, out)
	}
	t.Logf("the user sees: %s", strings.TrimSpace(out))
	h3 := bed.hosts[2]
	h3.docker(t, "plugin", "disable", "-f", pluginName)
	enabled := false
	t.Cleanup(func() {
		if !enabled {
			_, _ = h3.dockerCmd("plugin", "enable", pluginName)
		}
	})
	within(t, 10*time.Second, func() error {
		for _, n := range clusterStatus(t).Nodes {
			if n.Name == h3.name && n.Alive {
				return fmt.Errorf("%s is still alive in the store after its plugin stopped", h3.name)
			}
		}
		return nil
	})
	// Its containers still run: the other hosts keep routing to them.
	h1 := bed.hosts[0]
	for _, b := range blocks[h3.name] {
		out, err := exec.Command("ip", "-n", h1.e.netns, "route", "show", b.String()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via "+h3.addr4.String()) {
			t.Errorf("with %s's plugin stopped, %s has no route to its block %s: %v %s", h3.name, h1.name, b, err, out)
		}
	}
	if out, err := clusterCLI("forget", h3.name); err != nil || !strings.Contains(out, "released") {
		t.Fatalf("forget of a dead node: %v: %s", err, out)
	}
	st = clusterStatus(t)
	if left := st.blocksOf("cl-st")[h3.name]; len(left) != 0 {
		t.Fatalf("blocks of the forgotten %s left: %v", h3.name, left)
	}
	if len(st.blocksOf("cl-st")[bed.hosts[0].name]) != 1 {
		t.Fatal("forgetting host3 took another host's block")
	}
	h3.docker(t, "plugin", "enable", pluginName)
	enabled = true
}

// A host that creates a cluster network after the others leased blocks of
// it routes to those blocks at once, though the store reports no change.
func TestClusterLateHost(t *testing.T) {
	needFabric(t)
	args := []string{"-o", "cluster=cl-late", "--subnet", "198.19.40.0/24"}
	clusterNet(t, "cl-late", bed.hosts[:1], args...)
	startEverywhere(t, bed.hosts[:1], "cl-late", 1, false)
	blocks := clusterStatus(t).blocksOf("cl-late")[bed.hosts[0].name]
	if len(blocks) != 1 {
		t.Fatalf("host1's blocks of cl-late: %v, want one", blocks)
	}
	late := bed.hosts[2]
	clusterNet(t, "cl-late", []*clusterHost{late}, args...)
	within(t, 5*time.Second, func() error {
		out, err := exec.Command("ip", "-n", late.e.netns, "route", "show", blocks[0].String()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "via "+bed.hosts[0].addr4.String()) {
			return fmt.Errorf("%s has no route to %s via %s: %v %s", late.name, blocks[0], bed.hosts[0].addr4, err, out)
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
	needFabric(t)
	// Swarm mode refuses --live-restore, which the bed's engines run with.
	restartAll := func(liveRestore bool) {
		var wg sync.WaitGroup
		for _, h := range bed.hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := h.e.restartWith(liveRestore); err != nil {
					t.Errorf("%s: restart dockerd (live-restore %t): %v", h.name, liveRestore, err)
				}
			}()
		}
		wg.Wait()
	}
	restartAll(false)
	t.Cleanup(func() { restartAll(true) })
	mgr := bed.hosts[0]
	mgr.docker(t, "swarm", "init", "--advertise-addr", mgr.addr4.String(), "--listen-addr", mgr.addr4.String()+":2377")
	t.Cleanup(func() {
		for _, h := range bed.hosts {
			_, _ = h.dockerCmd("swarm", "leave", "--force")
		}
	})
	token := mgr.docker(t, "swarm", "join-token", "-q", "worker")
	for _, h := range bed.hosts[1:] {
		h.docker(t, "swarm", "join", "--token", token, "--advertise-addr", h.addr4.String(), "--listen-addr", h.addr4.String()+":2377", mgr.addr4.String()+":2377")
	}
	for _, h := range bed.hosts {
		h.docker(t, "network", "create", "--label", testLabel, "--config-only", "--ipam-driver", pluginName,
			"-o", "cluster=cl-sw", "--subnet", "198.19.48.0/24", "--ipv6", "--subnet", "fd00:c5::/48", "cl-sw-conf")
		t.Cleanup(func() { _, _ = h.dockerCmd("network", "rm", "cl-sw-conf") })
	}
	mgr.docker(t, "network", "create", "-d", pluginName, "--scope", "swarm", "--config-from", "cl-sw-conf", "cl-sw") // no label: a network with --config-from takes no configuration of its own
	t.Cleanup(func() { _, _ = mgr.dockerCmd("network", "rm", "cl-sw") })
	mgr.docker(t, "service", "create", "--detach", "--name", "cl-sw-svc", "--network", "cl-sw", "--mode", "global", image, "sleep", "3600")
	t.Cleanup(func() { _, _ = mgr.dockerCmd("service", "rm", "cl-sw-svc") })
	var tasks []started
	within(t, 60*time.Second, func() error {
		tasks = tasks[:0]
		for _, h := range bed.hosts {
			names, _ := h.dockerCmd("ps", "--filter", "name=cl-sw-svc", "--format", "{{.Names}}")
			for _, n := range strings.Fields(names) {
				tasks = append(tasks, started{h, n})
			}
		}
		if len(tasks) != len(bed.hosts) {
			ps, _ := mgr.dockerCmd("service", "ps", "--no-trunc", "cl-sw-svc")
			return fmt.Errorf("%d tasks running, want one per node:\n%s", len(tasks), ps)
		}
		return nil
	})
	addrs := wantClusterAddrs(t, tasks, "cl-sw", "198.19.48.0/24", "fd00:c5::/48")
	wantCrossHostPings(t, tasks, addrs)
}
