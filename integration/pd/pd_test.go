//go:build integration

package pd

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// The bed's Kea delegates pool1, then, renumbered, pool2; the network
// takes subnet ID 1 of each (the default: the lowest free ID).
var (
	pool1 = netip.MustParsePrefix("2001:db8:100::/56")
	pool2 = netip.MustParsePrefix("2001:db8:200::/56")
	net1  = netip.MustParsePrefix("2001:db8:100:1::/64")
	net2  = netip.MustParsePrefix("2001:db8:200:1::/64")
)

const (
	pdNetwork = "ds-pd"
	pdULA     = "fd00:70::/64"
	// usualStart is how long a docker run may take on a loaded CI machine:
	// one that waits for a DHCPv6 server that does not answer takes longer.
	usualStart = 10 * time.Second
)

// Acceptance, in one run on one network (the waits of each step overlap
// the next's, to keep the suite short): containers started with no server
// get their global address when the server comes; 20 containers each
// hold one, reachable from the router on a published port only; the
// plugin's restart and SIGKILL change nothing; a new prefix renumbers
// every container within T1 + 5 s, and the old addresses go when their
// valid lifetime ends.
func TestDelegatedPrefix(t *testing.T) {
	b := harness.NewDelegation(t)
	pdNet(t, pdNetwork, "198.18.70.0/24", pdULA)
	servers := noServer(t, b)
	servers = append(servers, twenty(t, b)...)
	t.Logf("%d containers, each at its address in %s", len(servers), net1)
	lease := oneLease(t, b, pool1)
	wantStatus(t, pdNetwork, lease, pool1, nil, net1, nil)
	wantUnreachable(t, pool1)
	wantCLI(t, pool1.String(), net1.String())
	restarts(t, b, servers, lease)
	renumber(t, b, servers, lease)
}

// noServer starts two containers while Kea does not run: they start as
// usual, with their ULA address and no global one; then Kea starts, and
// the global address comes (the client's next Solicit: they back off 1,
// 2, 4, 8, 16 s... from the network's creation).
func noServer(t *testing.T, b *harness.Delegation) []server {
	t.Helper()
	servers := harness.StartServers(t, pdNetwork, harness.ServerNames(pdNetwork, 0, 2))
	ula := netip.MustParsePrefix(pdULA)
	ok := parallel(t, servers, func(s server) error {
		if s.Took > usualStart || !ula.Contains(s.Addr) {
			return fmt.Errorf("%s started in %v with %s: want within %v with an address in %s, no DHCPv6 server running", s.Name, s.Took, s.Addr, usualStart, ula)
		}
		addrs, err := globals(s)
		if err == nil && len(addrs) > 0 {
			err = fmt.Errorf("%s has %v with no DHCPv6 server running: want no delegated address", s.Name, addrs)
		}
		return err
	})
	if !ok {
		t.FailNow()
	}
	t.Logf("with no DHCPv6 server, the containers started in %v and %v", servers[0].Took.Round(time.Millisecond), servers[1].Took.Round(time.Millisecond))
	wantStatus(t, pdNetwork, harness.KeaLease{}, netip.Prefix{}, nil, netip.Prefix{}, nil)
	if st, data, _ := readStatus(); len(st.Uplinks) == 1 && st.Uplinks[0].State != "soliciting" {
		t.Errorf("with no DHCPv6 server the status file shows\n%s\nwant the state soliciting", data)
	}
	wantUnreachable(t)
	b.RouteToHost(t, pool1)
	b.StartKea(t, pool1)
	start := time.Now()
	ok = parallel(t, servers, func(s server) error {
		return eventually(35*time.Second, func() error { return wantAddrs(s, net1) })
	})
	if !ok {
		t.Fatalf("Kea's leases: %v\nKea's log:\n%s", b.Leases(t), b.KeaLog())
	}
	t.Logf("Kea started: the containers had their global addresses %.1fs later", time.Since(start).Seconds())
	return servers
}

