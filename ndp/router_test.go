package ndp

import (
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/ipv6"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// routerLL is the router's link-local address of its own.
func (l link) routerLL(t *testing.T) netip.Addr {
	t.Helper()
	for _, a := range l.router.Addrs(t, "dstrtr0") {
		if a.Scope == "link" {
			return netip.MustParseAddr(a.Local)
		}
	}
	t.Fatal("the router has no link-local address")
	return netip.Addr{}
}

// routerConn opens an NDP socket in the router's namespace, from from
// (ndp.LinkLocal, or a literal address), receiving what accept lets
// through.
func (l link) routerConn(t *testing.T, from ndp.Addr, accept ...ipv6.ICMPType) *ndp.Conn {
	t.Helper()
	var c *ndp.Conn
	if err := netns.Do(l.router.Path, func() error {
		ifi, err := net.InterfaceByName("dstrtr0")
		if err != nil {
			return err
		}
		ifi.Name = strconv.Itoa(ifi.Index)
		if c, _, err = ndp.Listen(ifi, from); err != nil {
			return err
		}
		var f ipv6.ICMPFilter
		f.SetAll(true)
		for _, a := range accept {
			f.Accept(a)
		}
		return c.SetICMPFilter(&f)
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// advertise has the router send an unsolicited advertisement from from
// with the router lifetime given.
func (l link) advertise(t *testing.T, from ndp.Addr, lifetime time.Duration) {
	t.Helper()
	c := l.routerConn(t, from)
	if err := c.WriteTo(&ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: lifetime}, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
		t.Fatal(err)
	}
}

// wantRouter waits up to 2 s for the host's Routers to name want as the
// link's router (an invalid want: none).
func wantRouter(t *testing.T, rs *Routers, want netip.Addr) {
	t.Helper()
	var got netip.Addr
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, _ = rs.Router("dsthost0", "net1", 0); got == want {
			return
		}
	}
	t.Fatalf("router of dsthost0: %v, want %v", got, want)
}

// TestRouters: the host learns the router that answers its solicitation,
// prefers the one whose lifetime ends last, drops one that advertises a
// lifetime of 0, and stops with the last user.
func TestRouters(t *testing.T) {
	l := newLink(t)
	ll := l.routerLL(t)
	// The router answers one solicitation, and sends nothing unasked.
	rs := l.routerConn(t, ndp.LinkLocal, ipv6.ICMPTypeRouterSolicitation)
	if err := rs.JoinGroup(netip.IPv6LinkLocalAllRouters()); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() {
		if err := rs.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			answered <- err
			return
		}
		if _, _, _, err := rs.ReadFrom(); err != nil {
			answered <- err
			return
		}
		answered <- rs.WriteTo(&ndp.RouterAdvertisement{CurrentHopLimit: 64, RouterLifetime: 1800 * time.Second}, nil, netip.IPv6LinkLocalAllNodes())
	}()
	routers := NewRouters(logrus.New())
	t.Cleanup(routers.Close)
	l.do(t, func() error { return routers.Follow("dsthost0", "net1") })
	l.do(t, func() error { return routers.Follow("dsthost0", "net2") })
	got, ok := routers.Router("dsthost0", "net1", 2*time.Second)
	if err := <-answered; err != nil {
		t.Fatalf("the router saw no solicitation: %v", err)
	}
	if !ok || got != ll {
		t.Fatalf("router of dsthost0 after a solicitation: %v %v, want %v", got, ok, ll)
	}

	// A second router, with a longer lifetime, is preferred while it
	// lasts; a lifetime of 0 says it is no router any more.
	l.router.IP(t, "addr", "add", "fe80::beef/64", "dev", "dstrtr0", "nodad")
	l.advertise(t, "fe80::beef", 9000*time.Second)
	wantRouter(t, routers, netip.MustParseAddr("fe80::beef"))
	l.advertise(t, "fe80::beef", 0)
	wantRouter(t, routers, ll)

	routers.Unfollow("dsthost0", "net1")
	if got, ok := routers.Router("dsthost0", "net2", 0); !ok || got != ll {
		t.Fatalf("router of dsthost0 with one user left: %v %v, want %v", got, ok, ll)
	}
	routers.Unfollow("dsthost0", "net2")
	if got, ok := routers.Router("dsthost0", "net2", 0); ok {
		t.Fatalf("router of dsthost0 without users: %v, want none", got)
	}
}

// TestRoutersNone: on a link without routers only each user's first
// question waits, and a link without a link-local address is followed
// from ::.
func TestRoutersNone(t *testing.T) {
	l := newLink(t)
	l.host.IP(t, "-6", "addr", "flush", "dev", "dsthost0", "scope", "link")
	routers := NewRouters(logrus.New())
	t.Cleanup(routers.Close)
	l.do(t, func() error { return routers.Follow("dsthost0", "net1") })
	start := time.Now()
	if got, ok := routers.Router("dsthost0", "net1", 300*time.Millisecond); ok {
		t.Fatalf("router %v on a link without one", got)
	}
	if took := time.Since(start); took < 250*time.Millisecond || took > time.Second {
		t.Fatalf("the first question took %s, want the wait of 300ms", took)
	}
	start = time.Now()
	if _, ok := routers.Router("dsthost0", "net1", 300*time.Millisecond); ok || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("the second question took %s, want no wait", time.Since(start))
	}
	// A network that starts following the link later waits once too.
	l.do(t, func() error { return routers.Follow("dsthost0", "net2") })
	start = time.Now()
	if _, ok := routers.Router("dsthost0", "net2", 300*time.Millisecond); ok || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("a new user's first question took %s, want the wait of 300ms", time.Since(start))
	}
	ll := l.routerLL(t)
	l.advertise(t, ndp.LinkLocal, 600*time.Second)
	wantRouter(t, routers, ll)
}
