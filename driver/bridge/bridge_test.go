package bridge_test

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/driver/bridge"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

const (
	brName   = "dstbr0"
	hostName = "dstvh0"
	peerName = "dstvc0"
	// tOwner marks the test's links as dualstack's (links.Mark).
	tOwner = "test"
)

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

var stacks = []struct {
	name    string
	gws     []netip.Prefix
	mtu     int // 0: kernel default
	hairpin bool
}{
	{"ipv4", pfx("198.51.100.1/24"), 1400, true},
	{"ipv6", pfx("2001:db8:1::1/64"), 1280, false},
	{"dual", pfx("198.51.100.1/24", "2001:db8:1::1/64"), 0, true},
	{"dual-3v6", pfx("198.51.100.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64", "fd00:d5:3::1/64"), 9000, false},
}

// in runs fn inside ns, failing t on error.
func in(t *testing.T, ns netnstest.NS, fn func() error) {
	t.Helper()
	if err := netns.Do(ns.Path, fn); err != nil {
		t.Fatal(err)
	}
}

// assertBridge checks, the way a user would see it, that the bridge exists,
// is a bridge, is up, has the MTU and carries the gateways as wanted.
func assertBridge(t *testing.T, ns netnstest.NS, gws []netip.Prefix, mtu int) {
	t.Helper()
	l, ok := ns.Link(t, brName)
	if !ok {
		t.Fatalf("bridge %s missing in %s", brName, ns.Name)
	}
	if l.LinkInfo.Kind != "bridge" {
		t.Errorf("%s is a %q, want a bridge", brName, l.LinkInfo.Kind)
	}
	if !l.Up() {
		t.Errorf("%s is not up: flags %v", brName, l.Flags)
	}
	if mtu == 0 {
		mtu = 1500
	}
	if l.MTU != mtu {
		t.Errorf("%s has MTU %d, want %d", brName, l.MTU, mtu)
	}
	addrs := ns.Addrs(t, brName)
	for _, g := range gws {
		i := slices.IndexFunc(addrs, func(a netnstest.Addr) bool { return a.Prefix() == g })
		if i < 0 {
			t.Errorf("gateway %s missing on %s: have %+v", g, brName, addrs)
			continue
		}
		if g.Addr().Is6() && (!addrs[i].NoDAD || addrs[i].Tentative || addrs[i].DADFailed) {
			t.Errorf("gateway %s on %s: nodad=%t tentative=%t dadfailed=%t; want nodad, not tentative",
				g, brName, addrs[i].NoDAD, addrs[i].Tentative, addrs[i].DADFailed)
		}
	}
	// The same through netlink, to record the raw IFA flags.
	in(t, ns, func() error {
		got, err := bridge.Addresses(brName)
		for _, a := range got {
			t.Logf("%s: %s flags=%#x", brName, a.IPNet, a.Flags)
			if a.IP.To4() == nil && (a.Flags&unix.IFA_F_NODAD == 0 || a.Flags&unix.IFA_F_TENTATIVE != 0) &&
				a.Scope == unix.RT_SCOPE_UNIVERSE {
				t.Errorf("netlink: %s on %s has flags %#x: want IFA_F_NODAD and not IFA_F_TENTATIVE", a.IPNet, brName, a.Flags)
			}
		}
		return err
	})
	for k, want := range map[string]string{"accept_ra": "0", "accept_dad": "0"} {
		if got := ns.Sysctl(t, "net/ipv6/conf/"+brName+"/"+k); got != want {
			t.Errorf("%s: %s = %s, want %s", brName, k, got, want)
		}
	}
}

