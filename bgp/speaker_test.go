package bgp

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// router is a second GoBGP in the test, on a port of loopback: the
// speaker's peer.
type router struct {
	srv  *server.BgpServer
	port uint16
}

func freePort(t *testing.T) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// startRouter runs a router of AS 65000 that accepts the speaker (AS
// 65001, from 127.0.0.1).
func startRouter(t *testing.T) *router {
	return startRouterOn(t, "127.0.0.1", "")
}

// startRouterOn runs the router on address addr of loopback, with a TCP
// MD5 password for the speaker's session if password is not empty. Start
// it before the speaker, and no other router or speaker of the test
// process may be running: GoBGP keeps its route selection options in a
// global that starting a server writes and sessions read.
func startRouterOn(t *testing.T, addr, password string) *router {
	t.Helper()
	r := &router{srv: server.NewBgpServer(), port: freePort(t)}
	go r.srv.Serve()
	ctx := context.Background()
	if err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65000, RouterId: "198.51.100.1", ListenPort: int32(r.port), ListenAddresses: []string{addr}}}); err != nil {
		t.Fatal(err)
	}
	if err := r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: addr, PeerAsn: 65001, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true},
		AfiSafis:  bothUnicast(),
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.srv.Stop)
	return r
}

// routes returns what the router learned from the speaker: prefix to
// next hop.
func (r *router) routes(t *testing.T) map[netip.Prefix]netip.Addr {
	t.Helper()
	out := map[netip.Prefix]netip.Addr{}
	for _, f := range []bgppkt.Family{bgppkt.RF_IPv4_UC, bgppkt.RF_IPv6_UC} {
		err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_GLOBAL, Family: f}, func(n bgppkt.NLRI, paths []*apiutil.Path) {
			for _, p := range paths {
				if p.PeerAddress.IsValid() {
					out[n.(*bgppkt.IPAddrPrefix).Prefix] = nextHop(p)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func testConfig(port uint16) Config {
	return Config{
		ASN:      65001,
		RouterID: netip.MustParseAddr("198.51.100.11"),
		Peers:    []Peer{{Address: netip.MustParseAddr("127.0.0.1"), ASN: 65000}},
		HoldTime: 3 * time.Second,
		NextHops: []netip.Addr{netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("fd00:fab::11")},
		Port:     port,
		Log:      logrus.NewEntry(logrus.StandardLogger()),
	}
}

// TestSpeaker: what the speaker announces reaches the router with the
// host's next hop of each family, and leaves it when withdrawn and when
// the speaker stops; what the router sends is learned.
func TestSpeaker(t *testing.T) {
	r := startRouter(t)
	cfg := testConfig(r.port)
	cfg.Import = true
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	var mu sync.Mutex
	learned := map[netip.Prefix]netip.Addr{}
	s.OnLearned(func(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range withdrawn {
			delete(learned, p)
		}
		maps.Copy(learned, set)
	})
	statuses := make(chan Status, 100)
	s.OnStatus(func(st Status) { statuses <- st })

	v4, v6 := netip.MustParsePrefix("198.18.0.0/26"), netip.MustParsePrefix("fd00:1:2:3::/64")
	if err := s.Announce([]netip.Prefix{v4, v6}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router to learn both prefixes", func() bool {
		got := r.routes(t)
		return got[v4] == netip.MustParseAddr("198.51.100.11") && got[v6] == netip.MustParseAddr("fd00:fab::11")
	})
	st := s.Status()
	if len(st.Peers) != 1 || st.Peers[0].State != "established" || len(st.Announced) != 2 {
		t.Errorf("status %+v: want the peer established and 2 prefixes announced", st)
	}
	if !strings.Contains(st.String(), "peer 127.0.0.1 AS 65000 established") {
		t.Errorf("status line %q does not show the session", st)
	}

	// Announcing is declarative and idempotent.
	if err := s.Announce([]netip.Prefix{v4, v4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the IPv6 prefix to be withdrawn", func() bool {
		got := r.routes(t)
		_, has6 := got[v6]
		_, has4 := got[v4]
		return !has6 && has4
	})

	// Learning: a route of the router's reaches the speaker.
	other := netip.MustParsePrefix("198.18.0.64/26")
	nlri, _ := bgppkt.NewIPAddrPrefix(other)
	nh, _ := bgppkt.NewPathAttributeNextHop(netip.MustParseAddr("198.51.100.12"))
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0), nh}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the speaker to learn the router's route", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return learned[other] == netip.MustParseAddr("198.51.100.12")
	})
	if _, own := learned[v4]; own {
		t.Errorf("the speaker's own prefix %s is among the learned: %v", v4, learned)
	}

	// A graceful stop takes the routes out of the router at once.
	stopped := time.Now()
	s.Stop()
	waitFor(t, "the router to drop the speaker's routes", func() bool { return len(r.routes(t)) == 0 })
	if took := time.Since(stopped); took > time.Second {
		t.Errorf("the routes left the router %v after the stop; want under 1s", took)
	}
	select {
	case st := <-statuses:
		if st.ASN != 65001 {
			t.Errorf("reported status %+v", st)
		}
	default:
		t.Error("no status was reported")
	}
}

