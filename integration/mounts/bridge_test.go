//go:build integration

package mounts

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 3, acceptance 2, and issue 12: the container's first command
// already sees every address, none tentative, on any host.
func TestFirstCommandSeesEveryAddress(t *testing.T) {
	harness.DSNet(t, "ds-first", harness.FourSubnets...)
	firstCommandSees(t, "ds-first", func(run int) []string {
		return harness.AddrSet(run+2, "2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64")
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
		out := harness.Docker(t, "run", "--rm", "--label", harness.TestLabel, "--network", network, harness.Image, "ip", "-6", "addr", "show", "eth0")
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

// Issue 3, acceptance 4: connect gives eth1 the full set, disconnect takes
// it away and releases the addresses. Issue 12: the addresses are there
// within 1 s of `docker network connect`, on any host.
func TestConnectDisconnect(t *testing.T) {
	harness.DSNet(t, "ds-c1", "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:a::/64")
	harness.DSNet(t, "ds-c2", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:b::/64", "--subnet", "2001:db8:c::/64")
	harness.RunContainer(t, "ds-conn", "ds-c1")
	harness.Docker(t, "network", "connect", "ds-c2", "ds-conn")
	want := harness.AddrSet(2, "192.0.2.0/24", "2001:db8:b::/64", "2001:db8:c::/64")
	harness.Within(t, time.Second, func() error {
		have := map[string]bool{}
		for _, a := range harness.AddrsOf(t, "ds-conn", "eth1") {
			have[fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)] = true
		}
		for _, w := range want {
			if !have[w] {
				return fmt.Errorf("eth1 lacks %s: %v", w, have)
			}
		}
		return nil
	})
	harness.WantIfaceAddrs(t, "ds-conn", "eth1", want...)
	harness.Ping(t, "ds-conn", "192.0.2.1", "2001:db8:b::1", "2001:db8:c::1")

	harness.Docker(t, "network", "disconnect", "ds-c2", "ds-conn")
	var links []struct {
		Name string `json:"ifname"`
	}
	harness.IPJSON(t, "ds-conn", &links, "link", "show")
	for _, l := range links {
		if l.Name == "eth1" {
			t.Fatal("eth1 still there after disconnect")
		}
	}
	// Released: each address can be asked for again.
	for _, a := range []string{"--ip6=2001:db8:b::2", "--ip6=2001:db8:c::2", "--ip=192.0.2.2"} {
		harness.Docker(t, "run", "--rm", "--label", harness.TestLabel, "--network", "ds-c2", a, harness.Image, "true")
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
	harness.DSNet(t, "ds-live", "--ipv6", "--subnet", liveSubnets[0], "--subnet", liveSubnets[1], "--subnet", liveSubnets[2])
	harness.RunContainer(t, "ds-live-a", "ds-live")
	harness.RunContainer(t, "ds-live-b", "ds-live")
	harness.WantIfaceAddrs(t, "ds-live-b", "eth0", harness.AddrSet(3, liveSubnets...)...)
	bAddrs := harness.AddrSet(3, liveSubnets...)
	next := 4
	parent := t
	newContainer := func(t *testing.T, name string) {
		harness.RunContainer(parent, name, "ds-live")
		harness.WantIfaceAddrs(t, name, "eth0", harness.AddrSet(next, liveSubnets...)...)
		harness.Ping(t, name, addrsOnly(bAddrs)...)
		next++
	}
	br := "ds-" + harness.NetID(t, "ds-live")[:12]

	t.Run("plugin restart with running containers", func(t *testing.T) {
		// The containers keep pinging while the plugin is killed and back.
		pinger := exec.Command("docker", "exec", "ds-live-a", "ping", "-c", "30", "-i", "0.1", "-W", "1", "2001:db8:6::3")
		out := &strings.Builder{}
		pinger.Stdout, pinger.Stderr = out, out
		if err := pinger.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		harness.KillPlugin(t)
		if err := pinger.Wait(); err != nil || !strings.Contains(out.String(), " 0% packet loss") {
			t.Fatalf("pings across the plugin restart: %v\n%s", err, out)
		}
		harness.Ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-p")
	})
	t.Run("container stop and start", func(t *testing.T) {
		harness.Docker(t, "stop", "-t", "1", "ds-live-b")
		harness.Docker(t, "start", "ds-live-b")
		bAddrs = harness.AddrSet(next, liveSubnets...)
		next++
		harness.WantIfaceAddrs(t, "ds-live-b", "eth0", bAddrs...)
		harness.Ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-s")
	})
	t.Run("dockerd restart", func(t *testing.T) {
		if harness.Eng.External {
			t.Skip("restarting dockerd needs a private engine")
		}
		if err := harness.Eng.Restart(); err != nil {
			t.Fatal(err)
		}
		harness.WaitPlugin(t)
		harness.Ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-d")
	})
	t.Run("simulated reboot", func(t *testing.T) {
		if out, err := exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", br).CombinedOutput(); err != nil {
			t.Fatalf("delete %s: %v: %s", br, err, out)
		}
		harness.KillPlugin(t)
		harness.WantIfaceAddrs(t, "", br, "198.51.100.1/24", "2001:db8:5::1/64", "2001:db8:6::1/64")
		harness.Ping(t, "ds-live-a", addrsOnly(bAddrs)...)
		newContainer(t, "ds-live-r")
	})
}