func TestEnsureCreateVethDelete(t *testing.T) {
	for _, st := range stacks {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			host := netnstest.New(t)
			cfg := bridge.Config{Owner: tOwner, Name: brName, MTU: st.mtu, Gateways: st.gws}

			var created bool
			in(t, host, func() (err error) { created, err = bridge.Ensure(cfg); return err })
			if !created {
				t.Error("Ensure on an empty namespace reported created=false")
			}
			assertBridge(t, host, st.gws, st.mtu)

			mac := net.HardwareAddr{0x0a, 0x58, 0xc6, 0x33, 0x64, 0x0a}
			in(t, host, func() error {
				return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName,
					MTU: st.mtu, Hairpin: st.hairpin, MAC: mac})
			})
			wantMTU := st.mtu
			if wantMTU == 0 {
				wantMTU = 1500
			}
			h, ok := host.Link(t, hostName)
			if !ok {
				t.Fatalf("host end %s missing", hostName)
			}
			if h.LinkInfo.Kind != "veth" || h.Master != brName || h.LinkInfo.SlaveKind != "bridge" {
				t.Errorf("%s: kind %q, master %q, slave kind %q; want a veth enslaved to %s",
					hostName, h.LinkInfo.Kind, h.Master, h.LinkInfo.SlaveKind, brName)
			}
			if hp := h.LinkInfo.SlaveData.Hairpin; hp == nil || *hp != st.hairpin {
				t.Errorf("%s: hairpin %v, want %t", hostName, hp, st.hairpin)
			}
			if !h.Up() || h.MTU != wantMTU {
				t.Errorf("%s: up=%t MTU %d; want up, MTU %d", hostName, h.Up(), h.MTU, wantMTU)
			}
			p, ok := host.Link(t, peerName)
			if !ok {
				t.Fatalf("container end %s missing", peerName)
			}
			if p.Address != mac.String() || p.MTU != wantMTU || p.Up() || p.Master != "" {
				t.Errorf("%s: MAC %s MTU %d up=%t master %q; want MAC %s, MTU %d, down, no master",
					peerName, p.Address, p.MTU, p.Up(), p.Master, mac, wantMTU)
			}
			// The bridge keeps its MTU with a port attached.
			assertBridge(t, host, st.gws, st.mtu)

			in(t, host, func() error { return bridge.DeleteVeth(hostName, tOwner) })
			in(t, host, func() error { return bridge.Delete(brName, tOwner) })
			if links := host.Links(t); len(links) != 1 || links[0].Name != "lo" {
				t.Errorf("after DeleteVeth and Delete, %s still has %+v", host.Name, links)
			}
			in(t, host, func() error { return bridge.DeleteVeth(hostName, tOwner) })
			in(t, host, func() error { return bridge.Delete(brName, tOwner) })
		})
	}
}

// TestIsolatedPortAndRouteLocalnet: icc=false makes ports isolated, and
// loopback port publishing needs route_localnet on the bridge.
func TestIsolatedPortAndRouteLocalnet(t *testing.T) {
	host := netnstest.New(t)
	in(t, host, func() error {
		if _, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName}); err != nil {
			return err
		}
		return bridge.SetRouteLocalnet(brName)
	})
	if got := host.Sysctl(t, "net/ipv4/conf/"+brName+"/route_localnet"); got != "1" {
		t.Errorf("route_localnet = %s, want 1", got)
	}
	for _, isolated := range []bool{true, false} {
		name := fmt.Sprintf("%s%t", hostName, isolated)
		in(t, host, func() error {
			return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: name, PeerName: name + "p", Bridge: brName, Isolated: isolated})
		})
		l, _ := host.Link(t, name)
		if got := l.LinkInfo.SlaveData.Isolated; got == nil || *got != isolated {
			t.Errorf("%s: isolated %v, want %t", name, got, isolated)
		}
	}
}

// TestEnsureMTUIsPinned: the kernel moves an unpinned bridge's MTU to its
// ports' smallest; Ensure's MTU must survive a port with a larger MTU.
func TestEnsureMTUIsPinned(t *testing.T) {
	host := netnstest.New(t)
	in(t, host, func() error {
		_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, MTU: 1400})
		return err
	})
	in(t, host, func() error {
		return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName, MTU: 9000})
	})
	if l, _ := host.Link(t, brName); l.MTU != 1400 {
		t.Errorf("bridge MTU %d after attaching a 9000-byte port, want 1400", l.MTU)
	}
}