// TestSpeakerNoImport: without BGP_IMPORT_ROUTES nothing is learned.
func TestSpeakerNoImport(t *testing.T) {
	r := startRouter(t)
	s, err := Start(testConfig(r.port))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	calls := 0
	s.OnLearned(func(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix) {
		if len(set)+len(withdrawn) > 0 {
			calls++
		}
	})
	nlri, _ := bgppkt.NewIPAddrPrefix(netip.MustParsePrefix("198.18.0.64/26"))
	nh, _ := bgppkt.NewPathAttributeNextHop(netip.MustParseAddr("198.51.100.12"))
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0), nh}}}}); err != nil {
		t.Fatal(err)
	}
	// What the speaker announces still goes out.
	own := netip.MustParsePrefix("198.18.0.0/26")
	if err := s.Announce([]netip.Prefix{own}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router to learn the speaker's prefix", func() bool { _, ok := r.routes(t)[own]; return ok })
	time.Sleep(300 * time.Millisecond)
	if st := s.Status(); st.Learned != 0 || calls != 0 {
		t.Errorf("learned %d routes (%d calls) with import off", st.Learned, calls)
	}
}

// TestSpeakerUnreachablePeer: a peer that never answers is reported with
// the reason.
func TestSpeakerUnreachablePeer(t *testing.T) {
	defer func(d time.Duration) { notEstablishedAfter = d }(notEstablishedAfter)
	notEstablishedAfter = 200 * time.Millisecond
	cfg := testConfig(freePort(t)) // nothing listens there
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	waitFor(t, "the peer's error", func() bool { return s.Status().Peers[0].Error != "" })
	st := s.Status()
	if p := st.Peers[0]; p.State == "established" || !strings.Contains(p.Error, "cannot connect") || !strings.Contains(p.Error, "refused") {
		t.Errorf("peer status %+v: want the connection refused named", p)
	}
	if !strings.Contains(st.String(), "cannot connect") {
		t.Errorf("status line %q does not say why", st)
	}
}

// TestSpeakerIPv6Peer: over a session to an IPv6 peer both families go,
// each prefix with the host's next hop of its family.
func TestSpeakerIPv6Peer(t *testing.T) {
	r := startRouterOn(t, "::1", "")
	cfg := testConfig(r.port)
	cfg.Peers = []Peer{{Address: netip.MustParseAddr("::1"), ASN: 65000}}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	v4, v6 := netip.MustParsePrefix("198.18.0.0/26"), netip.MustParsePrefix("fd00:1:2:3::/64")
	if err := s.Announce([]netip.Prefix{v4, v6}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the router to learn both prefixes over IPv6", func() bool {
		got := r.routes(t)
		return got[v4] == netip.MustParseAddr("198.51.100.11") && got[v6] == netip.MustParseAddr("fd00:fab::11")
	})
}

// TestSpeakerPassword: BGP_PASSWORD signs the session (TCP MD5); a
// speaker with another password gets no session.
func TestSpeakerPassword(t *testing.T) {
	for _, tc := range []struct {
		password string
		up       bool
	}{{"s3cret", true}, {"wrong", false}} {
		// A router of its own each time: GoBGP's route selection
		// options are a global that starting a server writes, so no
		// other server's session may be coming up meanwhile.
		r := startRouterOn(t, "127.0.0.1", "s3cret")
		cfg := testConfig(r.port)
		cfg.Password = tc.password
		s, err := Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if tc.up {
			waitFor(t, "the signed session", func() bool { return s.Status().Peers[0].State == "established" })
		} else {
			time.Sleep(3 * time.Second)
			if st := s.Status().Peers[0].State; st == "established" {
				t.Error("a session came up with the wrong password")
			}
		}
		s.Stop()
		r.srv.Stop()
	}
}

