//go:build integration

package pd

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// pdNet creates a dualstack bridge network with an IPv4 and a ULA subnet
// whose containers also get addresses from the prefix delegated on the
// bed's uplink (-o delegated_prefix=dspd0), and removes it when the test
// ends.
func pdNet(t *testing.T, name, subnet4, subnet6 string, args ...string) {
	t.Helper()
	harness.DSNet(t, name, append([]string{"-o", "delegated_prefix=" + harness.DelegationIF, "--ipv6", "--subnet", subnet4, "--subnet", subnet6}, args...)...)
	harness.RemoveNetworkAtEnd(t, name)
}

// server is a container of the suite's (harness.StartServers); its
// Addr is its Docker-visible address, in the ULA subnet.
type server = harness.Server

// global is the container's address in the network's /64 net: the
// network's /64 and the host part of its ULA address.
func global(s server, net netip.Prefix) netip.Addr {
	a, u := net.Addr().As16(), s.Addr.As16()
	copy(a[8:], u[8:])
	return netip.AddrFrom16(a)
}

// parallel runs check for every server at once and reports each error
// (t.Error: every server is checked); it reports whether all passed.
func parallel(t *testing.T, servers []server, check func(s server) error) bool {
	t.Helper()
	ok := true
	for _, err := range harness.EachServer(servers, check) {
		if err != nil {
			t.Error(err)
			ok = false
		}
	}
	return ok
}

// delegated is where delegated addresses come from: the documentation
// prefix, of which the ULA subnets take nothing.
var delegated = netip.MustParsePrefix("2001:db8::/32")

// globals lists the container's addresses from a delegated prefix.
func globals(s server) ([]harness.LifetimeAddr, error) {
	all, err := harness.GlobalAddrs6(s.NS(), "eth0")
	if err != nil {
		return nil, fmt.Errorf("%s: %v", s.Name, err)
	}
	var out []harness.LifetimeAddr
	for _, a := range all {
		if delegated.Contains(a.Prefix().Addr()) {
			out = append(out, a)
		}
	}
	return out, nil
}

// wantAddrs checks s's delegated addresses: exactly one preferred, in
// current (the network's /64 of the prefix held now; none when current
// is not valid), the others deprecated, each in one of old.
func wantAddrs(s server, current netip.Prefix, old ...netip.Prefix) error {
	addrs, err := globals(s)
	if err != nil {
		return err
	}
	var preferred []harness.LifetimeAddr
	for _, a := range addrs {
		if a.Tentative || !a.NoDAD || a.PrefixLen != 64 {
			return fmt.Errorf("%s: %s: want nodad, not tentative, /64", s.Name, a)
		}
		if !a.Deprecated {
			preferred = append(preferred, a)
			continue
		}
		if !slices.ContainsFunc(old, func(p netip.Prefix) bool { return a.Prefix().Addr() == global(s, p) }) {
			return fmt.Errorf("%s has the deprecated %s, want only the host part of %s in %v", s.Name, a, s.Addr, old)
		}
	}
	if !current.IsValid() {
		if len(preferred) > 0 {
			return fmt.Errorf("%s has %v: want no preferred delegated address", s.Name, preferred)
		}
		return nil
	}
	want := global(s, current)
	if len(preferred) != 1 || preferred[0].Prefix().Addr() != want {
		return fmt.Errorf("%s has %v, want one preferred delegated address, %s/64 (the host part of %s)", s.Name, addrs, want, s.Addr)
	}
	if a := preferred[0]; a.Valid > uint32(harness.DelegationValid.Seconds()) || a.Preferred > uint32(harness.DelegationPreferred.Seconds()) {
		return fmt.Errorf("%s: %s: want the lease's lifetimes, at most valid %v, preferred %v", s.Name, a, harness.DelegationValid, harness.DelegationPreferred)
	}
	return nil
}

// eventually retries check every 200 ms until it succeeds or d passes,
// and returns its last error.
func eventually(d time.Duration, check func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := check()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// get fetches http://addr/ from the namespace at nsPath and wants body,
// retrying for up to 5 s (a server may still be starting).
func get(what, nsPath string, addr netip.Addr, port, body string) error {
	return harness.GetBody(what, nsPath, harness.HostPort(addr.String(), port), body)
}

// blocked wants a TCP connection from the namespace at nsPath to addr to
// fail within a short time.
func blocked(what, nsPath string, addr netip.Addr, port string) error {
	return harness.Blocked(what, nsPath, harness.HostPort(addr.String(), port))
}