func TestEnsureIsIdempotent(t *testing.T) {
	host := netnstest.New(t)
	cfg := bridge.Config{Owner: tOwner, Name: brName, MTU: 1450, Gateways: stacks[3].gws}
	in(t, host, func() error { _, err := bridge.Ensure(cfg); return err })
	before := host.IP(t, "addr", "show", "dev", brName)

	var created bool
	in(t, host, func() (err error) { created, err = bridge.Ensure(cfg); return err })
	if created {
		t.Error("second Ensure reported created=true")
	}
	if after := host.IP(t, "addr", "show", "dev", brName); string(after) != string(before) {
		t.Errorf("second Ensure changed the bridge:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	assertBridge(t, host, cfg.Gateways, 1450)
}

// TestEnsureLeavesForeignBridges: a bridge dualstack did not make (no
// mark), down, with an address of its own, is refused by name and left as
// it was, and Delete leaves it too. Only with Adopt (a bridge of a network
// recorded before dualstack marked its links) is it taken: marked, given
// the gateways, its own address kept.
func TestEnsureLeavesForeignBridges(t *testing.T) {
	host := netnstest.New(t)
	host.IP(t, "link", "add", brName, "type", "bridge")
	host.IP(t, "addr", "add", "203.0.113.7/24", "dev", brName)
	own := netip.MustParsePrefix("203.0.113.7/24")
	gws := pfx("198.51.100.1/24", "2001:db8:1::1/64")
	err := netns.Do(host.Path, func() error {
		_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, Gateways: gws})
		return err
	})
	if !errors.Is(err, links.ErrNotOwned) || !strings.Contains(err.Error(), brName) {
		t.Fatalf("Ensure over a foreign bridge %s: %v; want a refusal naming it", brName, err)
	}
	if err := netns.Do(host.Path, func() error { return bridge.Delete(brName, tOwner) }); !errors.Is(err, links.ErrNotOwned) {
		t.Errorf("Delete of a foreign bridge %s: %v; want a refusal", brName, err)
	}
	l, ok := host.Link(t, brName)
	if !ok || l.Up() || l.Alias != "" {
		t.Errorf("the foreign bridge %s was changed or removed: %+v", brName, l)
	}
	for _, a := range host.Addrs(t, brName) {
		if a.Prefix() != own && a.Scope == "global" {
			t.Errorf("Ensure gave the foreign bridge %s the address %s", brName, a.Prefix())
		}
	}

	var created bool
	in(t, host, func() (err error) {
		created, err = bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, Gateways: gws, Adopt: true})
		return err
	})
	if created {
		t.Error("Ensure on an existing bridge reported created=true")
	}
	if l, _ := host.Link(t, brName); l.Alias != links.Mark(tOwner) {
		t.Errorf("adopted bridge %s has alias %q; want %q", brName, l.Alias, links.Mark(tOwner))
	}
	assertBridge(t, host, append(gws, own), 0)
}

func TestEnsureRefusesNonBridge(t *testing.T) {
	host := netnstest.New(t)
	host.IP(t, "link", "add", brName, "type", "veth", "peer", "name", "dstother")
	err := netns.Do(host.Path, func() error {
		_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, Gateways: stacks[0].gws})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), brName) || !strings.Contains(err.Error(), "veth") {
		t.Fatalf("Ensure over a veth named %s: %v; want an error naming it and its kind", brName, err)
	}
	if l, ok := host.Link(t, brName); !ok || l.LinkInfo.Kind != "veth" {
		t.Errorf("the veth %s was changed or removed: %+v", brName, l)
	}
	if got := host.Addrs(t, brName); len(got) != 0 {
		t.Errorf("Ensure added addresses to the veth %s: %+v", brName, got)
	}
	if err := netns.Do(host.Path, func() error { return bridge.Delete(brName, tOwner) }); err == nil {
		t.Error("Delete of a veth named like the bridge succeeded")
	}
	if _, ok := host.Link(t, brName); !ok {
		t.Error("Delete removed a link that is not a bridge")
	}
}

func TestBadNames(t *testing.T) {
	host := netnstest.New(t)
	for _, name := range []string{"", "dst0123456789abc" /* 16 */, "dst/br", "dst br", "dst\tbr", "dst:br", ".", ".."} {
		err := netns.Do(host.Path, func() error {
			_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: name})
			return err
		})
		if err == nil {
			t.Errorf("Ensure(%q) succeeded", name)
		}
		if err := netns.Do(host.Path, func() error {
			return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: name, PeerName: peerName, Bridge: brName})
		}); err == nil {
			t.Errorf("CreateVeth(host %q) succeeded", name)
		}
	}
	if err := bridge.ValidateName("dst0123456789ab"); err != nil { // 15
		t.Errorf("15-byte name refused: %v", err)
	}
	if links := host.Links(t); len(links) != 1 {
		t.Errorf("bad names left links behind: %+v", links)
	}
}

