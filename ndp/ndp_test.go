package ndp

import (
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// link is a host namespace whose interface dsthost0 shares a link with a
// router namespace (dstrtr0) that holds the /64 on-link and one address
// of a "neighbour" in it.
type link struct {
	host, router netnstest.NS
	hostMAC      string
}

const (
	onLinkPrefix = "2001:db8:f2::/64"
	routerAddr   = "2001:db8:f2::1"
	hostAddr     = "2001:db8:f2::2"
	neighbour    = "2001:db8:f2::d0:5"
)

func newLink(t *testing.T) link {
	t.Helper()
	l := link{host: netnstest.New(t), router: netnstest.New(t)}
	l.host.IP(t, "link", "add", "dsthost0", "type", "veth", "peer", "name", "dstrtr0", "netns", l.router.Name)
	l.host.SetSysctl(t, "net/ipv6/conf/dsthost0/accept_dad", "0")
	l.router.SetSysctl(t, "net/ipv6/conf/dstrtr0/accept_dad", "0")
	l.host.IP(t, "addr", "add", hostAddr+"/64", "dev", "dsthost0", "nodad")
	for _, a := range []string{routerAddr + "/64", neighbour + "/64"} {
		l.router.IP(t, "addr", "add", a, "dev", "dstrtr0", "nodad")
	}
	l.host.IP(t, "link", "set", "dsthost0", "up")
	l.router.IP(t, "link", "set", "dstrtr0", "up")
	lk, _ := l.host.Link(t, "dsthost0")
	l.hostMAC = lk.Address
	// The link carries packets once both ends are up: until then what
	// is sent is dropped.
	deadline := time.Now().Add(5 * time.Second)
	for netnstest.Ping(l.host.Path, netip.MustParseAddr(routerAddr), 100*time.Millisecond) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the router does not answer on the link")
		}
	}
	l.router.IP(t, "-6", "neigh", "flush", "dev", "dstrtr0")
	return l
}

func (l link) do(t *testing.T, fn func() error) {
	t.Helper()
	if err := netns.Do(l.host.Path, fn); err != nil {
		t.Fatal(err)
	}
}

// routerEntry is the router's neighbour entry for a, as ip shows it.
func (l link) routerEntry(t *testing.T, a string) string {
	return strings.TrimSpace(string(l.router.IP(t, "-6", "neigh", "show", a, "dev", "dstrtr0")))
}

// TestOnLinkAndProbe: the interface's on-link prefix is its address's;
// a probe finds the neighbour's address held, with the router's MAC, and
// the host's own and free ones not.
func TestOnLinkAndProbe(t *testing.T) {
	l := newLink(t)
	rl, _ := l.router.Link(t, "dstrtr0")
	l.do(t, func() error {
		got, err := OnLink("dsthost0")
		if err != nil {
			return err
		}
		if want := []netip.Prefix{netip.MustParsePrefix(onLinkPrefix)}; !slices.Equal(got, want) {
			t.Errorf("OnLink = %v, want %v", got, want)
		}
		free := netip.MustParseAddr("2001:db8:f2::d0:4")
		held, err := Probe("dsthost0", []netip.Addr{free, netip.MustParseAddr(neighbour), netip.MustParseAddr(hostAddr)}, 300*time.Millisecond)
		if err != nil {
			return err
		}
		if len(held) != 1 || held[netip.MustParseAddr(neighbour)].String() != rl.Address {
			t.Errorf("Probe = %v, want only %s held by %s", held, neighbour, rl.Address)
		}
		return nil
	})
}

