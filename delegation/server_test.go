package delegation

import (
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/server6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// Modes of the test server.
const (
	serve     = "serve"     // delegate the prefix
	noBinding = "nobinding" // answer Renew and Rebind with NoBinding; delegate the prefix on Solicit/Request
	silent    = "silent"    // answer nothing
)

// seen is a message the test server received.
type seen struct {
	Type   dhcpv6.MessageType
	DUID   string // the client's, hex
	IAID   uint32
	Prefix netip.Prefix // of the IA_PD, if any
	At     time.Time
}

// server is a DHCPv6 server delegating one prefix at a time, in-process,
// for tests.
type server struct {
	mu                       sync.Mutex
	mode                     string
	prefix                   netip.Prefix
	t1, t2, preferred, valid time.Duration
	seen                     []seen
	duid                     dhcpv6.DUID
}

// set changes what the server does from now on.
func (s *server) set(mode string, prefix netip.Prefix) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mode, s.prefix = mode, prefix
}

// received returns the messages received so far.
func (s *server) received() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.seen...)
}

// count returns how many messages of type typ came since since.
func (s *server) count(typ dhcpv6.MessageType, since time.Time) int {
	n := 0
	for _, m := range s.received() {
		if m.Type == typ && !m.At.Before(since) {
			n++
		}
	}
	return n
}

func (s *server) handle(conn net.PacketConn, peer net.Addr, d dhcpv6.DHCPv6) {
	m, ok := d.(*dhcpv6.Message)
	if !ok {
		return
	}
	s.mu.Lock()
	in := seen{Type: m.MessageType, At: time.Now()}
	if cid := m.Options.ClientID(); cid != nil {
		in.DUID = hex.EncodeToString(cid.ToBytes())
	}
	ia := m.Options.OneIAPD()
	if ia != nil {
		in.IAID = uint32(ia.IaId[0])<<24 | uint32(ia.IaId[1])<<16 | uint32(ia.IaId[2])<<8 | uint32(ia.IaId[3])
		if ps := ia.Options.Prefixes(); len(ps) > 0 && ps[0].Prefix != nil {
			in.Prefix, _ = toPrefix(ps[0].Prefix)
		}
	}
	s.seen = append(s.seen, in)
	reply := s.answer(m, ia, in.Prefix)
	s.mu.Unlock()
	if reply == nil {
		return
	}
	// No zone: the socket is bound to the router's link.
	p := peer.(*net.UDPAddr)
	_, _ = conn.WriteTo(reply.ToBytes(), &net.UDPAddr{IP: p.IP, Port: p.Port})
}

// answer builds the answer to m (nil for none), with s.mu held.
func (s *server) answer(m *dhcpv6.Message, ia *dhcpv6.OptIAPD, asked netip.Prefix) *dhcpv6.Message {
	if s.mode == silent || ia == nil && m.MessageType != dhcpv6.MessageTypeRelease {
		return nil
	}
	var out *dhcpv6.Message
	var err error
	switch m.MessageType {
	case dhcpv6.MessageTypeSolicit:
		out, err = dhcpv6.NewAdvertiseFromSolicit(m, dhcpv6.WithServerID(s.duid))
	case dhcpv6.MessageTypeRequest, dhcpv6.MessageTypeRenew, dhcpv6.MessageTypeRebind, dhcpv6.MessageTypeRelease:
		out, err = dhcpv6.NewReplyFromMessage(m, dhcpv6.WithServerID(s.duid))
	default:
		return nil
	}
	if err != nil {
		panic(err)
	}
	if m.MessageType == dhcpv6.MessageTypeRelease {
		out.AddOption(&dhcpv6.OptStatusCode{StatusCode: iana.StatusSuccess})
		return out
	}
	pd := &dhcpv6.OptIAPD{IaId: ia.IaId, T1: s.t1, T2: s.t2}
	renewing := m.MessageType == dhcpv6.MessageTypeRenew || m.MessageType == dhcpv6.MessageTypeRebind
	switch {
	case s.mode == noBinding && renewing:
		pd.Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding})
	default:
		if renewing && asked.IsValid() && asked != s.prefix { // withdrawn: lifetime 0
			pd.Options.Add(iaPrefix(asked, 0, 0))
		}
		pd.Options.Add(iaPrefix(s.prefix, s.preferred, s.valid))
	}
	out.AddOption(pd)
	return out
}

// link is a host namespace whose uplink dsthost0 shares a link with a
// router namespace running a test server on dstrtr0.
type link struct {
	host, router netnstest.NS
	srv          *server
}

const uplink = "dsthost0"

// newLink makes the namespaces and starts the server, which delegates
// prefix with T1 1 s, T2 2 s, preferred 3 s and valid 4 s. The host's
// link-local address is still tentative when newLink returns.
func newLink(t *testing.T, prefix netip.Prefix) *link {
	t.Helper()
	return newLinkIn(t, netnstest.New(t), uplink, prefix)
}

// newLinkIn is newLink for uplink up in the namespace host.
func newLinkIn(t *testing.T, host netnstest.NS, up string, prefix netip.Prefix) *link {
	t.Helper()
	l := &link{host: host, router: netnstest.New(t)}
	l.srv = &server{mode: serve, prefix: prefix, t1: time.Second, t2: 2 * time.Second,
		preferred: 3 * time.Second, valid: 4 * time.Second,
		duid: &dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0xd6, 1}}}
	l.host.IP(t, "link", "add", up, "type", "veth", "peer", "name", "dstrtr0", "netns", l.router.Name)
	l.router.SetSysctl(t, "net/ipv6/conf/dstrtr0/accept_dad", "0")
	l.router.IP(t, "link", "set", "dstrtr0", "up")
	var srv *server6.Server
	err := netns.Do(l.router.Path, func() error {
		var err error
		srv, err = server6.NewServer("dstrtr0", nil, l.srv.handle)
		return err
	})
	if err != nil {
		t.Fatalf("start the test DHCPv6 server: %v", err)
	}
	go func() { _ = srv.Serve() }()
	t.Cleanup(func() { _ = srv.Close() })
	l.host.IP(t, "link", "set", up, "up")
	return l
}
