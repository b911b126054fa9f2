package sandbox_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/driver/bridge"
	"github.com/dualstack-net/dualstack/driver/sandbox"
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

var mac = net.HardwareAddr{0x0a, 0x58, 0xc6, 0x33, 0x64, 0x0a}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, x := range s {
		out[i] = netip.MustParsePrefix(x)
	}
	return out
}

func in(t *testing.T, ns netnstest.NS, fn func() error) {
	t.Helper()
	if err := netns.Do(ns.Path, fn); err != nil {
		t.Fatal(err)
	}
}

// linkLocal waits for dev's IPv6 link-local address to appear (it comes
// with carrier, which the kernel reports asynchronously) and returns it.
func linkLocal(t *testing.T, ns netnstest.NS, dev string) netnstest.Addr {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, a := range ns.Addrs(t, dev) {
			if a.Family == "inet6" && a.Scope == "link" {
				return a
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s got no IPv6 link-local address within 5s", dev, ns.Name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping retries one echo request per second until one is answered or 6 s
// have passed: a new bridge port and neighbour resolution may take a moment.
func ping(nsPath string, dst netip.Addr) error {
	var err error
	for i := 0; i < 6; i++ {
		if err = netnstest.Ping(nsPath, dst, time.Second); err == nil {
			return nil
		}
	}
	return err
}

// TestEndToEnd builds, for each stack, what the driver will build for one
// container, checks every step as a user would see it, proves that traffic
// flows, and tears it down twice.
func TestEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name     string
		gws      []netip.Prefix // bridge side
		ctr      []netip.Prefix // container side, one per subnet
		mtu      int
		hairpin  bool
		acceptRA int
	}{
		{"ipv4", pfx("198.51.100.1/24"), pfx("198.51.100.10/24"), 1400, true, 0},
		{"ipv6", pfx("2001:db8:1::1/64"), pfx("2001:db8:1::10/64"), 1280, false, 2},
		{"dual", pfx("198.51.100.1/24", "2001:db8:1::1/64"), pfx("198.51.100.10/24", "2001:db8:1::10/64"), 0, true, 0},
		{"dual-3v6",
			pfx("198.51.100.1/24", "2001:db8:1::1/64", "2001:db8:2::1/64", "fd00:d5:3::1/64"),
			pfx("198.51.100.10/24", "2001:db8:1::10/64", "2001:db8:2::10/64", "fd00:d5:3::10/64"),
			9000, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host, ctr := netnstest.New(t), netnstest.New(t)
			wantMTU := tc.mtu
			if wantMTU == 0 {
				wantMTU = 1500
			}

			// Host side: bridge and veth.
			in(t, host, func() error {
				if _, err := bridge.Ensure(bridge.Config{Owner: tOwner, Name: brName, MTU: tc.mtu, Gateways: tc.gws}); err != nil {
					return err
				}
				return bridge.CreateVeth(bridge.VethConfig{Owner: tOwner, HostName: hostName, PeerName: peerName, Bridge: brName,
					MTU: tc.mtu, Hairpin: tc.hairpin, MAC: mac})
			})
			br, _ := host.Link(t, brName)
			if br.LinkInfo.Kind != "bridge" || !br.Up() || br.MTU != wantMTU {
				t.Errorf("bridge: %+v; want an up bridge with MTU %d", br, wantMTU)
			}
			if got := host.Sysctl(t, "net/ipv6/conf/"+brName+"/accept_ra"); got != "0" {
				t.Errorf("bridge accept_ra = %s, want 0", got)
			}
			h, _ := host.Link(t, hostName)
			if h.Master != brName || h.LinkInfo.SlaveData.Hairpin == nil ||
				*h.LinkInfo.SlaveData.Hairpin != tc.hairpin || h.MTU != wantMTU || !h.Up() {
				t.Errorf("host end: %+v; want up, port of %s, hairpin %t, MTU %d", h, brName, tc.hairpin, wantMTU)
			}

			// Docker's part: prepare, move, rename.
			if err := sandbox.PrepareNamespace(ctr.Path, sandbox.RA{Accept: tc.acceptRA}); err != nil {
				t.Fatal(err)
			}
			host.IP(t, "link", "set", peerName, "netns", ctr.Name)
			ctr.IP(t, "link", "set", peerName, "name", "eth0")
			match := sandbox.InterfaceMatch{MAC: mac}

			if err := sandbox.ConfigureInterface(ctr.Path, match, tc.ctr, sandbox.RA{Accept: tc.acceptRA}); err != nil {
				t.Fatal(err)
			}
			// Again: already-present addresses are fine, nothing changes.
			before := ctr.IP(t, "addr", "show", "dev", "eth0")
			if err := sandbox.ConfigureInterface(ctr.Path, match, tc.ctr, sandbox.RA{Accept: tc.acceptRA}); err != nil {
				t.Fatalf("second ConfigureInterface: %v", err)
			}
			if after := ctr.IP(t, "addr", "show", "dev", "eth0"); string(after) != string(before) {
				t.Errorf("second ConfigureInterface changed eth0:\n%s\n%s", before, after)
			}
			ctr.IP(t, "link", "set", "eth0", "up")

			e, _ := ctr.Link(t, "eth0")
			if e.Address != mac.String() || e.MTU != wantMTU {
				t.Errorf("container eth0: MAC %s MTU %d; want %s, %d", e.Address, e.MTU, mac, wantMTU)
			}
			// Advertised default routes go below Docker's (metric 1024).
			metric := "1024"
			if tc.acceptRA > 0 {
				metric = strconv.Itoa(sandbox.RADefaultMetric)
			}
			for k, want := range map[string]string{"accept_dad": "0", "accept_ra": strconv.Itoa(tc.acceptRA), "autoconf": "0", "ra_defrtr_metric": metric} {
				if got := ctr.Sysctl(t, "net/ipv6/conf/eth0/"+k); got != want {
					t.Errorf("container eth0 %s = %s, want %s", k, got, want)
				}
			}
			ll := linkLocal(t, ctr, "eth0")
			if ll.Tentative || ll.DADFailed {
				t.Errorf("container eth0 link-local %s is tentative=%t dadfailed=%t", ll.Local, ll.Tentative, ll.DADFailed)
			}
			addrs := ctr.Addrs(t, "eth0")
			for _, p := range tc.ctr {
				i := slices.IndexFunc(addrs, func(a netnstest.Addr) bool { return a.Prefix() == p })
				switch {
				case i < 0:
					t.Errorf("container eth0 lacks %s: %+v", p, addrs)
				case p.Addr().Is6() && (!addrs[i].NoDAD || addrs[i].Tentative || addrs[i].DADFailed):
					t.Errorf("container eth0 %s: %+v; want nodad, not tentative", p, addrs[i])
				}
			}
			in(t, ctr, func() error {
				link, err := netlink.LinkByName("eth0")
				if err != nil {
					return err
				}
				got, err := netlink.AddrList(link, netlink.FAMILY_ALL)
				for _, a := range got {
					t.Logf("container eth0: %s flags=%#x", a.IPNet, a.Flags)
					if a.Flags&unix.IFA_F_TENTATIVE != 0 {
						t.Errorf("netlink: %s flags %#x include IFA_F_TENTATIVE", a.IPNet, a.Flags)
					}
				}
				return err
			})
			bll := linkLocal(t, host, brName)
			if bll.Tentative || bll.DADFailed {
				t.Errorf("bridge link-local %s is tentative=%t dadfailed=%t", bll.Local, bll.Tentative, bll.DADFailed)
			}

			// Traffic: every gateway answers from the container.
			for _, g := range tc.gws {
				if err := ping(ctr.Path, g.Addr()); err != nil {
					t.Errorf("ping %s from the container: %v", g.Addr(), err)
				}
			}

			// Teardown, twice; in round 2 the interface is already gone.
			for round := 1; round <= 2; round++ {
				if err := sandbox.RemoveAddresses(ctr.Path, match, tc.ctr); err != nil {
					t.Errorf("round %d: RemoveAddresses: %v", round, err)
				}
				if round == 1 {
					for _, a := range ctr.Addrs(t, "eth0") {
						if a.Scope != "link" {
							t.Errorf("address %s/%d left on eth0", a.Local, a.PrefixLen)
						}
					}
					// Without its addresses the container cannot reach the
					// gateways: the ping above was not vacuous.
					if err := netnstest.Ping(ctr.Path, tc.gws[0].Addr(), 500*time.Millisecond); err == nil {
						t.Errorf("ping %s still answered after RemoveAddresses", tc.gws[0].Addr())
					}
				}
				in(t, host, func() error {
					return errors.Join(bridge.DeleteVeth(hostName, tOwner), bridge.Delete(brName, tOwner))
				})
				if links := host.Links(t); len(links) != 1 || links[0].Name != "lo" {
					t.Errorf("round %d: host namespace still has %+v", round, links)
				}
				if links := ctr.Links(t); len(links) != 1 || links[0].Name != "lo" {
					t.Errorf("round %d: container namespace still has %+v (deleting the host end must delete eth0)", round, links)
				}
			}
		})
	}
}