func TestEnsureRejectsBadInput(t *testing.T) {
	host := netnstest.New(t)
	for _, cfg := range []bridge.Config{
		{Owner: tOwner, Name: brName, MTU: -1},
		{Owner: tOwner, Name: brName, Gateways: []netip.Prefix{{}}},
		{Owner: tOwner, Name: brName, Gateways: pfx("::ffff:198.51.100.1/120")},
		{Owner: tOwner, Name: brName, MTU: 1200, Gateways: pfx("2001:db8:1::1/64")},
	} {
		err := netns.Do(host.Path, func() error { _, err := bridge.Ensure(cfg); return err })
		if err == nil || !strings.Contains(err.Error(), brName) {
			t.Errorf("Ensure(%+v): %v; want an error naming the bridge", cfg, err)
		}
	}
	if links := host.Links(t); len(links) != 1 {
		t.Errorf("rejected configs left links behind: %+v", links)
	}
}

// TestEnsureRollsBackOnFailure: a gateway the kernel refuses (the same IPv6
// address twice with different prefix lengths) must not leave a half-made
// bridge behind.
func TestEnsureRollsBackOnFailure(t *testing.T) {
	host := netnstest.New(t)
	err := netns.Do(host.Path, func() error {
		_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, Gateways: pfx("2001:db8:1::1/64", "2001:db8:1::1/56")})
		return err
	})
	if err == nil {
		t.Fatal("Ensure with 2001:db8:1::1 twice succeeded; the kernel was expected to refuse the second")
	}
	t.Logf("Ensure: %v", err)
	if !strings.Contains(err.Error(), brName) || !strings.Contains(err.Error(), "2001:db8:1::1/56") {
		t.Errorf("error %q does not name the bridge and the address", err)
	}
	if _, ok := host.Link(t, brName); ok {
		t.Errorf("failed Ensure left bridge %s behind", brName)
	}
}

func TestCreateVethRollback(t *testing.T) {
	host := netnstest.New(t)
	host.IP(t, "link", "add", "dstnotbr", "type", "veth", "peer", "name", "dstnotbrp")
	for _, tc := range []struct{ name, bridge, want string }{
		{"missing bridge", brName, "does not exist"},
		{"not a bridge", "dstnotbr", "not a bridge"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := netns.Do(host.Path, func() error {
				return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: tc.bridge})
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.bridge) {
				t.Fatalf("CreateVeth to %s: %v; want an error saying %q", tc.bridge, err, tc.want)
			}
			for _, n := range []string{hostName, peerName} {
				if _, ok := host.Link(t, n); ok {
					t.Errorf("failed CreateVeth left %s behind", n)
				}
			}
		})
	}
}

