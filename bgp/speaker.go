package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	bgppkt "github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/sirupsen/logrus"
)

// Speaker is the embedded BGP speaker.
type Speaker struct {
	cfg Config
	log logrus.FieldLogger
	srv *server.BgpServer

	ctx    context.Context
	cancel context.CancelFunc

	announceMu sync.Mutex // held by Announce
	// learnMu orders the reports of learned routes: held while one is
	// made and delivered, taken before mu.
	learnMu   sync.Mutex
	mu        sync.Mutex
	announced map[netip.Prefix]*apiutil.Path
	learned   map[netip.Prefix]netip.Addr
	peers     map[netip.Addr]*PeerStatus
	onLearned LearnedFunc
	onStatus  func(Status)
	changed   chan struct{} // a status change to report
	stopped   bool
}

// notEstablishedAfter is how long a peer may take to come up before the
// speaker finds out why it does not and reports it.
var notEstablishedAfter = 10 * time.Second

// Start starts the speaker and connects to the peers. It returns once the
// speaker runs; the sessions come up in the background (Status tells).
func Start(cfg Config) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HoldTime == 0 {
		cfg.HoldTime = DefaultHoldTime
	}
	if cfg.Port == 0 {
		cfg.Port = 179
	}
	if cfg.MaxPrefixes == 0 {
		cfg.MaxPrefixes = DefaultMaxPrefixes
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	s := &Speaker{
		cfg:       cfg,
		log:       log,
		announced: map[netip.Prefix]*apiutil.Path{},
		learned:   map[netip.Prefix]netip.Addr{},
		peers:     map[netip.Addr]*PeerStatus{},
		changed:   make(chan struct{}, 1),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = server.NewBgpServer(server.LoggerOption(gobgpLogger(log)))
	go s.srv.Serve()
	fail := func(err error) (*Speaker, error) {
		s.srv.Stop()
		s.cancel()
		return nil, err
	}
	if err := s.srv.StartBgp(s.ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:      cfg.ASN,
		RouterId: cfg.RouterID.String(),
		// Connect out only: nothing to open in the host's firewall, and
		// no clash with a routing daemon of the host's own on port 179.
		ListenPort: -1,
	}}); err != nil {
		return fail(fmt.Errorf("start the BGP speaker (AS %d, router ID %s): %w", cfg.ASN, cfg.RouterID, err))
	}
	if !cfg.Import {
		if err := s.learnNothing(); err != nil {
			return fail(fmt.Errorf("BGP speaker: import no routes: %w", err))
		}
	}
	for _, p := range cfg.Peers {
		s.peers[p.Address] = &PeerStatus{Address: p.Address, ASN: p.ASN, State: "connecting"}
	}
	if err := s.srv.WatchEvent(s.ctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: s.peerEvent,
		OnBestPath:   s.bestPaths,
	}, server.WatchPeer(), server.WatchBestPath(true)); err != nil {
		return fail(fmt.Errorf("BGP speaker: watch sessions and routes: %w", err))
	}
	for _, p := range cfg.Peers {
		if err := s.srv.AddPeer(s.ctx, &api.AddPeerRequest{Peer: s.peerConfig(p)}); err != nil {
			return fail(fmt.Errorf("BGP peer %s: %w", p, err))
		}
	}
	if _, ok := cfg.NextHop(netip.MustParsePrefix("::/0")); !ok {
		v6peer := slices.ContainsFunc(cfg.Peers, func(p Peer) bool { return p.Address.Is6() })
		if !v6peer {
			log.Warn("BGP: IPv6 prefixes need an IPv6 next hop and every peer is IPv4: set an IPv6 CLUSTER_ADDRESS (CLUSTER_ADDRESS=IPV4,IPV6), or IPv6 blocks are announced with an IPv4 next hop that routers reject")
		}
	}
	go s.diagnose()
	go s.reportStatus()
	log.WithFields(logrus.Fields{"asn": cfg.ASN, "router_id": cfg.RouterID, "peers": len(cfg.Peers), "import": cfg.Import}).Info("BGP speaker started")
	return s, nil
}