// twenty starts 18 more containers, 20 in all: each holds its global
// address at once, the router reaches its published port there, and not
// the unpublished one.
func twenty(t *testing.T, b *harness.Delegation) []server {
	t.Helper()
	servers := harness.StartServers(t, pdNetwork, harness.ServerNames(pdNetwork, 2, 20))
	parallel(t, servers, func(s server) error {
		return eventually(5*time.Second, func() error { return wantAddrs(s, net1) })
	})
	all := append(harness.InspectServers(t, pdNetwork, harness.ServerNames(pdNetwork, 0, 2)), servers...)
	wantDistinct(t, all, net1)
	wantHostAddr(t, gateway(net1), true)
	harness.AcceptForwarding(t)
	parallel(t, all, func(s server) error {
		a := global(s, net1)
		if err := get("the router", b.Router.Path, a, "80", s.Name); err != nil {
			return err
		}
		// Port 81 is open (the host reaches it) but not published.
		if err := harness.Dial(harness.EngineNetns(), harness.HostPort(a.String(), "81"), 2*time.Second); err != nil {
			return fmt.Errorf("the host cannot connect to %s's unpublished port: %v", s.Name, err)
		}
		return blocked("the router", b.Router.Path, a, "81")
	})
	return servers
}

// restarts restarts the plugin (disable, enable), then SIGKILLs it: each
// time, once the plugin has renewed its lease, Kea holds the one lease
// of the same prefix to the same DUID and IAID, and every container the
// same one global address.
func restarts(t *testing.T, b *harness.Delegation, servers []server, lease harness.KeaLease) {
	t.Helper()
	before := addrsOf(t, servers)
	for _, restart := range []struct {
		what string
		do   func()
	}{
		{"disable and enable", func() {
			harness.Docker(t, "plugin", "disable", "-f", harness.PluginName)
			harness.Docker(t, "plugin", "enable", harness.PluginName)
			harness.WaitPlugin(t)
		}},
		{"SIGKILL", func() { harness.KillPlugin(t) }},
	} {
		restart.do()
		back := time.Now()
		// A Renew after the restart: the lease ends a valid lifetime
		// after it.
		err := eventually(harness.DelegationT1+5*time.Second, func() error {
			l := oneLease(t, b, pool1)
			if l.Expire.Before(back.Add(harness.DelegationValid - time.Second)) {
				return fmt.Errorf("no Renew within %v after the plugin's %s: Kea's lease %s", harness.DelegationT1+5*time.Second, restart.what, l)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if l := oneLease(t, b, pool1); l.DUID != lease.DUID || l.IAID != lease.IAID {
			t.Errorf("after the plugin's %s, Kea's lease is %s, want the same DUID and IAID as before: %s", restart.what, l, lease)
		}
		if after := addrsOf(t, servers); !slices.Equal(after, before) {
			t.Errorf("after the plugin's %s the containers have\n%v\nwant, as before:\n%v", restart.what, after, before)
		}
		wantDistinct(t, servers, net1)
		wantStatus(t, pdNetwork, lease, pool1, nil, net1, nil)
		t.Logf("the plugin's %s: same lease, same addresses (%s)", restart.what, lease)
	}
}

// renumber makes Kea delegate pool2 instead, its leases dropped: within
// T1 + 5 s every container holds its address in net2, the old one
// deprecated, the router reaches the new ones, a container started now
// gets one in net2; the old addresses are gone when their valid lifetime
// ends. The new lease is the same client's (DUID and IAID of lease).
func renumber(t *testing.T, b *harness.Delegation, servers []server, lease harness.KeaLease) {
	t.Helper()
	b.RouteToHost(t, pool2)
	b.Renumber(t, pool2)
	changed := time.Now()
	within := harness.DelegationT1 + 5*time.Second
	ok := parallel(t, servers, func(s server) error {
		return eventually(time.Until(changed.Add(within)), func() error { return wantAddrs(s, net2, net1) })
	})
	if !ok {
		t.Fatalf("not renumbered within %v; Kea's leases: %v\nKea's log:\n%s", within, b.Leases(t), b.KeaLog())
	}
	t.Logf("renumbered %.1fs after Kea's pool changed", time.Since(changed).Seconds())
	parallel(t, servers, func(s server) error { return wantDeprecated(s, net1) })
	wantHostAddr(t, gateway(net2), true)
	wantHostAddr(t, gateway(net1), true)
	wantUnreachable(t, pool1, pool2)
	parallel(t, servers, func(s server) error { return get("the router", b.Router.Path, global(s, net2), "80", s.Name) })
	late := harness.StartServers(t, pdNetwork, harness.ServerNames(pdNetwork, 20, 21))
	parallel(t, late, func(s server) error {
		return eventually(5*time.Second, func() error { return wantAddrs(s, net2, net1) })
	})
	parallel(t, late, func(s server) error { return get("the router", b.Router.Path, global(s, net2), "80", s.Name) })
	if l := oneLease(t, b, pool2); l.DUID != lease.DUID || l.IAID != lease.IAID {
		t.Errorf("Kea's lease after renumbering is %s, want the same DUID and IAID as before: %s", l, lease)
	}
	wantStatus(t, pdNetwork, lease, pool2, []netip.Prefix{pool1}, net2, []netip.Prefix{net1})

	// The old addresses go when the valid lifetime last granted ends, a
	// Renew (T1) at most before the change.
	all := append(servers, late...)
	parallel(t, all, func(s server) error {
		return eventually(time.Until(changed.Add(harness.DelegationValid+5*time.Second)), func() error { return wantAddrs(s, net2) })
	})
	t.Logf("the old addresses went %.1fs after Kea's pool changed", time.Since(changed).Seconds())
	wantHostAddr(t, gateway(net1), false)
	wantDistinct(t, all, net2)
	wantStatus(t, pdNetwork, lease, pool2, nil, net2, nil)
	wantUnreachable(t, pool2)
}

// wantDeprecated wants s to hold its address in old, deprecated
// (preferred lifetime 0) but still valid: connections to it go on.
func wantDeprecated(s server, old netip.Prefix) error {
	addrs, err := globals(s)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		if a.Prefix().Addr() == global(s, old) {
			if !a.Deprecated || a.Preferred != 0 || a.Valid == 0 {
				return fmt.Errorf("%s: %s: want it deprecated, preferred lifetime 0, still valid", s.Name, a)
			}
			return nil
		}
	}
	return fmt.Errorf("%s has %v: want its old address %s kept, deprecated, until its valid lifetime ends", s.Name, addrs, global(s, old))
}

// oneLease wants Kea's lease file to hold exactly one lease, of prefix,
// and returns it.
func oneLease(t *testing.T, b *harness.Delegation, prefix netip.Prefix) harness.KeaLease {
	t.Helper()
	leases := b.Leases(t)
	if len(leases) != 1 || leases[0].Prefix != prefix || leases[0].Valid == 0 {
		t.Fatalf("Kea's leases: %v, want one of %s", leases, prefix)
	}
	return leases[0]
}

// addrsOf lists each server's delegated addresses ("name addr/64 ..."),
// lifetimes left out.
func addrsOf(t *testing.T, servers []server) []string {
	t.Helper()
	var out []string
	for _, s := range servers {
		addrs, err := globals(s)
		if err != nil {
			t.Fatal(err)
		}
		var l []string
		for _, a := range addrs {
			l = append(l, a.Prefix().String())
		}
		out = append(out, s.Name+" "+strings.Join(harness.Sorted(l), " "))
	}
	return out
}

// wantDistinct wants every server to hold exactly one address in net,
// each a different one.
func wantDistinct(t *testing.T, servers []server, net netip.Prefix) {
	t.Helper()
	seen := map[netip.Addr]string{}
	for _, s := range servers {
		addrs, err := globals(s)
		if err != nil {
			t.Fatal(err)
		}
		var in []netip.Addr
		for _, a := range addrs {
			if net.Contains(a.Prefix().Addr()) {
				in = append(in, a.Prefix().Addr())
			}
		}
		if len(in) != 1 {
			t.Errorf("%s has %v in %s, want one address", s.Name, in, net)
			continue
		}
		if other, dup := seen[in[0]]; dup {
			t.Errorf("%s and %s both hold %s", other, s.Name, in[0])
		}
		seen[in[0]] = s.Name
	}
}

// gateway is the bridge's address in net: the host part of the ULA
// subnet's gateway (::1).
func gateway(net netip.Prefix) netip.Addr {
	a := net.Addr().As16()
	a[15] = 1
	return netip.AddrFrom16(a)
}

// wantHostAddr wants the engine's host to hold addr (on the network's
// bridge), or not.
func wantHostAddr(t *testing.T, addr netip.Addr, want bool) {
	t.Helper()
	out, err := exec.Command("ip", "-n", harness.Eng.Netns, "-j", "-6", "addr", "show", "to", addr.String()+"/128").Output()
	if err != nil {
		t.Fatalf("ip -6 addr show to %s in the engine's namespace: %v", addr, err)
	}
	var links []struct {
		IfName   string                 `json:"ifname"`
		AddrInfo []harness.LifetimeAddr `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("ip -6 addr show to %s: %v: %s", addr, err, out)
	}
	if has := len(links) > 0; has != want {
		t.Errorf("the host holds %s: %v (%s), want %v", addr, has, strings.TrimSpace(string(out)), want)
	}
}
