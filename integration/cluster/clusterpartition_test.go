//go:build integration

package cluster

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/integration/harness"
)

// A host cut off from the cluster store for longer than its node lease,
// while its plugin keeps running (issue 21): the lease expires, the host
// is forgotten from another host and its block is leased elsewhere; once
// the cut is healed the host must find out by itself, as it does after a
// restart (TestClusterForgottenWhileDisabled), though nothing restarted.

// etcdCut drops every packet between host h and etcd, both ways, with
// iptables in h's namespace: the plugin, dockerd and the fabric go on as
// before, and the other hosts are untouched. heal takes the rules away;
// the test's cleanup does too, and checks that none is left.
func etcdCut(t *testing.T, h *harness.ClusterHost) (heal func()) {
	t.Helper()
	rules := [][]string{
		{"INPUT", "-s", harness.EtcdAddr + "/32", "-j", "DROP"},
		{"OUTPUT", "-d", harness.EtcdAddr + "/32", "-j", "DROP"},
	}
	iptables := func(op string, rule []string) error {
		out, err := exec.Command("ip", append([]string{"netns", "exec", h.Engine.Netns, "iptables", op}, rule...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("iptables %s %s in %s: %v: %s", op, strings.Join(rule, " "), h.Name, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	present := func(rule []string) bool { return iptables("-C", rule) == nil }
	remove := func() error {
		var errs []string
		for _, rule := range rules {
			for present(rule) {
				if err := iptables("-D", rule); err != nil {
					errs = append(errs, err.Error())
					break
				}
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("%s", strings.Join(errs, "; "))
		}
		return nil
	}
	t.Cleanup(func() {
		if err := remove(); err != nil {
			t.Errorf("restore the bed: %v", err)
		}
		for _, rule := range rules {
			if present(rule) {
				t.Errorf("restore the bed: %s still has the rule %s", h.Name, strings.Join(rule, " "))
			}
		}
		// The host is back in the store before the next test uses it.
		waitAlive(t, h, true, 30*time.Second, t.Errorf)
	})
	for _, rule := range rules {
		if err := iptables("-I", rule); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		t.Helper()
		if err := remove(); err != nil {
			t.Fatal(err)
		}
	}
}

// nodeAlive reports whether the store holds a live node key of h.
func nodeAlive(h *harness.ClusterHost) (bool, error) {
	out, err := harness.ClusterCLI("status", "--json")
	if err != nil {
		return false, fmt.Errorf("dualstack cluster status: %v: %s", err, out)
	}
	var st harness.StatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return false, fmt.Errorf("dualstack cluster status --json: %v: %s", err, out)
	}
	return slices.ContainsFunc(st.Nodes, func(n struct {
		Name      string
		Addresses []netip.Addr
		Alive     bool
	}) bool {
		return n.Name == h.Name && n.Alive
	}), nil
}

// waitAlive waits up to d until the store shows h alive (or dead), and
// reports through fail when it does not.
func waitAlive(t *testing.T, h *harness.ClusterHost, alive bool, d time.Duration, fail func(string, ...any)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got, err := nodeAlive(h)
		if err == nil && got == alive {
			return
		}
		if time.Now().After(deadline) {
			fail("after %v, %s alive in the store: %t, want %t (%v)", d, h.Name, got, alive, err)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// runOn starts container name on network on h and returns its IPv4
// address there.
func runOn(t *testing.T, h *harness.ClusterHost, network, name string) netip.Addr {
	t.Helper()
	t.Cleanup(func() { _, _ = h.DockerCmd("rm", "-f", name) })
	h.Docker(t, "run", "-d", "--label", harness.TestLabel, "--name", name, "--network", network, harness.Image, "sleep", "3600")
	return netip.MustParseAddr(h.Docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", name))
}

// A host whose plugin runs on, cut off from etcd for longer than its
// node lease, is forgotten from elsewhere and its block leased by
// another host. Within the 30 s check of the cut being healed it says
// which of its endpoints hold addresses in the block it lost, that
// container keeps running with its address, and its new containers get
// addresses of a block of its own, none held on the other host.
func TestClusterPartitioned(t *testing.T) {
	h2, h3 := harness.Bed.Hosts[1], harness.Bed.Hosts[2]
	const network, subnet = "cl-pt", "198.19.72.0/24"
	harness.ClusterNet(t, network, []*harness.ClusterHost{h2, h3}, "-o", "cluster="+network, "--subnet", subnet)
	old := runOn(t, h3, network, "cl-pt-old")
	endpoint := h3.Docker(t, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").EndpointID}}", "cl-pt-old")
	held := harness.ClusterStatus(t).BlocksOf(network)[h3.Name]
	if len(held) != 1 || !held[0].Contains(old) {
		t.Fatalf("%s's blocks of %s: %v, want one holding %s", h3.Name, network, held, old)
	}
	lost := held[0]

	heal := etcdCut(t, h3)
	cut := time.Now()
	waitAlive(t, h3, false, cluster.DefaultTTL+15*time.Second, t.Fatalf)
	expired := time.Since(cut)
	t.Logf("%s's node lease expired %v after the cut (TTL %v)", h3.Name, expired.Round(100*time.Millisecond), cluster.DefaultTTL)
	if expired < cluster.DefaultTTL/2 {
		t.Fatalf("%s left the store %v after the cut, before its lease (TTL %v) could run out: the plugin stopped?", h3.Name, expired, cluster.DefaultTTL)
	}
	if out, err := harness.ClusterCLI("forget", h3.Name); err != nil || !strings.Contains(out, "released") {
		t.Fatalf("forget %s, cut off: %v: %s; want its blocks released", h3.Name, err, out)
	}
	// h2 has no block of the network yet: its first container leases the
	// first free one, the block h3 lost.
	if got := runOn(t, h2, network, "cl-pt-h2"); !lost.Contains(got) {
		t.Fatalf("%s's container got %s, want an address of the forgotten block %s", h2.Name, got, lost)
	}
	if rest := cluster.DefaultTTL + 5*time.Second - time.Since(cut); rest > 0 {
		time.Sleep(rest)
	}
	if on := h3.Docker(t, "plugin", "inspect", "-f", "{{.Enabled}}", harness.PluginName); on != "true" {
		t.Fatalf("%s's plugin is not enabled during the cut: %s", h3.Name, on)
	}
	heal()
	healed := time.Now()
	t.Logf("cut healed after %v", healed.Sub(cut).Round(100*time.Millisecond))

	said := "block " + lost.String() + " of cluster network " + network + " is no longer this host"
	harness.Within(t, 40*time.Second, func() error {
		for _, l := range strings.Split(h3.Engine.PluginLog(), "\n") {
			if strings.Contains(l, said) && strings.Contains(l, endpoint) && strings.Contains(l, old.String()) {
				t.Logf("%v after the heal, the user sees: %s", time.Since(healed).Round(100*time.Millisecond), l)
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
		return fmt.Errorf("%v after the cut was healed, %s's log has no line saying %q and naming endpoint %s with address %s", time.Since(healed).Round(time.Second), h3.Name, said, endpoint, old)
	})
	waitAlive(t, h3, true, 20*time.Second, t.Fatalf)
	t.Logf("%s registered again within %v of the heal", h3.Name, time.Since(healed).Round(100*time.Millisecond))
	if out := h3.Docker(t, "inspect", "-f", "{{.State.Running}}", "cl-pt-old"); out != "true" {
		t.Errorf("cl-pt-old is not running any more: %s", out)
	}
	if out := h3.Docker(t, "exec", "cl-pt-old", "ip", "-4", "addr", "show", "eth0"); !strings.Contains(out, old.String()+"/") {
		t.Errorf("cl-pt-old lost its address %s: %s", old, out)
	}
	cs := []harness.Started{{Host: h2, Name: "cl-pt-h2"}}
	for i := 0; i < 3; i++ {
		name := fmt.Sprintf("cl-pt-after-%d", i)
		if got := runOn(t, h3, network, name); lost.Contains(got) {
			t.Fatalf("%s handed out %s after the heal, in the block %s it lost to %s", h3.Name, got, lost, h2.Name)
		}
		cs = append(cs, harness.Started{Host: h3, Name: name})
	}
	// None twice, each inside its host's blocks as the store has them.
	harness.WantClusterAddrs(t, cs, network, subnet)
	blocks := harness.ClusterStatus(t).BlocksOf(network)
	if !slices.Contains(blocks[h2.Name], lost) || slices.Contains(blocks[h3.Name], lost) {
		t.Errorf("blocks of %s after the heal: %v, want %s held by %s alone", network, blocks, lost, h2.Name)
	}
}
