//go:build integration

package firewall

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The tests of issue 21, item 1: dualstack's firewall follows the host's
// rules as they change, within a second, not at a periodic check.

// followWindow is how soon after Docker's change dualstack's rules must
// hold again.
const followWindow = time.Second

// holdsWithin polls check until it holds, failing the test when it does
// not within followWindow of since; it returns how long it took.
func holdsWithin(t *testing.T, what string, since time.Time, check func() error) time.Duration {
	t.Helper()
	var err error
	for {
		if err = check(); err == nil {
			took := time.Since(since)
			t.Logf("%s: after %s", what, took.Round(time.Millisecond))
			return took
		}
		if time.Since(since) > followWindow {
			t.Fatalf("%s: not within %s: %v", what, followWindow, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFirewallNewDockerNetworks: Docker networks created after
// dualstack's (a plain one and an --internal one, each with a bridge of a
// custom name) are isolated from dualstack's containers within a second
// of `docker network create` returning, in both directions and both
// families; ports published on a host address stay reachable. The
// FORWARD policy is ACCEPT, so that the isolation is the rules' doing.
func TestFirewallNewDockerNetworks(t *testing.T) {
	if harness.Eng.External {
		t.Skip("needs the private engine's network namespace")
	}
	nextToDocker(t)
	harness.DSNet(t, "ds-nd", "--ipv6", "--subnet", "198.18.20.0/24", "--subnet", "fd00:20::/64")
	harness.RunContainer(t, "ds-nd-cli", "ds-nd")
	harness.RunServer(t, "ds-nd-srv", "ds-nd", "-p", "8096:80")
	dsBridge := "ds-" + harness.NetID(t, "ds-nd")[:12]
	ds := harness.ContainerNS(t, "ds-nd-cli")

	for i, internal := range []bool{false, true} {
		name, bridge := fmt.Sprintf("dk-nd%d", i), fmt.Sprintf("dknd%d", i)
		args := []string{"-d", "bridge", "-o", "com.docker.network.bridge.name=" + bridge, "--ipv6",
			"--subnet", fmt.Sprintf("198.18.%d.0/24", 21+i), "--subnet", fmt.Sprintf("fd00:%d::/64", 21+i)}
		if internal {
			args = append(args, "--internal")
		}
		harness.CreateNetwork(t, name, args...)
		created := time.Now()
		if harness.Eng.DockerFirewall != "nftables" {
			// Docker's rules name the bridge: dualstack's drop it.
			drop := fmt.Sprintf("-i %s -o %s -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP", dsBridge, bridge)
			holdsWithin(t, name+": dualstack's rules isolate the new network", created, func() error {
				for _, cmd := range []string{"iptables", "ip6tables"} {
					if r := tablesIn(t, cmd, "-S", "DUALSTACK-DROP"); !strings.Contains(r, drop) {
						return fmt.Errorf("%s: no %q in\n%s", cmd, drop, r)
					}
				}
				return nil
			})
		}
		srv := name + "-srv"
		harness.RunServer(t, srv, name)
		v4, v6 := harness.InspectAddrs(t, srv, name)
		for _, a := range []string{v4.String(), v6.String()} {
			harness.WantBlocked(t, "dualstack container to "+name+"'s container "+a, ds, harness.HostPort(a, "81"))
		}
		dk := harness.ContainerNS(t, srv)
		harness.WantBlocked(t, name+"'s container to a dualstack container's unpublished port", dk, harness.HostPort("198.18.20.3", "81"))
		harness.WantBlocked(t, name+"'s container to a dualstack container's unpublished port, IPv6", dk, harness.HostPort("fd00:20::3", "81"))
		if !internal {
			harness.WantReach(t, name+"'s container to dualstack's published port", dk, harness.HostPort(fmt.Sprintf("198.18.%d.1", 21+i), "8096"), "ds-nd-srv")
		}
	}
}

// TestFirewallDockerdRestart: dockerd, starting again, puts its jump back
// on top of FORWARD; within a second of the engine answering, dualstack's
// hook is back right after DOCKER-USER, ahead of every other Docker jump
// (the position, not only the text), and a Docker container cannot reach
// a dualstack container's unpublished port in either family, while the
// published one answers.
func TestFirewallDockerdRestart(t *testing.T) {
	if harness.Eng.External {
		t.Skip("restarting dockerd needs a private engine")
	}
	if harness.Eng.DockerFirewall == "nftables" {
		t.Skip("Docker's nftables backend puts no jump into iptables' FORWARD")
	}
	harness.AcceptForwarding(t)
	harness.DSNet(t, "ds-dr", "--ipv6", "--subnet", "198.18.30.0/24", "--subnet", "fd00:30::/64")
	harness.RunServer(t, "ds-dr-srv", "ds-dr", "-p", "8097:80")
	harness.CreateNetwork(t, "dk-dr", "-d", "bridge", "--ipv6", "--subnet", "198.18.31.0/24", "--subnet", "fd00:31::/64")
	harness.RunContainer(t, "dk-dr-cli", "dk-dr")

	if err := harness.Eng.Restart(); err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	holdsWithin(t, "dualstack's hook back in place in FORWARD", answered, func() error {
		for _, cmd := range []string{"iptables", "ip6tables"} {
			if err := hookInPlace(tablesIn(t, cmd, "-S", "FORWARD")); err != nil {
				return fmt.Errorf("%s: %w", cmd, err)
			}
		}
		return nil
	})
	harness.WaitRunning(t, "dk-dr-cli")
	dk := harness.ContainerNS(t, "dk-dr-cli")
	harness.WantBlocked(t, "Docker container to a dualstack container's unpublished port after a dockerd restart", dk, harness.HostPort("198.18.30.2", "81"))
	harness.WantBlocked(t, "the same, IPv6", dk, harness.HostPort("fd00:30::2", "81"))
	harness.WaitPlugin(t)
	harness.WantReach(t, "Docker container to dualstack's published port after a dockerd restart", dk, harness.HostPort("198.18.31.1", "8097"), "ds-dr-srv")
}

// hookInPlace checks FORWARD's rules (iptables -S): dualstack's hook is
// there once, right after the jump to DOCKER-USER (first without one),
// and ahead of every other jump to one of Docker's chains.
func hookInPlace(forward string) error {
	var rules []string
	for _, l := range strings.Split(forward, "\n") {
		if strings.HasPrefix(l, "-A FORWARD ") {
			rules = append(rules, strings.TrimPrefix(l, "-A FORWARD "))
		}
	}
	at, want := -1, 0
	for i, r := range rules {
		switch {
		case r == "-j DUALSTACK-FORWARD":
			if at >= 0 {
				return fmt.Errorf("dualstack's hook is there twice:\n%s", forward)
			}
			at = i
		case r == "-j DOCKER-USER":
			want = i + 1
		}
	}
	if at != want {
		return fmt.Errorf("dualstack's hook is rule %d, want %d (right after DOCKER-USER):\n%s", at+1, want+1, forward)
	}
	return nil
}