// learnNothing keeps the routes the peers send out of the speaker's table
// (BGP_IMPORT_ROUTES=false): the global import policy rejects those from
// peers, internal and external. A default action of reject would take
// the speaker's own routes too: GoBGP imports them through the same
// policy.
func (s *Speaker) learnNothing() error {
	reject := func(name string, rt api.Conditions_RouteType) *api.Statement {
		return &api.Statement{Name: name, Conditions: &api.Conditions{RouteType: rt}, Actions: &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_REJECT}}
	}
	policy := &api.Policy{Name: "dualstack-learn-nothing", Statements: []*api.Statement{
		reject("from-ebgp-peers", api.Conditions_ROUTE_TYPE_EXTERNAL),
		reject("from-ibgp-peers", api.Conditions_ROUTE_TYPE_INTERNAL),
	}}
	if err := s.srv.AddPolicy(s.ctx, &api.AddPolicyRequest{Policy: policy}); err != nil {
		return err
	}
	return s.srv.SetPolicyAssignment(s.ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: policy.Name}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_ACCEPT,
	}})
}

// peerConfig is GoBGP's configuration of peer p: both unicast families,
// each limited to BGP_MAX_PREFIXES prefixes when the speaker imports
// (GoBGP then sends a Cease, maximum number of prefixes reached, and
// keeps the session down). Without import the peers' routes are
// rejected and never reach the kernel: a router that sends a full table
// keeps its session.
func (s *Speaker) peerConfig(p Peer) *api.Peer {
	families := bothUnicast()
	if s.cfg.Import {
		for _, f := range families {
			f.PrefixLimits = &api.PrefixLimit{Family: f.Config.Family, MaxPrefixes: s.cfg.MaxPrefixes}
		}
	}
	hold := uint64(s.cfg.HoldTime / time.Second)
	return &api.Peer{
		Conf: &api.PeerConf{NeighborAddress: p.Address.String(), PeerAsn: p.ASN, AuthPassword: s.cfg.Password},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime: hold, KeepaliveInterval: max(1, hold/3), ConnectRetry: 5,
		}},
		Transport: &api.Transport{RemotePort: uint32(s.cfg.Port)},
		AfiSafis:  families,
	}
}

// bothUnicast is the families of every session: IPv4 and IPv6 unicast.
func bothUnicast() []*api.AfiSafi {
	var out []*api.AfiSafi
	for _, afi := range []api.Family_Afi{api.Family_AFI_IP, api.Family_AFI_IP6} {
		out = append(out, &api.AfiSafi{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}})
	}
	return out
}

// Announce makes the announced prefixes exactly want: new ones are
// announced, the others withdrawn.
func (s *Speaker) Announce(want []netip.Prefix) error {
	// GoBGP is called without s.mu: its event callbacks take it.
	s.announceMu.Lock()
	defer s.announceMu.Unlock()
	s.mu.Lock()
	stopped, had := s.stopped, maps.Clone(s.announced)
	s.mu.Unlock()
	if stopped {
		return nil
	}
	keep := map[netip.Prefix]bool{}
	var errs []error
	for _, p := range want {
		p = p.Masked()
		if keep[p] {
			continue
		}
		keep[p] = true
		if had[p] != nil {
			continue
		}
		path, err := s.path(p)
		if err == nil {
			_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announce %s: %w", p, err))
			continue
		}
		had[p] = path
		s.log.WithField("prefix", p).Info("BGP: prefix announced")
	}
	for p, path := range had {
		if keep[p] {
			continue
		}
		w := *path
		w.Withdrawal = true
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{&w}}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		delete(had, p)
		s.log.WithField("prefix", p).Info("BGP: prefix withdrawn")
	}
	s.mu.Lock()
	s.announced = had
	s.statusChanged()
	s.mu.Unlock()
	return errors.Join(errs...)
}