// TestProxyAnswersAndAdvertises: with the sysctls applied and an entry,
// the host answers the router's solicitation for a container's address
// with its own MAC; an advertisement corrects the router's stale entry at
// once; without the entry the host no longer answers; the sysctls go back
// as they were.
func TestProxyAnswersAndAdvertises(t *testing.T) {
	l := newLink(t)
	l.host.SetSysctl(t, "net/ipv6/conf/all/forwarding", "1")
	before := []string{l.host.Sysctl(t, "net/ipv6/conf/dsthost0/proxy_ndp"), l.host.Sysctl(t, "net/ipv6/neigh/dsthost0/proxy_delay")}
	ctr := netip.MustParseAddr("2001:db8:f2::d0:9")
	var saved Saved
	l.do(t, func() error {
		var err error
		if saved, err = Read("dsthost0"); err != nil {
			return err
		}
		if err := Apply("dsthost0"); err != nil {
			return err
		}
		return AddEntries("dsthost0", []netip.Addr{ctr})
	})
	if got := l.host.Sysctl(t, "net/ipv6/neigh/dsthost0/proxy_delay"); got != "0" {
		t.Errorf("proxy_delay = %s, want 0", got)
	}
	if out := string(l.host.IP(t, "-6", "neigh", "show", "proxy", "dev", "dsthost0")); !strings.Contains(out, ctr.String()) {
		t.Errorf("ip -6 neigh show proxy = %q, want %s", out, ctr)
	}
	_ = netnstest.Ping(l.router.Path, ctr, 500*time.Millisecond) // nothing answers the echo; the host answers the solicitation
	if e := l.routerEntry(t, ctr.String()); !strings.Contains(e, l.hostMAC) {
		t.Errorf("router's entry for %s = %q, want the host's MAC %s", ctr, e, l.hostMAC)
	}

	next := netip.MustParseAddr("2001:db8:f2::d0:a")
	l.router.IP(t, "-6", "neigh", "replace", next.String(), "lladdr", "02:00:00:00:00:01", "dev", "dstrtr0", "nud", "stale")
	l.do(t, func() error { return Advertise("dsthost0", []netip.Addr{next}) })
	deadline := time.Now().Add(time.Second)
	for !strings.Contains(l.routerEntry(t, next.String()), l.hostMAC) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e := l.routerEntry(t, next.String()); !strings.Contains(e, l.hostMAC) {
		t.Errorf("router's entry for %s after the advertisement = %q, want the host's MAC %s", next, e, l.hostMAC)
	}

	l.do(t, func() error {
		if err := DelEntries("dsthost0", []netip.Addr{ctr}); err != nil {
			return err
		}
		if got, err := Entries("dsthost0"); err != nil || len(got) != 0 {
			t.Errorf("Entries after DelEntries = %v, %v; want none", got, err)
		}
		return Restore("dsthost0", saved)
	})
	l.router.IP(t, "-6", "neigh", "flush", "dev", "dstrtr0")
	_ = netnstest.Ping(l.router.Path, ctr, 300*time.Millisecond)
	if e := l.routerEntry(t, ctr.String()); strings.Contains(e, l.hostMAC) {
		t.Errorf("router's entry for %s once the host stopped answering = %q, want none with the host's MAC", ctr, e)
	}
	after := []string{l.host.Sysctl(t, "net/ipv6/conf/dsthost0/proxy_ndp"), l.host.Sysctl(t, "net/ipv6/neigh/dsthost0/proxy_delay")}
	if !slices.Equal(before, after) {
		t.Errorf("sysctls after Restore = %v, want %v as before", after, before)
	}
}

// TestRouteBack: a route back is a /128 through the interface, listed
// and removed by prefix.
func TestRouteBack(t *testing.T) {
	l := newLink(t)
	a := netip.MustParseAddr(neighbour)
	l.do(t, func() error {
		if err := RouteBack("dsthost0", a); err != nil {
			return err
		}
		got, err := RoutesBack("dsthost0", netip.MustParsePrefix("2001:db8:f2::d0:0/112"))
		if err != nil || !slices.Equal(got, []netip.Addr{a}) {
			t.Errorf("RoutesBack = %v, %v; want %s", got, err, a)
		}
		return DelRouteBack("dsthost0", a)
	})
	if out := string(l.host.IP(t, "-6", "route", "show", a.String())); out != "" {
		t.Errorf("route to %s after DelRouteBack: %q", a, out)
	}
}

// TestScreen: an address never asked about is probed with those after
// it, at once; later ones come from what the screen knows, the window
// ahead probed in the background; an address held is reported once.
func TestScreen(t *testing.T) {
	var mu sync.Mutex
	var probes [][]netip.Addr
	var found []netip.Addr
	probed := make(chan struct{}, 10)
	held := netip.MustParseAddr("2001:db8::5")
	s := &Screen{Link: "eth0", Ahead: 8, Wait: time.Millisecond, Fresh: time.Hour, answers: map[netip.Addr]answer{},
		Found: func(a netip.Addr, _ net.HardwareAddr) { mu.Lock(); found = append(found, a); mu.Unlock() },
		probe: func(_ string, targets []netip.Addr, _ time.Duration) (map[netip.Addr]net.HardwareAddr, error) {
			mu.Lock()
			probes = append(probes, targets)
			mu.Unlock()
			probed <- struct{}{}
			out := map[netip.Addr]net.HardwareAddr{}
			if slices.Contains(targets, held) {
				out[held] = net.HardwareAddr{2, 0, 0, 0, 0, 1}
			}
			return out, nil
		},
		neighbours: func(string) ([]Neighbour, error) { return nil, nil },
	}
	first := netip.MustParseAddr("2001:db8::1")
	if s.Taken(first) {
		t.Errorf("Taken(%s) = true, want false", first)
	}
	<-probed
	mu.Lock()
	if len(probes) != 1 || len(probes[0]) != 8 || probes[0][0] != first {
		t.Errorf("probes = %v, want one of the 8 addresses from %s", probes, first)
	}
	mu.Unlock()
	if !s.Taken(held) {
		t.Errorf("Taken(%s) = false, want true", held)
	}
	// From ::5 on, half the window is unknown: probed in the background.
	select {
	case <-probed:
	case <-time.After(time.Second):
		t.Fatal("no probe ahead in the background")
	}
	deadline := time.Now().Add(time.Second)
	for {
		mu.Lock()
		n := len(found)
		mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(found, []netip.Addr{held}) {
		t.Errorf("found = %v, want %s once", found, held)
	}
}
