package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// Defaults of Config.
const (
	DefaultTTL     = 15 * time.Second
	DefaultTimeout = 3 * time.Second
	DefaultPrefix  = "/dualstack/v1/"
)

// Config says where the cluster store is and who this host is.
type Config struct {
	// Endpoints are the etcd client URLs, http:// or https://.
	Endpoints []string
	// TLS is the client TLS configuration for https endpoints; nil for
	// http (for https, nil means the system's roots and no client
	// certificate).
	TLS *tls.Config
	// Node is this host's name in the cluster: 1 to 63 characters of
	// A-Z, a-z, 0-9, '.', '_' and '-'.
	Node string
	// Addresses are this host's cluster addresses, at most one per family:
	// the addresses other hosts route this host's blocks to.
	Addresses []netip.Addr
	// TTL is the node lease's time to live: how long after this host stops
	// answering other hosts see it as dead. Default 15s.
	TTL time.Duration
	// Timeout bounds each call whose context has no deadline. Default 3s.
	Timeout time.Duration
	// Prefix is the key prefix of everything dualstack writes. Default
	// "/dualstack/v1/".
	Prefix string
	// Log receives the store's logs. Nil discards them.
	Log logrus.FieldLogger
	// Observer makes a Store that does not register Node as a live node:
	// for tools (status, forget) that read and administer the store
	// without being a host of the cluster. Node still names it in logs.
	Observer bool
	// Token is this host's secret identity (LoadToken keeps it in the
	// state file): see "Identity" in identity.go. Empty: a new one for
	// this Store only, which then holds no block of an earlier process.
	Token string
	// Calls, when set, hears of every call to etcd (the metrics); nil:
	// nobody.
	Calls Observer
}

// Store is this host's handle on the cluster store. Its methods are safe for
// concurrent use.
type Store struct {
	cfg          Config
	client       *clientv3.Client
	log          logrus.FieldLogger
	endpointList string // for error messages

	// defs remembers the definitions this process has defined or confirmed,
	// so that a definition removed while this host had no block left can be
	// put back before leasing (see LeaseBlock).
	defsMu sync.Mutex
	defs   map[string]Definition

	// What warnOnce warned about.
	warnMu sync.Mutex
	warned map[string]bool

	// The liveness goroutine: its context, its end, and the lease it holds.
	liveCtx    context.Context
	liveStop   context.CancelFunc
	liveDone   chan struct{}
	leaseMu    sync.Mutex
	lease      clientv3.LeaseID
	refused    error // *NameTakenError while the node name is another host's
	closeOnce  sync.Once
	closeError error

	// What the node record says besides the addresses: when this
	// registration was made, and the host's BGP status (SetBGPStatus).
	recordMu sync.Mutex
	since    string
	bgp      json.RawMessage
}

// Open checks cfg and returns a Store. It does not contact etcd and does
// not fail when etcd is down: the connection is made lazily, and the node's
// liveness registration runs in the background, retrying until etcd answers
// and registering again whenever the lease is lost.
func Open(cfg Config) (*Store, error) {
	if err := validNode(cfg.Node); err != nil {
		return nil, fmt.Errorf("cluster store: %v", err)
	}
	if len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("cluster store: no endpoint given: give the etcd client URLs, for example http://10.0.0.1:2379")
	}
	https := false
	for _, e := range cfg.Endpoints {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("cluster store: endpoint %q is not a URL such as http://10.0.0.1:2379 or https://etcd.example:2379", e)
		}
		https = https || u.Scheme == "https"
	}
	var has4, has6 bool
	addrs := make([]netip.Addr, 0, len(cfg.Addresses))
	for _, a := range cfg.Addresses {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || a.IsUnspecified() {
			return nil, fmt.Errorf("cluster store: node %s: %q is not a usable cluster address", cfg.Node, a)
		}
		if (a.Is4() && has4) || (a.Is6() && has6) {
			return nil, fmt.Errorf("cluster store: node %s: more than one cluster address of one family (%s): give at most one IPv4 and one IPv6 address", cfg.Node, a)
		}
		has4, has6 = has4 || a.Is4(), has6 || a.Is6()
		addrs = append(addrs, a)
	}
	cfg.Addresses = addrs
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("cluster store: node TTL %v is shorter than etcd's lease granularity: give 1s or more", cfg.TTL)
	}
	cfg.defaults()
	tlsConfig := cfg.TLS
	if tlsConfig == nil && https {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// clientv3.New does not dial in the foreground (no grpc.WithBlock), so
	// this succeeds while etcd is down; each call then waits for a
	// connection until its context ends.
	client, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		TLS:       tlsConfig,
		// Ping an idle connection so a dead peer or a silent partition is
		// noticed; etcd refuses pings more often than every 5s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.Timeout,
		Logger:               zap.NewNop(),
		// gRPC's default reconnect backoff grows to 2 minutes, so after a
		// long outage this host would wait that long to notice etcd is
		// back. Retrying every few seconds at most costs nothing.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: cfg.Timeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster store %s: cannot create the etcd client: %v", strings.Join(cfg.Endpoints, ","), err)
	}
	observe(client, cfg.Calls)
	s := &Store{
		cfg:          cfg,
		client:       client,
		log:          cfg.Log.WithField("node", cfg.Node),
		endpointList: strings.Join(cfg.Endpoints, ","),
		defs:         map[string]Definition{},
		warned:       map[string]bool{},
		liveDone:     make(chan struct{}),
	}
	s.liveCtx, s.liveStop = context.WithCancel(context.Background())
	if cfg.Observer {
		close(s.liveDone)
	} else {
		go s.live()
	}
	return s, nil
}