// TestCreateVethReplacesStaleLinks: links with the pair's names from an
// earlier crash are replaced; a non-veth with one of the names is not.
func TestCreateVethReplacesStaleLinks(t *testing.T) {
	host := netnstest.New(t)
	in(t, host, func() error { _, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName}); return err })
	// Stale: both names taken, by two different pairs of this owner's
	// (marked as CreateVeth marks them).
	host.IP(t, "link", "add", hostName, "type", "veth", "peer", "name", "dststale1")
	host.IP(t, "link", "add", "dststale2", "type", "veth", "peer", "name", peerName)
	host.IP(t, "link", "set", hostName, "alias", links.Mark(tOwner))
	host.IP(t, "link", "set", peerName, "alias", links.Mark(tOwner))
	old, _ := host.Link(t, hostName)
	in(t, host, func() error {
		return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName})
	})
	h, ok := host.Link(t, hostName)
	if !ok || h.Index == old.Index || h.Master != brName {
		t.Errorf("stale %s not replaced by a new port of %s: old index %d, now %+v", hostName, brName, old.Index, h)
	}
	for _, n := range []string{hostName, peerName} {
		if l, _ := host.Link(t, n); l.Alias != links.Mark(tOwner) {
			t.Errorf("new veth end %s has alias %q; want %q", n, l.Alias, links.Mark(tOwner))
		}
	}
	for _, n := range []string{"dststale1", "dststale2"} {
		if _, ok := host.Link(t, n); ok {
			t.Errorf("stale pair's other end %s still there", n)
		}
	}
	// An unmarked veth with the host end's name (somebody else's) is not
	// touched either.
	in(t, host, func() error { return bridge.DeleteVeth(hostName, tOwner) })
	host.IP(t, "link", "add", hostName, "type", "veth", "peer", "name", "dstforeign")
	err := netns.Do(host.Path, func() error {
		return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName})
	})
	if !errors.Is(err, links.ErrNotOwned) || !strings.Contains(err.Error(), hostName) {
		t.Errorf("CreateVeth over an unmarked veth named %s: %v; want a refusal naming it", hostName, err)
	}
	if _, ok := host.Link(t, "dstforeign"); !ok {
		t.Errorf("CreateVeth removed the unmarked veth %s", hostName)
	}
	host.IP(t, "link", "del", hostName)
	// A non-veth with the host end's name is not touched.
	in(t, host, func() error { return bridge.DeleteVeth(hostName, tOwner) })
	host.IP(t, "link", "add", hostName, "type", "bridge")
	err = netns.Do(host.Path, func() error {
		return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName})
	})
	if err == nil || !strings.Contains(err.Error(), hostName) {
		t.Errorf("CreateVeth over a bridge named %s: %v; want an error naming it", hostName, err)
	}
	if l, ok := host.Link(t, hostName); !ok || l.LinkInfo.Kind != "bridge" {
		t.Errorf("CreateVeth replaced the bridge %s: %+v", hostName, l)
	}
	if _, ok := host.Link(t, peerName); ok {
		t.Errorf("failed CreateVeth left %s behind", peerName)
	}
	if err := netns.Do(host.Path, func() error { return bridge.DeleteVeth(hostName, tOwner) }); err == nil {
		t.Errorf("DeleteVeth of the bridge %s succeeded", hostName)
	}
}

func TestDeleteMissingIsSuccess(t *testing.T) {
	host := netnstest.New(t)
	in(t, host, func() error {
		return errors.Join(bridge.Delete(brName, tOwner), bridge.DeleteVeth(hostName, tOwner))
	})
	// Addresses of a missing link: an error naming it.
	err := netns.Do(host.Path, func() error { _, err := bridge.Addresses(brName); return err })
	var nf netlink.LinkNotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), brName) {
		t.Errorf("Addresses(%s) of a missing link: %v", brName, err)
	}
}

// TestBridgeMACIsPinned: a port with a lower MAC address does not change
// the bridge's: the containers' neighbour entries of their gateway stay
// right. A bridge an earlier version made, which follows its ports, is
// pinned by Ensure as it is.
func TestBridgeMACIsPinned(t *testing.T) {
	host := netnstest.New(t)
	in(t, host, func() error { _, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName}); return err })
	before, _ := host.Link(t, brName)
	in(t, host, func() error {
		return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName})
	})
	host.IP(t, "link", "set", hostName, "address", "02:00:00:00:00:01")
	if after, _ := host.Link(t, brName); after.Address != before.Address {
		t.Errorf("bridge MAC %s after a port with a lower MAC came, want %s as before", after.Address, before.Address)
	}

	old := netnstest.New(t)
	old.IP(t, "link", "add", brName, "type", "bridge")
	in(t, old, func() error {
		_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, Adopt: true})
		return err
	})
	pinned, _ := old.Link(t, brName)
	defer func() {
		// A portless bridge keeps its carrier: its MAC is not pinned.
		bare := netnstest.New(t)
		in(t, bare, func() error {
			_, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, Portless: true})
			return err
		})
		if l, _ := bare.Link(t, brName); !slices.Contains(l.Flags, "LOWER_UP") {
			t.Errorf("portless bridge has flags %v, want LOWER_UP (a carrier, for its macvlan children)", l.Flags)
		}
	}()
	old.IP(t, "link", "add", hostName, "type", "veth", "peer", "name", peerName)
	old.IP(t, "link", "set", hostName, "address", "02:00:00:00:00:01", "master", brName, "up")
	if after, _ := old.Link(t, brName); after.Address != pinned.Address {
		t.Errorf("adopted bridge's MAC %s after a port with a lower MAC came, want %s as Ensure left it", after.Address, pinned.Address)
	}
}