// sendRoutes has the router send n IPv4 /32s in 198.19.0.0/16, and
// returns them.
func (r *router) sendRoutes(t *testing.T, n int) []netip.Prefix {
	t.Helper()
	var paths []*apiutil.Path
	var out []netip.Prefix
	a := netip.MustParseAddr("198.19.0.0")
	nh, _ := bgppkt.NewPathAttributeNextHop(netip.MustParseAddr("198.51.100.12"))
	for range n {
		p := netip.PrefixFrom(a, 32)
		nlri, _ := bgppkt.NewIPAddrPrefix(p)
		paths = append(paths, &apiutil.Path{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0), nh}})
		out = append(out, p)
		a = a.Next()
	}
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSpeakerMaxPrefixes: a peer that sends more prefixes than
// BGP_MAX_PREFIXES has its session torn down, with the reason in the
// status and the log, and it stays down; what it sent is withdrawn. Up
// to the limit, the session stays; deliveries are changes, not the
// table.
func TestSpeakerMaxPrefixes(t *testing.T) {
	r := startRouter(t)
	cfg := testConfig(r.port)
	cfg.Import, cfg.MaxPrefixes = true, 5
	// A hold time that a loaded machine under -race cannot miss: a
	// session reset would hide what this test looks for.
	cfg.HoldTime = 30 * time.Second
	log, hook := logtest.NewNullLogger()
	cfg.Log = logrus.NewEntry(log)
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	var mu sync.Mutex
	learned := map[netip.Prefix]netip.Addr{}
	largest := 0
	s.OnLearned(func(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix) {
		mu.Lock()
		defer mu.Unlock()
		largest = max(largest, len(set)+len(withdrawn))
		for _, p := range withdrawn {
			delete(learned, p)
		}
		maps.Copy(learned, set)
	})
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(learned) }
	waitFor(t, "the session", func() bool { return s.Status().Peers[0].State == "established" })
	r.sendRoutes(t, 5)
	statuses := make(chan Status, 100)
	s.OnStatus(func(st Status) { statuses <- st })
	waitFor(t, "5 routes learned", func() bool { return count() == 5 })
	waitFor(t, "the status to report 5 routes learned", func() bool {
		select {
		case st := <-statuses:
			return st.Learned == 5
		default:
			return false
		}
	})
	// One more, the 6th: changes of one route each reach OnLearned.
	mu.Lock()
	largest = 0
	mu.Unlock()
	one := netip.MustParsePrefix("198.18.9.0/24")
	nlri, _ := bgppkt.NewIPAddrPrefix(one)
	nh, _ := bgppkt.NewPathAttributeNextHop(netip.MustParseAddr("198.51.100.12"))
	if _, err := r.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(0), nh}}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the session torn down", func() bool {
		p := s.Status().Peers[0]
		return p.State != "established" && strings.Contains(p.Error, "prefix limit exceeded")
	})
	waitFor(t, "the peer's routes withdrawn", func() bool { return count() == 0 })
	st := s.Status()
	if p := st.Peers[0]; !strings.Contains(p.Error, "more than 5 prefixes of one family (BGP_MAX_PREFIXES=5)") {
		t.Errorf("peer status %+v: want the limit named", p)
	}
	if !strings.Contains(st.String(), "BGP_MAX_PREFIXES=5") {
		t.Errorf("status line %q does not say why", st)
	}
	mu.Lock()
	if largest > 5 {
		t.Errorf("a change of one route was delivered as %d", largest)
	}
	mu.Unlock()
	var logged bool
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.ErrorLevel && strings.Contains(fmt.Sprint(e.Data["reason"]), "BGP_MAX_PREFIXES=5") {
			logged = true
		}
	}
	if !logged {
		t.Error("the teardown was not logged with its reason")
	}
	time.Sleep(6 * time.Second) // longer than GoBGP's connect retry (5 s)
	if p := s.Status().Peers[0]; p.State == "established" {
		t.Errorf("the session came back after the limit tore it down: %+v", p)
	}
}
