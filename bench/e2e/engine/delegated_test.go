//go:build integration

package engine

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// BenchmarkDelegatedPrefix's prefix (issue 24): the pool of the Kea bed
// (harness.NewDelegation), a /56 it delegates whole, and delegatedNet,
// the /64 of it the delegated_prefix network takes (subnet ID 1, the
// default: the lowest free one).
var (
	delegatedPool = netip.MustParsePrefix("2001:db8:124::/56")
	delegatedNet  = netip.MustParsePrefix("2001:db8:124:1::/64")
)

// BenchmarkDelegatedPrefix measures `docker run --rm` (as BenchmarkRunRm)
// on a dualstack bridge with an IPv4 subnet and a ULA /64, against the
// same with -o delegated_prefix=IF, IF the uplink of the Kea bed, whose
// prefix is bound before the first measured cycle, and against Docker's
// own bridge with an IPv4 subnet and a ULA /64 too, in the same engine
// and run, in turns: the median per network. Issue 24's goal: the
// delegated_prefix network at most 1.05 times the plain one.
func BenchmarkDelegatedPrefix(b *testing.B) {
	if harness.Eng.External {
		b.Skip("needs the private engine's network namespace")
	}
	bed := harness.NewDelegation(b)
	bed.RouteToHost(b, delegatedPool)
	bed.StartKea(b, delegatedPool)
	harness.CreateNetwork(b, "ds-bpd-docker", "-d", "bridge", "--ipv6",
		"--subnet", "198.18.243.0/24", "--subnet", "fd00:243::/64")
	harness.CreateNetwork(b, "ds-bpd-plain", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", "198.18.241.0/24", "--subnet", "fd00:241::/64")
	harness.CreateNetwork(b, "ds-bpd-delegated", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"-o", "delegated_prefix="+harness.DelegationIF, "--subnet", "198.18.242.0/24", "--subnet", "fd00:242::/64")
	wantDelegated(b, bed, "ds-bpd-delegated")
	api := engineAPI{harness.NewEngineAPI(b)}
	inTurns(b, []benchNetwork{{"docker-bridge", "ds-bpd-docker"}, {"dualstack", "ds-bpd-plain"}, {"delegated", "ds-bpd-delegated"}}, api.runRm)
}

// wantDelegated fails the benchmark unless a container started on the
// delegated_prefix network gets, within 20 s of the network's creation
// (the client's first Solicit and Kea's answer), its global address: the
// network's /64 of the delegated prefix and the host part of its ULA
// address, nodad, preferred. A benchmark of networks whose prefix is not
// bound would measure only the plain bridge again.
func wantDelegated(b *testing.B, bed *harness.Delegation, network string) {
	const c = "ds-bpd-check"
	harness.RunContainer(b, c, network)
	defer func() { _, _ = harness.DockerCmd("rm", "-f", c) }()
	_, ula := harness.InspectAddrs(b, c, network)
	if !ula.IsValid() {
		b.Fatalf("%s on %s has no IPv6 address", c, network)
	}
	a, u := delegatedNet.Addr().As16(), ula.As16()
	copy(a[8:], u[8:])
	want := netip.AddrFrom16(a)
	ns := "/proc/" + harness.Docker(b, "inspect", "-f", "{{.State.Pid}}", c) + "/ns/net"
	var have []harness.LifetimeAddr
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		have, err = harness.GlobalAddrs6(ns, "eth0")
		if err == nil && holds(have, want) {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	b.Fatalf("%s on %s (delegated_prefix=%s) holds %v (%v) 20 s after the network's creation, want %s/64 preferred, nodad "+
		"(the host part of %s): the plugin's log says why\nKea's leases: %v\nKea's log:\n%s",
		c, network, harness.DelegationIF, have, err, want, ula, bed.Leases(b), bed.KeaLog())
}

// holds reports whether addrs has want, /64, nodad and preferred.
func holds(addrs []harness.LifetimeAddr, want netip.Addr) bool {
	for _, a := range addrs {
		if a.Prefix() == netip.PrefixFrom(want, 64) && a.NoDAD && !a.Deprecated && !a.Tentative {
			return true
		}
	}
	return false
}