// path is the route to p: origin IGP, next hop the host's address of p's
// family (or, with none, the address of each session: GoBGP puts it in).
func (s *Speaker) path(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgppkt.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	nh, ok := s.cfg.NextHop(p)
	attrs := []bgppkt.PathAttributeInterface{bgppkt.NewPathAttributeOrigin(bgppkt.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if p.Addr().Is4() {
		if !ok {
			nh = netip.IPv4Unspecified()
		}
		a, err := bgppkt.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, err
		}
		return &apiutil.Path{Family: bgppkt.RF_IPv4_UC, Nlri: nlri, Attrs: append(attrs, a)}, nil
	}
	if !ok {
		nh = netip.IPv6Unspecified()
	}
	a, err := bgppkt.NewPathAttributeMpReachNLRI(bgppkt.RF_IPv6_UC, []bgppkt.PathNLRI{{NLRI: nlri}}, nh)
	if err != nil {
		return nil, err
	}
	return &apiutil.Path{Family: bgppkt.RF_IPv6_UC, Nlri: nlri, Attrs: append(attrs, a)}, nil
}

// LearnedFunc is told of the routes learned from the peers: set are
// those learned or changed (prefix to next hop), withdrawn those gone.
type LearnedFunc func(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix)

// OnLearned sets what is told of the routes learned from the peers: at
// once all of them (none, at the start), then each change, in order.
func (s *Speaker) OnLearned(fn LearnedFunc) {
	s.learnMu.Lock()
	defer s.learnMu.Unlock()
	s.mu.Lock()
	s.onLearned = fn
	learned := maps.Clone(s.learned)
	s.mu.Unlock()
	if fn != nil {
		fn(learned, nil)
	}
}

// OnStatus sets what is called with the status at every change.
func (s *Speaker) OnStatus(fn func(Status)) {
	s.mu.Lock()
	s.onStatus = fn
	s.mu.Unlock()
	if fn != nil {
		fn(s.Status())
	}
}

// bestPaths follows the best routes: those from peers are the learned
// ones; the speaker's own are not. The OnLearned function is told of the
// changes only: their cost does not grow with the table.
func (s *Speaker) bestPaths(paths []*apiutil.Path, _ time.Time) {
	s.learnMu.Lock()
	defer s.learnMu.Unlock()
	set := map[netip.Prefix]netip.Addr{}
	var withdrawn []netip.Prefix
	s.mu.Lock()
	for _, p := range paths {
		nlri, ok := p.Nlri.(*bgppkt.IPAddrPrefix)
		if !ok {
			continue
		}
		prefix := nlri.Prefix.Masked()
		nh := nextHop(p)
		if p.Withdrawal || !p.PeerAddress.IsValid() || !nh.IsValid() {
			if _, had := s.learned[prefix]; had {
				delete(s.learned, prefix)
				delete(set, prefix)
				withdrawn = append(withdrawn, prefix)
			}
			continue
		}
		if s.learned[prefix] != nh {
			s.learned[prefix] = nh
			set[prefix] = nh
		}
	}
	fn := s.onLearned
	if len(set) > 0 || len(withdrawn) > 0 {
		s.statusChanged() // the count of learned routes
	}
	s.mu.Unlock()
	if fn != nil && (len(set) > 0 || len(withdrawn) > 0) {
		fn(set, withdrawn)
	}
}

// nextHop is a route's next hop.
func nextHop(p *apiutil.Path) netip.Addr {
	for _, a := range p.Attrs {
		switch a := a.(type) {
		case *bgppkt.PathAttributeNextHop:
			return a.Value.Unmap()
		case *bgppkt.PathAttributeMpReachNLRI:
			return a.Nexthop
		}
	}
	return netip.Addr{}
}

// peerEvent records a session's state.
func (s *Speaker) peerEvent(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.Conf.NeighborAddress.Unmap()
	s.mu.Lock()
	ps := s.peers[addr]
	if ps == nil || s.stopped {
		s.mu.Unlock()
		return
	}
	was, wasErr := ps.State, ps.Error
	ps.State = stateName(ev.Peer.State.SessionState)
	switch {
	case ps.State == "established":
		ps.Since, ps.Error = time.Now().UTC(), ""
	case ev.Peer.State.AdminState == api.PeerState_ADMIN_STATE_PFX_CT:
		if !strings.HasPrefix(ps.Error, prefixLimitError) {
			ps.Since = time.Now().UTC()
		}
		ps.Error = fmt.Sprintf("%s: the peer sent more than %d prefixes of one family (BGP_MAX_PREFIXES=%d); it stays down until the plugin restarts: fix the router's export filter, or raise BGP_MAX_PREFIXES", prefixLimitError, s.cfg.MaxPrefixes, s.cfg.MaxPrefixes)
	case was == "established":
		ps.Since = time.Now().UTC()
		ps.Error = "session went down"
		if m := ev.Peer.State.DisconnectMessage; m != "" {
			ps.Error += ": " + m
		}
	}
	now := *ps
	s.statusChanged()
	s.mu.Unlock()
	entry := s.log.WithField("peer", now.Address).WithField("peer_asn", now.ASN).WithField("state", now.State)
	if strings.HasPrefix(now.Error, prefixLimitError) && now.Error != wasErr {
		entry.WithField("reason", now.Error).Error("BGP session torn down: too many prefixes")
		return
	}
	if now.State == was {
		return
	}
	switch {
	case now.State == "established":
		entry.Info("BGP session established")
	case was == "established":
		entry.Warn("BGP session down: " + now.Error)
	default:
		entry.Debug("BGP session state")
	}
}

// prefixLimitError starts a peer's error when BGP_MAX_PREFIXES tore its
// session down.
const prefixLimitError = "torn down, prefix limit exceeded"

func stateName(st bgppkt.FSMState) string {
	switch st {
	case bgppkt.BGP_FSM_IDLE:
		return "idle"
	case bgppkt.BGP_FSM_CONNECT:
		return "connecting"
	case bgppkt.BGP_FSM_ACTIVE:
		return "active"
	case bgppkt.BGP_FSM_OPENSENT, bgppkt.BGP_FSM_OPENCONFIRM:
		return "opening"
	case bgppkt.BGP_FSM_ESTABLISHED:
		return "established"
	}
	return st.String()
}

// diagnose finds out, once, why a peer is not up notEstablishedAfter the
// start, and says so: GoBGP only retries.
func (s *Speaker) diagnose() {
	select {
	case <-s.ctx.Done():
		return
	case <-time.After(notEstablishedAfter):
	}
	for _, p := range s.cfg.Peers {
		s.mu.Lock()
		ps := s.peers[p.Address]
		up, limited := ps.State == "established", strings.HasPrefix(ps.Error, prefixLimitError)
		s.mu.Unlock()
		if up || limited {
			continue
		}
		why := "the peer accepts the connection but no session comes up: check the AS numbers, the password and the router's neighbor configuration for this host"
		d := net.Dialer{Timeout: 3 * time.Second}
		c, err := d.DialContext(s.ctx, "tcp", net.JoinHostPort(p.Address.String(), strconv.Itoa(int(s.cfg.Port))))
		if err != nil {
			why = "cannot connect: " + err.Error()
		} else {
			c.Close()
		}
		msg := fmt.Sprintf("not established after %v: %s", notEstablishedAfter, why)
		s.mu.Lock()
		ps = s.peers[p.Address]
		if ps.State != "established" && !s.stopped && !strings.HasPrefix(ps.Error, prefixLimitError) {
			ps.Error = msg
			s.statusChanged()
		}
		s.mu.Unlock()
		s.log.WithField("peer", p.Address).WithField("peer_asn", p.ASN).Error("BGP peer " + p.String() + " " + msg)
	}
}

// Stop withdraws every route from the peers at once (a Cease
// notification ends each session) and stops the speaker.
func (s *Speaker) Stop() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	s.mu.Unlock()
	s.srv.Stop()
	s.cancel()
	s.log.Info("BGP speaker stopped: the peers dropped this host's routes")
}

// gobgpLogger hands GoBGP's log to logrus at debug: what matters of it
// (sessions, errors) the speaker logs itself.
func gobgpLogger(log logrus.FieldLogger) (*slog.Logger, *slog.LevelVar) {
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	if l, ok := log.(*logrus.Entry); ok && l.Logger.IsLevelEnabled(logrus.DebugLevel) {
		lvl.Set(slog.LevelDebug)
	}
	out := log.WithField("component", "gobgp")
	return slog.New(slog.NewTextHandler(out.WriterLevel(logrus.DebugLevel), &slog.HandlerOptions{Level: lvl})), lvl
}