// defaults fills in what cfg leaves out, but the TTL.
func (cfg *Config) defaults() {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Token == "" {
		cfg.Token = NewToken()
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.Out = io.Discard
		cfg.Log = l
	}
}

// Node is this host's node name.
func (s *Store) Node() string { return s.cfg.Node }

// Addresses returns this host's cluster addresses.
func (s *Store) Addresses() []netip.Addr { return slices.Clone(s.cfg.Addresses) }

// Close ends the liveness registration, revokes the node's lease (so other
// hosts see at once that this node stopped, rather than after its TTL) and
// closes the client. The node's blocks and claims stay: they are not on the
// lease. An error means the lease could not be revoked; it then expires by
// itself after the TTL.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.liveStop()
		<-s.liveDone
		s.leaseMu.Lock()
		id := s.lease
		s.lease = clientv3.NoLease
		s.leaseMu.Unlock()
		if id != clientv3.NoLease {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			_, err := s.client.Revoke(ctx, id)
			cancel()
			if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
				s.closeError = s.storeError(err, fmt.Sprintf("the lease of node %s cannot be revoked; other hosts see the node as alive until it expires in %v", s.cfg.Node, s.cfg.TTL))
				s.log.WithError(err).Warn("cannot revoke the node lease on close")
			} else {
				s.log.Info("node left the cluster store (lease revoked)")
			}
		}
		if err := s.client.Close(); err != nil && s.closeError == nil && !errors.Is(err, context.Canceled) {
			s.closeError = fmt.Errorf("cluster store %s: closing the client: %v", s.endpointList, err)
		}
	})
	return s.closeError
}

// withTimeout applies cfg.Timeout to ctx unless it has a deadline already.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// Keys.

func (s *Store) nodesPrefix() string           { return s.cfg.Prefix + "nodes/" }
func (s *Store) nodeKey(node string) string    { return s.nodesPrefix() + node }
func (s *Store) networksPrefix() string        { return s.cfg.Prefix + "networks/" }
func (s *Store) networkPrefix(n string) string { return s.networksPrefix() + n + "/" }
func (s *Store) defKey(n string) string        { return s.networkPrefix(n) + "definition" }
func (s *Store) blocksPrefix(n string) string  { return s.networkPrefix(n) + "blocks/" }
func (s *Store) claimsPrefix(n string) string  { return s.networkPrefix(n) + "claims/" }

func (s *Store) blockKey(n string, p netip.Prefix) string { return s.blocksPrefix(n) + BlockKey(p) }
func (s *Store) claimKey(n string, a netip.Addr) string   { return s.claimsPrefix(n) + AddrKey(a) }

// parseNetworkKey splits a key under networks/ into the network name, the
// kind ("definition", "blocks" or "claims") and the object key.
func (s *Store) parseNetworkKey(key string) (network, kind, object string, ok bool) {
	rest, ok := strings.CutPrefix(key, s.networksPrefix())
	if !ok {
		return "", "", "", false
	}
	network, rest, ok = strings.Cut(rest, "/")
	if !ok {
		return "", "", "", false
	}
	if rest == "definition" {
		return network, rest, "", true
	}
	kind, object, ok = strings.Cut(rest, "/")
	if !ok || (kind != "blocks" && kind != "claims") {
		return "", "", "", false
	}
	return network, kind, object, true
}

// validNode checks a node name: it is a key component and shows up in
// errors, so it is kept to a safe alphabet.
func validNode(n string) error {
	if n == "" || len(n) > 63 || !safeName(n) {
		return fmt.Errorf("node name %q: want 1 to 63 characters of A-Z, a-z, 0-9, '.', '_' and '-'", n)
	}
	return nil
}

// validNetwork checks a cluster network name, a key component too.
func validNetwork(n string) error {
	if n == "" || len(n) > 255 || !safeName(n) {
		return fmt.Errorf("cluster network name %q: want 1 to 255 characters of A-Z, a-z, 0-9, '.', '_' and '-'", n)
	}
	return nil
}