// TestMovedInterfaceInheritsDefault is the experiment behind
// PrepareNamespace: a veth end moved into a namespace gets its IPv6 settings
// from the namespace's "default", not from where it came from, so a prepared
// namespace gives it accept_dad=0 (link-local never tentative) and the
// wanted accept_ra. The unprepared control shows the kernel defaults
// (accept_dad=1, accept_ra=1, link-local tentative while DAD runs), so the
// assertions can tell the two apart.
func TestMovedInterfaceInheritsDefault(t *testing.T) {
	for _, tc := range []struct {
		name        string
		allDAD1     bool // set net.ipv6.conf.all.accept_dad=1 first (the kernel's default is 0)
		prepare     bool // call PrepareNamespace
		defaultDAD0 bool // set only net.ipv6.conf.default.accept_dad=0 by hand
		acceptRA    int
		wantDAD     string
		wantRA      string
		tentative   bool
	}{
		{"prepared ra=0", false, true, false, 0, "0", "0", false},
		{"prepared ra=2", false, true, false, 2, "0", "2", false},
		{"prepared over all.accept_dad=1", true, true, false, 1, "0", "1", false},
		{"unprepared control", false, false, false, 0, "1", "1", true},
		// The device inherits accept_dad=0 but DAD still runs: the
		// kernel skips DAD only if "all" and the device both say 0.
		{"control: default only, all.accept_dad=1", true, false, true, 0, "0", "1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			origin, dest := netnstest.New(t), netnstest.New(t)
			// The kernel's defaults, which a new namespace has only where
			// the host's IPv6 settings are not inherited
			// (net.core.devconf_inherit_init_net 0 or 2).
			for _, ns := range []netnstest.NS{origin, dest} {
				ns.SetSysctl(t, "net/ipv6/conf/all/accept_dad", "0")
				ns.SetSysctl(t, "net/ipv6/conf/default/accept_dad", "1")
				ns.SetSysctl(t, "net/ipv6/conf/default/accept_ra", "1")
				ns.SetSysctl(t, "net/ipv6/conf/all/forwarding", "0")
			}
			if tc.allDAD1 || tc.defaultDAD0 {
				in(t, dest, func() error {
					var errs []error
					if tc.allDAD1 {
						errs = append(errs, os.WriteFile("/proc/sys/net/ipv6/conf/all/accept_dad", []byte("1"), 0))
					}
					if tc.defaultDAD0 {
						errs = append(errs, os.WriteFile("/proc/sys/net/ipv6/conf/default/accept_dad", []byte("0"), 0))
					}
					return errors.Join(errs...)
				})
			}
			origin.IP(t, "link", "add", "dstva", "type", "veth", "peer", "name", "dstvb")
			if got := origin.Sysctl(t, "net/ipv6/conf/dstvb/accept_dad"); got != "1" {
				t.Fatalf("origin dstvb accept_dad = %s, want the kernel default 1", got)
			}
			// Give the device, before the move, values that neither outcome
			// expects, so that keeping them across the move would show.
			originRA := "2"
			if tc.wantRA == "2" {
				originRA = "0"
			}
			in(t, origin, func() error {
				return errors.Join(
					os.WriteFile("/proc/sys/net/ipv6/conf/dstvb/accept_dad", []byte("2"), 0),
					os.WriteFile("/proc/sys/net/ipv6/conf/dstvb/accept_ra", []byte(originRA), 0))
			})
			if got := origin.Sysctl(t, "net/ipv6/conf/dstvb/accept_ra"); got != originRA {
				t.Fatalf("origin dstvb accept_ra = %s after setting it to %s", got, originRA)
			}
			if tc.prepare {
				if err := sandbox.PrepareNamespace(dest.Path, sandbox.RA{Accept: tc.acceptRA}); err != nil {
					t.Fatal(err)
				}
			}
			origin.IP(t, "link", "set", "dstvb", "netns", dest.Name)
			dest.IP(t, "link", "set", "dstvb", "name", "eth0")
			for k, want := range map[string]string{"accept_dad": tc.wantDAD, "accept_ra": tc.wantRA} {
				if got := dest.Sysctl(t, "net/ipv6/conf/eth0/"+k); got != want {
					t.Errorf("moved eth0: %s = %s, want %s", k, got, want)
				}
			}
			origin.IP(t, "link", "set", "dstva", "up")
			dest.IP(t, "link", "set", "eth0", "up")
			ll := linkLocal(t, dest, "eth0")
			if ll.Tentative != tc.tentative {
				t.Errorf("moved eth0 link-local %s: tentative=%t, want %t", ll.Local, ll.Tentative, tc.tentative)
			}
			t.Logf("moved eth0 link-local %s tentative=%t", ll.Local, ll.Tentative)
		})
	}
}

