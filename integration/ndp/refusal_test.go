//go:build integration

package ndp

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// refusalState is what a refused network must leave as it was: Docker's
// networks, the engine namespace's links, the proxy entries and dsnd0's
// sysctls.
func refusalState(t *testing.T) []string {
	t.Helper()
	state := strings.Fields(harness.Docker(t, "network", "ls", "--format", "{{.Name}}"))
	out, err := exec.Command("ip", "-n", harness.Eng.Netns, "-o", "link", "show").Output()
	if err != nil {
		t.Fatalf("links of the engine's namespace: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			state = append(state, "link "+strings.TrimSuffix(f[1], ":"))
		}
	}
	slices.Sort(state)
	return append(state, hostState(t)...)
}

// addrOnEngineLink gives dev in the engine's namespace one more address
// until the test ends.
func addrOnEngineLink(t *testing.T, addr, dev string) {
	t.Helper()
	harness.IPRun(t, "-n", harness.Eng.Netns, "addr", "add", addr, "dev", dev, "nodad")
	t.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "addr", "del", addr, "dev", dev).Run() })
}

// refusal is a network creation that must be refused.
type refusal struct {
	name, ndpProxy, subnet string
	more                   []string
	// ipam is the IPAM driver: dualstack's unless said.
	ipam string
	// setup makes what the case needs (owned by the case's t).
	setup func(t *testing.T)
	// words: the message names each; anyOf (after setup): one at least.
	words []string
	anyOf func() []string
}

// Refusals that need a real host, each with a message naming the problem,
// changing nothing.
func TestRefusals(t *testing.T) {
	harness.NewOnLink(t)
	// A dualstack bridge, with an address of the user's in a prefix no
	// network holds.
	harness.DSNet(t, "ds-nd-plain", "-o", "bridge=dsndplain", "--ipv6", "--subnet", "198.18.65.0/24", "--subnet", "fd00:6e::/64")
	free := "2001:db8:6e:0:d6::/80"
	// Another ndp_proxy network on the link, for the overlaps.
	var heldID string
	held := func(t *testing.T) {
		ndpNet(t, "ds-nd-held", "198.18.66.0/24", "2001:db8:6e:0:d7::/80")
		heldID = harness.NetID(t, "ds-nd-held")
	}
	cases := []refusal{
		{name: "no such interface", ndpProxy: "dsnd9", subnet: free, words: []string{"ndp_proxy", "dsnd9"}},
		{name: "a subnet outside the on-link prefix", ndpProxy: harness.OnLinkIF, subnet: "2001:db8:6f:0:d6::/80",
			words: []string{"ndp_proxy", harness.OnLinkIF, "2001:db8:6f:0:d6::/80"}},
		{name: "the whole on-link /64", ndpProxy: harness.OnLinkIF, subnet: harness.OnLinkPrefix,
			words: []string{"ndp_proxy", harness.OnLinkIF, harness.OnLinkPrefix}},
		// Subnets in the bridges' own on-link prefixes: the bridge is the
		// only thing wrong.
		{name: "a dualstack bridge", ndpProxy: "dsndplain", subnet: "fd00:6d:0:0:d6::/80",
			setup: func(t *testing.T) { addrOnEngineLink(t, "fd00:6d::1/64", "dsndplain") },
			words: []string{"ndp_proxy", "dsndplain", "bridge"}},
		{name: "Docker's bridge", ndpProxy: "docker0", subnet: "fd00:6f:0:0:d6::/80",
			setup: func(t *testing.T) {
				if exec.Command("ip", "-n", harness.Eng.Netns, "link", "show", "docker0").Run() != nil {
					t.Skip("the engine has no docker0")
				}
				addrOnEngineLink(t, "fd00:6f::1/64", "docker0")
			},
			words: []string{"ndp_proxy", "docker0", "bridge"}},
		// dualstack's IPAM refuses overlapping pools before the driver
		// sees them; with Docker's IPAM, the driver refuses.
		{name: "a subnet overlapping another ndp_proxy network's, dualstack's IPAM", ndpProxy: harness.OnLinkIF,
			subnet: "2001:db8:6e:0:d7::/96", setup: held, words: []string{"2001:db8:6e:0:d7::/80"}},
		{name: "a subnet overlapping another ndp_proxy network's, Docker's IPAM", ndpProxy: harness.OnLinkIF,
			subnet: "2001:db8:6e:0:d7::/96", ipam: "default", setup: held,
			words: []string{"ndp_proxy", harness.OnLinkIF}, anyOf: func() []string { return []string{"ds-nd-held", heldID[:12], "2001:db8:6e:0:d7::/80"} }},
		{name: "a gateway the neighbour answers for", ndpProxy: harness.OnLinkIF, subnet: harness.OnLinkSubnet,
			more: []string{"--gateway", harness.OnLinkNeighbour}, words: []string{harness.OnLinkNeighbour}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { wantRefused(t, c) })
	}
	// The refused networks held nothing: their subnets are free.
	ndpNet(t, "ds-nd-free", "198.18.67.0/24", free)
	ndpNet(t, "ds-nd-free0", "198.18.68.0/24", harness.OnLinkSubnet)
}

// wantRefused wants c's network creation refused with a message naming
// the problem, and the host as it was.
func wantRefused(t *testing.T, c refusal) {
	t.Helper()
	if c.setup != nil {
		c.setup(t)
	}
	before := refusalState(t)
	ipam := c.ipam
	if ipam == "" {
		ipam = harness.PluginName
	}
	args := []string{"network", "create", "--label", harness.TestLabel, "-d", harness.PluginName, "--ipam-driver", ipam,
		"-o", "ndp_proxy=" + c.ndpProxy, "--ipv6", "--subnet", "198.18.69.0/24", "--subnet", c.subnet}
	args = append(append(args, c.more...), "ds-nd-refused")
	t.Cleanup(func() { _, _ = harness.DockerCmd("network", "rm", "ds-nd-refused") })
	out := harness.DockerFails(t, args...)
	harness.WantMessage(t, out, c.words...)
	if c.anyOf != nil {
		if alts := c.anyOf(); !slices.ContainsFunc(alts, func(w string) bool { return strings.Contains(out, w) }) {
			t.Errorf("the message names none of %q:\n%s", alts, out)
		}
	}
	harness.NetworkGone(t, "ds-nd-refused")
	if after := refusalState(t); !slices.Equal(after, before) {
		t.Errorf("the refusal changed the host: now\n%v\nbefore\n%v", after, before)
	}
}