func safeName(n string) bool {
	if n == "." || n == ".." {
		return false
	}
	for _, c := range n {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// nodeRecord is the value of nodes/<node>.
type nodeRecord struct {
	Addresses []netip.Addr `json:"addresses"`
	Since     string       `json:"since"` // RFC 3339
	// Identity is identityOf the node's token.
	Identity string          `json:"identity,omitempty"`
	BGP      json.RawMessage `json:"bgp,omitempty"`
}

// Liveness.
//
// The node key lives on a lease that this goroutine keeps alive. Other
// hosts read "node key present" as "that host is alive"; Forget refuses to
// touch a node while its key exists. The loop keeps the lease alive with
// one KeepAliveOnce per TTL/3 rather than clientv3's KeepAlive stream, so
// that what counts as "lease lost" is decided here: only etcd saying the
// lease is gone (it expired during a partition or was revoked) starts a new
// registration; an unreachable store just means trying again, since the
// lease may well survive (etcd restores leases when it restarts).

func (s *Store) live() {
	defer close(s.liveDone)
	interval := max(s.cfg.TTL/3, 100*time.Millisecond)
	backoff := 250 * time.Millisecond
	maxBackoff := max(min(interval, 5*time.Second), backoff)
	failing := false // log a failing store once, not on every retry
	for {
		id, err := s.register()
		if err != nil {
			if s.liveCtx.Err() != nil {
				return
			}
			var taken *NameTakenError
			switch {
			case errors.As(err, &taken):
				s.setRefused(err)
				if !failing {
					s.log.WithError(err).Error("this host is refused in the cluster store")
					failing = true
				}
			case !failing:
				s.log.WithError(err).Warn("cannot register this node in the cluster store; retrying in the background")
				failing = true
			default:
				s.log.WithError(err).Debug("registration retry failed")
			}
			if !sleep(s.liveCtx, backoff) {
				return
			}
			backoff = min(backoff*2, maxBackoff)
			continue
		}
		failing = false
		backoff = 250 * time.Millisecond
		s.keepAlive(id, interval)
		if s.liveCtx.Err() != nil {
			return // Close revokes the lease
		}
		s.leaseMu.Lock()
		s.lease = clientv3.NoLease
		s.leaseMu.Unlock()
		s.log.Warn("the node lease was lost (expired during an outage or revoked); registering the node again")
	}
}

func (s *Store) setRefused(err error) {
	s.leaseMu.Lock()
	s.refused = err
	s.leaseMu.Unlock()
}

// register grants a lease and puts the node key on it.
func (s *Store) register() (clientv3.LeaseID, error) {
	ctx, cancel := context.WithTimeout(s.liveCtx, s.cfg.Timeout)
	defer cancel()
	ttl := int64((s.cfg.TTL + time.Second - 1) / time.Second)
	g, err := s.client.Grant(ctx, ttl)
	if err != nil {
		return 0, s.storeError(err, fmt.Sprintf("node %s cannot register", s.cfg.Node))
	}
	s.recordMu.Lock()
	s.since = time.Now().UTC().Format(time.RFC3339)
	s.recordMu.Unlock()
	if err := s.putNode(ctx, g.ID); err != nil {
		// Let the lease expire by itself if the revoke fails too.
		rctx, rcancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
		_, _ = s.client.Revoke(rctx, g.ID)
		rcancel()
		return 0, err
	}
	s.leaseMu.Lock()
	s.lease, s.refused = g.ID, nil
	s.leaseMu.Unlock()
	s.log.WithField("address", s.cfg.Addresses).Infof("node registered in the cluster store (lease %x, TTL %v)", int64(g.ID), s.cfg.TTL)
	return g.ID, nil
}

// record is this node's record as it writes it.
func (s *Store) record() string {
	s.recordMu.Lock()
	defer s.recordMu.Unlock()
	rec, _ := json.Marshal(nodeRecord{Addresses: s.cfg.Addresses, Since: s.since, Identity: identityOf(s.cfg.Token), BGP: s.bgp})
	return string(rec)
}

// putNode puts the node record on lease id, in a transaction that proves
// the node key is absent or carries this node's identity. Another live
// host's registration under this name gives a *NameTakenError. A record
// without an identity (written by hand, or by a version without
// identities) is not a claim on the name.
func (s *Store) putNode(ctx context.Context, id clientv3.LeaseID) error {
	key := s.nodeKey(s.cfg.Node)
	for attempt := 0; ; attempt++ {
		g, err := s.client.Get(ctx, key)
		if err != nil {
			return s.storeError(err, fmt.Sprintf("node %s cannot register", s.cfg.Node))
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
		if len(g.Kvs) > 0 {
			var rec nodeRecord
			if json.Unmarshal(g.Kvs[0].Value, &rec) == nil && rec.Identity != "" && rec.Identity != identityOf(s.cfg.Token) {
				return &NameTakenError{Node: s.cfg.Node, Theirs: rec.Addresses, Ours: s.cfg.Addresses, Since: rec.Since}
			}
			cmp = clientv3.Compare(clientv3.ModRevision(key), "=", g.Kvs[0].ModRevision)
		}
		resp, err := s.client.Txn(ctx).If(cmp).Then(clientv3.OpPut(key, s.record(), clientv3.WithLease(id))).Commit()
		if err != nil {
			return s.storeError(err, fmt.Sprintf("node %s cannot register", s.cfg.Node))
		}
		if resp.Succeeded {
			return nil
		}
		if attempt >= 4 {
			return fmt.Errorf("node %s cannot register: its node key keeps changing in the cluster store; is another host registering under this name?", s.cfg.Node)
		}
	}
}

// keepAlive renews lease id every interval until the lease is gone or the
// store is closing. After each renewal it checks that the node key is still
// there on this lease (someone may have deleted it) and puts it back if not.
func (s *Store) keepAlive(id clientv3.LeaseID, interval time.Duration) {
	for sleep(s.liveCtx, interval) {
		ctx, cancel := context.WithTimeout(s.liveCtx, s.cfg.Timeout)
		resp, err := s.client.KeepAliveOnce(ctx, id)
		if err == nil && resp.TTL > 0 {
			var g *clientv3.GetResponse
			g, err = s.client.Get(ctx, s.nodeKey(s.cfg.Node))
			if err == nil && (len(g.Kvs) == 0 || clientv3.LeaseID(g.Kvs[0].Lease) != id) {
				s.log.Warn("the node key was missing from the cluster store, or replaced; putting it back")
				err = s.putNode(ctx, id)
			}
		}
		cancel()
		var taken *NameTakenError
		switch {
		case err == nil && resp.TTL > 0:
			continue
		case errors.As(err, &taken):
			// Another host took the name meanwhile: this one leaves.
			rctx, rcancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
			_, _ = s.client.Revoke(rctx, id)
			rcancel()
			return
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0):
			return
		case s.liveCtx.Err() != nil:
			return
		default:
			s.log.WithError(err).Debug("node lease renewal failed; retrying")
		}
	}
}

// registered waits until this node is registered and returns its lease:
// every lease and claim depends on it. It fails with the refusal when the
// node name is another host's, and as unreachable when ctx ends first.
func (s *Store) registered(ctx context.Context, effect string) (clientv3.LeaseID, error) {
	if s.cfg.Observer {
		return 0, fmt.Errorf("%s: this tool is no node of the cluster", effect)
	}
	for {
		s.leaseMu.Lock()
		id, refused := s.lease, s.refused
		s.leaseMu.Unlock()
		switch {
		case id != clientv3.NoLease:
			return id, nil
		case refused != nil:
			return 0, fmt.Errorf("%s: %w", effect, refused)
		}
		if !sleep(ctx, 50*time.Millisecond) {
			return 0, s.storeError(fmt.Errorf("node %s is not registered in the cluster store yet: %w", s.cfg.Node, context.DeadlineExceeded), effect)
		}
	}
}

// reregistered is what a write does when its transaction found the node
// key off this node's lease (the lease expired, or the key was deleted):
// it waits a moment for the registration to be made again and returns
// the lease then, giving up after a few times (*count of them).
func (s *Store) reregistered(ctx context.Context, count *int, effect string) (clientv3.LeaseID, error) {
	if *count++; *count > 20 || !sleep(ctx, 100*time.Millisecond) {
		return 0, fmt.Errorf("%s: this node's registration in the cluster store was lost (its lease expired or was revoked) and is not back yet; it registers again by itself: try again", effect)
	}
	return s.registered(ctx, effect)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// SetBGPStatus puts the host's BGP status (JSON, package bgp's Status) in
// its node record, for `dualstack cluster status` on any host; it is
// written again with every registration.
func (s *Store) SetBGPStatus(status json.RawMessage) {
	s.recordMu.Lock()
	s.bgp = status
	s.recordMu.Unlock()
	s.leaseMu.Lock()
	id := s.lease
	s.leaseMu.Unlock()
	if id == clientv3.NoLease {
		return
	}
	ctx, cancel := context.WithTimeout(s.liveCtx, s.cfg.Timeout)
	defer cancel()
	key := s.nodeKey(s.cfg.Node)
	_, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).
		Then(clientv3.OpPut(key, s.record(), clientv3.WithLease(id))).
		Commit()
	if err != nil {
		s.log.WithError(err).Debug("BGP status not recorded in the cluster store; it is with the next registration")
	}
}