func TestConfigureInterfaceErrors(t *testing.T) {
	ctr := netnstest.New(t)
	ctr.IP(t, "link", "add", "dstva", "address", mac.String(), "type", "veth", "peer", "name", "dstvb")
	other := net.HardwareAddr{0x0a, 0x58, 0, 0, 0, 1}
	for _, tc := range []struct {
		name  string
		path  string
		match sandbox.InterfaceMatch
		addrs []netip.Prefix
		ra    int
		want  []string
	}{
		{"unknown MAC", ctr.Path, sandbox.InterfaceMatch{MAC: other}, pfx("198.51.100.10/24"), 0,
			[]string{ctr.Path, other.String()}},
		{"MAC and wrong name", ctr.Path, sandbox.InterfaceMatch{MAC: mac, Name: "eth0"}, nil, 0,
			[]string{ctr.Path, "eth0"}},
		{"no match given", ctr.Path, sandbox.InterfaceMatch{}, nil, 0, []string{"MAC"}},
		{"bad accept_ra", ctr.Path, sandbox.InterfaceMatch{MAC: mac}, nil, 3, []string{"accept_ra 3"}},
		{"missing namespace", "/var/run/netns/dstest-nonexistent", sandbox.InterfaceMatch{MAC: mac}, nil, 0,
			[]string{"/var/run/netns/dstest-nonexistent"}},
		{"address conflict", ctr.Path, sandbox.InterfaceMatch{Name: "dstva"}, pfx("2001:db8:1::10/64", "2001:db8:1::10/56"), 0,
			[]string{ctr.Path, "dstva", "2001:db8:1::10/56"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sandbox.ConfigureInterface(tc.path, tc.match, tc.addrs, sandbox.RA{Accept: tc.ra})
			if err == nil {
				t.Fatal("ConfigureInterface succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	// By name alone works, and IPv4 needs no IPv6 at all.
	if err := sandbox.ConfigureInterface(ctr.Path, sandbox.InterfaceMatch{Name: "dstvb"}, pfx("198.51.100.11/24"), sandbox.RA{Accept: 1}); err != nil {
		t.Fatal(err)
	}
	if a := ctr.Addrs(t, "dstvb"); len(a) != 1 || a[0].Local != "198.51.100.11" {
		t.Errorf("dstvb addresses %+v, want 198.51.100.11/24", a)
	}
}

func TestRemoveAddressesIsIdempotent(t *testing.T) {
	ctr := netnstest.New(t)
	ctr.IP(t, "link", "add", "dstva", "address", mac.String(), "type", "veth", "peer", "name", "dstvb")
	ctr.IP(t, "addr", "add", "203.0.113.9/24", "dev", "dstva")
	addrs := pfx("198.51.100.10/24", "2001:db8:1::10/64")
	match := sandbox.InterfaceMatch{MAC: mac}
	if err := sandbox.ConfigureInterface(ctr.Path, match, addrs, sandbox.RA{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := sandbox.RemoveAddresses(ctr.Path, match, addrs); err != nil {
			t.Fatalf("RemoveAddresses #%d: %v", i+1, err)
		}
	}
	got := ctr.Addrs(t, "dstva")
	if len(got) != 1 || got[0].Local != "203.0.113.9" {
		t.Errorf("after RemoveAddresses dstva has %+v; want only the address it did not add", got)
	}
	for _, tc := range []struct {
		name, path string
		match      sandbox.InterfaceMatch
	}{
		{"missing interface", ctr.Path, sandbox.InterfaceMatch{MAC: net.HardwareAddr{0x0a, 0, 0, 0, 0, 1}}},
		{"missing namespace", "/var/run/netns/dstest-nonexistent", match},
		{"not a namespace", "/dev/null", match},
	} {
		if err := sandbox.RemoveAddresses(tc.path, tc.match, addrs); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestWaitInterface(t *testing.T) {
	t.Run("moved in after the call started", func(t *testing.T) {
		t.Parallel()
		origin, ctr := netnstest.New(t), netnstest.New(t)
		origin.IP(t, "link", "add", "dstva", "type", "veth", "peer", "name", peerName, "address", mac.String())
		type result struct {
			link netlink.Link
			err  error
			at   time.Time
		}
		res := make(chan result, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := sandbox.WaitInterface(ctx, ctr.Path, sandbox.InterfaceMatch{MAC: mac})
			res <- result{l, err, time.Now()}
		}()
		time.Sleep(300 * time.Millisecond)
		select {
		case r := <-res:
			t.Fatalf("WaitInterface returned before the interface was moved in: %v, %v", r.link, r.err)
		default:
		}
		moved := time.Now()
		origin.IP(t, "link", "set", peerName, "netns", ctr.Name)
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.link.Attrs().Name != peerName || r.link.Attrs().HardwareAddr.String() != mac.String() {
			t.Errorf("WaitInterface returned %s %s, want %s %s", r.link.Attrs().Name, r.link.Attrs().HardwareAddr, peerName, mac)
		}
		if d := r.at.Sub(moved); d > time.Second {
			t.Errorf("WaitInterface took %v after the move: it should be woken by the event", d)
		}
	})
	t.Run("renamed after the move, matched by MAC and name", func(t *testing.T) {
		t.Parallel()
		origin, ctr := netnstest.New(t), netnstest.New(t)
		origin.IP(t, "link", "add", "dstva", "type", "veth", "peer", "name", peerName, "address", mac.String())
		origin.IP(t, "link", "set", peerName, "netns", ctr.Name)
		res := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := sandbox.WaitInterface(ctx, ctr.Path, sandbox.InterfaceMatch{MAC: mac, Name: "eth0"})
			if err == nil && l.Attrs().Name != "eth0" {
				err = errors.New("returned " + l.Attrs().Name)
			}
			res <- err
		}()
		time.Sleep(300 * time.Millisecond)
		select {
		case err := <-res:
			t.Fatalf("WaitInterface returned before the rename: %v", err)
		default:
		}
		ctr.IP(t, "link", "set", peerName, "name", "eth0")
		if err := <-res; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("already there", func(t *testing.T) {
		t.Parallel()
		ctr := netnstest.New(t)
		ctr.IP(t, "link", "add", "dstva", "type", "veth", "peer", "name", peerName, "address", mac.String())
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		l, err := sandbox.WaitInterface(ctx, ctr.Path, sandbox.InterfaceMatch{MAC: mac})
		if err != nil || l.Attrs().Name != peerName {
			t.Fatalf("WaitInterface = %v, %v; want %s", l, err, peerName)
		}
	})
	t.Run("times out", func(t *testing.T) {
		t.Parallel()
		ctr := netnstest.New(t)
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		l, err := sandbox.WaitInterface(ctx, ctr.Path, sandbox.InterfaceMatch{MAC: mac})
		if !errors.Is(err, context.DeadlineExceeded) || l != nil {
			t.Fatalf("WaitInterface = %v, %v; want context.DeadlineExceeded", l, err)
		}
		if !strings.Contains(err.Error(), ctr.Path) || !strings.Contains(err.Error(), mac.String()) {
			t.Errorf("error %q does not name the namespace and the MAC", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("WaitInterface took %v to honour a 300ms deadline", d)
		}
	})
	t.Run("missing namespace", func(t *testing.T) {
		t.Parallel()
		netnstest.Skip(t)
		_, err := sandbox.WaitInterface(context.Background(), "/var/run/netns/dstest-nonexistent", sandbox.InterfaceMatch{MAC: mac})
		if err == nil || !strings.Contains(err.Error(), "dstest-nonexistent") {
			t.Fatalf("WaitInterface on a missing namespace: %v", err)
		}
	})
}
