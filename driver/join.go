package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/driver/netapi"
	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/state"
)

// Join answers with the interface to move into the container and the
// gateways, and arranges the container-side work (see joins).
func (d *Driver) Join(req *api.JoinRequest) (*api.JoinResponse, error) {
	resp, err := d.JoinFrom(0, req)
	if err != nil {
		return nil, err
	}
	return resp.Helpers(), nil
}

// JoinFrom is Join from the process pid (dockerd, as the plugin's socket
// tells it; 0 when not known), in whose mount namespace the SandboxKey is.
// A join that fails is reported to Config.JoinFailed with its cause.
func (d *Driver) JoinFrom(pid int, req *api.JoinRequest) (*netapi.JoinResponse, error) {
	resp, err := d.joinFrom(pid, req)
	d.joinFailure(err)
	return resp, err
}

func (d *Driver) joinFrom(pid int, req *api.JoinRequest) (*netapi.JoinResponse, error) {
	ns, err := d.sandboxes.Resolve(req.SandboxKey, pid)
	if err != nil {
		return nil, joinFailed(CauseSandbox, fmt.Errorf("endpoint %s: %w", short(req.EndpointID), err))
	}
	d.mu.Lock()
	ep, ok := d.endpoints[req.EndpointID]
	var n *network
	if ok {
		n = d.networks[ep.NetworkID]
	}
	if !ok || n == nil {
		d.mu.Unlock()
		return nil, joinFailed(CauseState, fmt.Errorf("endpoint %s is unknown to the plugin: remove and recreate the container's connection", short(req.EndpointID)))
	}
	if err = checkIfnameFree(ns.Path, ep); err != nil {
		d.mu.Unlock()
		return nil, err
	}
	// A routed cluster network's bridge gets the gateways of blocks leased
	// since: the container's default routes go through them.
	err = joinFailed(CauseAddress, d.syncBlockGateways(n))
	blockGateways := n.blockGateways
	if err == nil {
		err = joinFailed(CauseState, d.recordJoin(ep, req.SandboxKey))
	}
	if err == nil {
		if err = joinFailed(CauseAddress, d.answer(n, ep)); err != nil {
			_ = d.recordLeave(ep)
		}
	}
	d.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := d.joins.start(d.log, ns, n, ep); err != nil {
		d.mu.Lock()
		_ = d.silence(n, ep)
		_ = d.recordLeave(ep)
		d.mu.Unlock()
		return nil, err
	}
	resp := &netapi.JoinResponse{InterfaceName: netapi.InterfaceName{SrcName: ep.PeerVeth, DstPrefix: "eth", DstName: ep.Ifname}}
	if d.routed(n) {
		// The container's default routes go through its blocks' gateways.
		if gw, ok := blockGateway(blockGateways, ep.IPv4.Addr()); ok && ep.IPv4.IsValid() {
			resp.Gateway = gw.String()
		}
		if gw, ok := blockGateway(blockGateways, ep.IPv6.Addr()); ok && ep.IPv6.IsValid() {
			resp.GatewayIPv6 = gw.String()
		}
		return resp, nil
	}
	if !n.Options.Internal {
		if len(n.V4) > 0 && n.V4[0].Gateway.IsValid() && ep.IPv4.IsValid() {
			resp.Gateway = n.V4[0].Gateway.Addr().String()
		}
		for _, p := range n.V6 {
			if ep.IPv6.IsValid() && p.Prefix.Contains(ep.IPv6.Addr()) && p.Gateway.IsValid() {
				resp.GatewayIPv6 = p.Gateway.Addr().String()
			}
		}
		if resp.GatewayIPv6 == "" && ep.IPv6.IsValid() {
			resp.GatewayIPv6 = d.learnedGateway(n)
		}
	}
	return resp, nil
}

// recordJoin records that ep joined the container of sandbox, so that a
// restarted plugin can finish the container side of the join. The ports
// wait for ProgramExternalConnectivity: Docker sends it only to the
// container's gateway endpoint (see ports.go). A retried Join of the same
// container changes nothing.
func (d *Driver) recordJoin(ep *endpoint, sandbox string) error {
	if ep.Sandbox == sandbox {
		return nil
	}
	// Joined to another container without a Leave: what it published
	// there is not this container's.
	if err := d.unpublish(ep); err != nil {
		return joinFailed(CauseFirewall, err)
	}
	ep.Sandbox = sandbox
	return save(d.cfg.DB, "endpoint "+ep.ID, func(tx state.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) })
}

// recordLeave revokes ep's ports and records that it left its container.
func (d *Driver) recordLeave(ep *endpoint) error {
	if len(ep.Published) == 0 {
		// Docker deletes the endpoint right after: that commit forgets
		// the sandbox too. (A crash between the two leaves a join to
		// resume whose container never comes back: its wait times out.)
		ep.Sandbox = ""
		return nil
	}
	if err := d.unpublish(ep); err != nil {
		return err
	}
	ep.Sandbox = ""
	return save(d.cfg.DB, "endpoint "+ep.ID, func(tx state.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) })
}

func publishedString(ports []firewall.Port) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// Leave stops the container-side work of a join that has not finished and
// revokes the ports the endpoint published.
func (d *Driver) Leave(req *api.LeaveRequest) error {
	d.joins.cancel(req.EndpointID)
	d.mu.Lock()
	defer d.mu.Unlock()
	if ep, ok := d.endpoints[req.EndpointID]; ok {
		if err := d.silence(d.networks[ep.NetworkID], ep); err != nil {
			return err
		}
		return d.recordLeave(ep)
	}
	return nil
}

// ProgramExternalConnectivity is the first call Docker makes after it moved
// the gateway endpoint's interface into the container, and it makes it
// before the container's process starts: it returns once the container
// side of every pending join of that container is complete. Docker sends
// it to the endpoint that becomes the container's gateway (in either
// family; gw_priority picks it), so the endpoint's ports are published
// then. A retried call changes nothing.
func (d *Driver) ProgramExternalConnectivity(req *api.ProgramExternalConnectivityRequest) error {
	if err := d.joins.wait(req.EndpointID); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[req.EndpointID]
	if !ok || ep.Sandbox == "" {
		return nil
	}
	return d.publishGateway(ep, req.Options)
}

// RevokeExternalConnectivity unpublishes the ports of an endpoint that
// stopped being its container's gateway (another network took over, by
// gw_priority or because it joined first). The container stays joined.
func (d *Driver) RevokeExternalConnectivity(req *api.RevokeExternalConnectivityRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[req.EndpointID]
	if !ok || len(ep.Published) == 0 {
		return nil
	}
	ports := publishedString(ep.Published)
	if err := d.unpublish(ep); err != nil {
		return fmt.Errorf("endpoint %s: revoke its published ports: %w", short(ep.ID), err)
	}
	if err := save(d.cfg.DB, "endpoint "+ep.ID, func(tx state.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) }); err != nil {
		return err
	}
	d.log.WithField("endpoint", short(ep.ID)).WithField("ports", ports).Info("ports revoked: the container's gateway is another endpoint")
	return nil
}

// JoinsSettled waits until every join under way, those ResumeJoins
// resumed among them, has finished, and returns the first error one met
// (a join that Leave or Close cancelled met none). A benchmark of the
// plugin's start waits with it for the background work of ResumeJoins.
func (d *Driver) JoinsSettled() error {
	return d.joins.settled()
}

// joinTimeout bounds how long a join waits for Docker to move the interface
// into the container.
const joinTimeout = 2 * time.Minute

// configureTries bounds the attempts to configure the container's interface.
const configureTries = 20

// resumeWorkers bounds how many resumed joins (see resume) work in
// container namespaces at once: a plugin restarted with hundreds of joined
// endpoints checks them all in the background, and requests go first.
const resumeWorkers = 2

// resumeInterfaceWait is how long a resumed join waits for its interface
// while it holds one of the resumeWorkers tokens (see waitResumed).
const resumeInterfaceWait = time.Second

// reachGrace is how long a join waits for its container's namespace before
// it says, at error level, that the namespace is not there and why that may
// be: Engine 20.10 mounts it while the container starts, within a second
// even on a busy host, and a namespace the plugin cannot reach never comes.
const reachGrace = 3 * time.Second

// connectivityWait bounds ProgramExternalConnectivity's wait for the
// container side of the joins: the container's process starts only after
// it, and a start must never hang on the plugin.
const connectivityWait = 5 * time.Second

// joins runs the container side of each join.
//
// Docker moves the interface into the container only after Join returns,
// and addresses put on it before the move are lost in it. So the namespace
// defaults (no duplicate address detection, accept_ra) are set before the
// move, and a watcher adds the extra addresses the moment the interface
// arrives (it subscribes to the namespace's links, then lists them, so it
// cannot miss the arrival).
//
// Current engines create the container's namespace before they join it to
// networks, and call ProgramExternalConnectivity after the move and before
// the container's process starts: Join sets the defaults at once, and that
// call waits for the watchers of the container (at most connectivityWait),
// so the process never starts before its addresses exist. Engine 20.10
// creates the namespace only when the container is being started (runc's
// prestart hook) and calls no plugin between the move and the start: there
// the watcher waits for the namespace's mount (woken by the mount itself,
// see sandboxkey.Namespace.Wait), sets the defaults and configures the
// interface as soon as it arrives, racing the hook's remaining work.
type joins struct {
	mu      sync.Mutex
	pending map[string]*pendingJoin // by endpoint ID
	// configure is sandbox.ConfigureInterface; tests slow it down.
	configure configureFunc
	// resuming holds a token per resumed join at work (resumeWorkers).
	resuming chan struct{}
	// grace and connectivity are reachGrace and connectivityWait; tests
	// shorten them.
	grace, connectivity time.Duration
	// configured, when set, finishes the container side of an endpoint
	// (by ID) once its interface is configured: the global addresses of
	// delegated_prefix networks (Driver.joinGlobals).
	configured func(id string) error
	// failed, when set, hears of a container side that failed, with
	// its cause (Config.JoinFailed).
	failed func(JoinCause)
}

// configureFunc configures the container's interface (see
// sandbox.ConfigureInterface).
type configureFunc func(nsPath string, m sandbox.InterfaceMatch, addrs []netip.Prefix, ra sandbox.RA) error

type pendingJoin struct {
	// sandbox is the container's SandboxKey: joins with the same key are
	// the same container's.
	sandbox string
	// early: the namespace existed at Join, so the move happens before
	// ProgramExternalConnectivity, which may wait for this join.
	early  bool
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
	// stage says what the watcher waits for, for a wait that times out;
	// cause is the JoinCause of a failure there.
	stage, cause atomic.Value
}

func newJoins() *joins {
	return &joins{
		pending:      map[string]*pendingJoin{},
		configure:    sandbox.ConfigureInterface,
		resuming:     make(chan struct{}, resumeWorkers),
		grace:        reachGrace,
		connectivity: connectivityWait,
	}
}

// start prepares the namespace ns and starts the watcher for ep.
func (j *joins) start(log logrus.FieldLogger, ns sandboxkey.Namespace, n *network, ep *endpoint) error {
	return j.watch(log, ns, n, ep, true)
}

// resume starts the watcher for a join a previous plugin process left
// undone. Docker has moved the interface already (or moves it into a
// namespace still to come), so the namespace's defaults need not be set
// before returning: everything happens in the watcher, at most
// resumeWorkers at a time, and a plugin start with many joined endpoints
// waits for none of them.
func (j *joins) resume(log logrus.FieldLogger, ns sandboxkey.Namespace, n *network, ep *endpoint) error {
	return j.watch(log, ns, n, ep, false)
}

// watch starts the watcher for ep; atJoin prepares an existing namespace
// before it returns, as Join needs (see start).
func (j *joins) watch(log logrus.FieldLogger, ns sandboxkey.Namespace, n *network, ep *endpoint, atJoin bool) error {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return joinFailed(CauseLink, fmt.Errorf("endpoint %s has a bad MAC address %q", short(ep.ID), ep.MAC))
	}
	nsPath := ns.Path
	early := atJoin && netns.Check(nsPath) == nil
	if early {
		if err := sandbox.PrepareNamespace(nsPath, n.Options.ra()); err != nil {
			return joinFailed(CauseSandbox, fmt.Errorf("prepare the container's network namespace: %w", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	p := &pendingJoin{sandbox: ns.Key, early: early, cancel: cancel, done: make(chan struct{})}
	p.stage.Store("waiting for the container's network namespace")
	p.cause.Store(CauseSandbox)
	j.mu.Lock()
	if old := j.pending[ep.ID]; old != nil {
		old.cancel()
	}
	j.pending[ep.ID] = p
	j.mu.Unlock()

	match := sandbox.InterfaceMatch{MAC: mac}
	var extra = make([]netip.Prefix, 0, len(ep.Extra))
	for _, x := range ep.Extra {
		extra = append(extra, x.Addr)
	}
	log = log.WithField("endpoint", short(ep.ID))
	go func() {
		defer cancel()
		start := time.Now()
		var err error
		tok := &token{j: j}
		defer tok.release()
		if !atJoin {
			err = resumeNamespace(ctx, tok, ns)
		} else if !early {
			err = j.awaitNamespace(ctx, log, ns)
		}
		if err == nil && !early {
			err = sandbox.PrepareNamespace(nsPath, n.Options.ra())
		}
		var link netlink.Link
		if err == nil {
			p.stage.Store("waiting for the interface to arrive in the container")
			p.cause.Store(CauseLink)
			if atJoin {
				link, err = sandbox.WaitInterface(ctx, nsPath, match)
			} else {
				link, err = waitResumed(ctx, tok, nsPath, match)
			}
		}
		if err == nil && (len(extra) > 0 || n.changingPrefix()) {
			err = enableIPv6(nsPath, link.Attrs().Index)
		}
		if err == nil {
			p.stage.Store("configuring the container's interface")
			p.cause.Store(CauseAddress)
			err = j.configureIn(ctx, ep.ID, nsPath, match, extra, n.Options.ra())
		}
		p.err = err
		close(p.done)
		switch {
		case err == nil:
			log.WithField("took", time.Since(start)).Debug("container interface configured")
			j.forget(ep.ID, p)
		case errors.Is(err, context.Canceled):
			j.forget(ep.ID, p)
		default:
			log.WithError(err).WithField("sandbox", ns.Key).Error("configure the container's interface")
			if j.failed != nil {
				j.failed(p.cause.Load().(JoinCause))
			}
		}
	}()
	return nil
}

// configureIn configures the interface match describes in the namespace
// at nsPath, then finishes endpoint id's container side (configured).
// Docker renames the interface while it configures it; a step that named
// it just before the rename fails and is tried again (the interface is
// found by MAC each time).
func (j *joins) configureIn(ctx context.Context, id, nsPath string, match sandbox.InterfaceMatch, extra []netip.Prefix, ra sandbox.RA) error {
	var err error
	for try := 0; try < configureTries; try++ {
		if err = j.configure(nsPath, match, extra, ra); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err == nil && j.configured != nil {
		err = j.configured(id)
	}
	return err
}

// awaitNamespace waits for a joining container's namespace (Engine 20.10
// mounts it while the container starts). One that is not there after
// j.grace is reported at error level with what may keep it away, and
// waited for on until ctx ends.
func (j *joins) awaitNamespace(ctx context.Context, log logrus.FieldLogger, ns sandboxkey.Namespace) error {
	brief, stop := context.WithTimeout(ctx, j.grace)
	err := ns.Wait(brief)
	stop()
	if err == nil || ctx.Err() != nil {
		return err
	}
	log.WithField("sandbox", ns.Key).Errorf("the container's network namespace is not there %s after Join: %s", j.grace, ns.Hint())
	start := time.Now()
	if err := ns.Wait(ctx); err != nil {
		return err
	}
	log.WithField("sandbox", ns.Key).Warnf("the container's network namespace appeared %s after Join", (j.grace + time.Since(start)).Round(time.Millisecond))
	return nil
}

// enableIPv6 turns IPv6 on for the interface with index idx in the
// namespace at nsPath. Docker disables IPv6 in a container's namespace by
// default and enables it per interface just before it adds its own IPv6
// address; the extra addresses may come first. Docker may rename the
// interface meanwhile, so its name is looked up by index at each try.
func enableIPv6(nsPath string, idx int) error {
	return netns.Do(nsPath, func() error {
		var err error
		for try := 0; try < 50; try++ {
			var l netlink.Link
			if l, err = netlink.LinkByIndex(idx); err != nil {
				return fmt.Errorf("interface %d: %w", idx, err)
			}
			if err = sysctl.Set("net/ipv6/conf/"+l.Attrs().Name+"/disable_ipv6", "0"); err == nil {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		return fmt.Errorf("enable IPv6 on the container's interface: %w", err)
	})
}

// token is one of the resumed joins' resumeWorkers slots, held or not.
type token struct {
	j    *joins
	held bool
}

func (t *token) acquire(ctx context.Context) error {
	if t.held {
		return nil
	}
	select {
	case t.j.resuming <- struct{}{}:
		t.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (t *token) release() {
	if t.held {
		<-t.j.resuming
		t.held = false
	}
}

// waitResumed waits for a resumed join's interface, holding tok. The
// interface is usually there already; one that is not (an Engine 20.10
// container still starting, or one that left the network while the plugin
// was down) is waited for without the token, so that it does not hold up
// the other containers' checks, and the token is taken again when it comes.
func waitResumed(ctx context.Context, tok *token, nsPath string, match sandbox.InterfaceMatch) (netlink.Link, error) {
	brief, stop := context.WithTimeout(ctx, resumeInterfaceWait)
	link, err := sandbox.WaitInterface(brief, nsPath, match)
	stop()
	if err == nil || ctx.Err() != nil {
		return link, err
	}
	tok.release()
	if link, err = sandbox.WaitInterface(ctx, nsPath, match); err != nil {
		return nil, err
	}
	return link, tok.acquire(ctx)
}

// resumeNamespace takes tok, then waits for a resumed join's namespace
// without it if it is not there yet, and takes it again when it comes.
// Taking the token first keeps a start with hundreds of resumed joins from
// checking every namespace at once while the plugin gets ready to serve.
func resumeNamespace(ctx context.Context, tok *token, ns sandboxkey.Namespace) error {
	if err := tok.acquire(ctx); err != nil || netns.Check(ns.Path) == nil {
		return err
	}
	tok.release()
	if err := ns.Wait(ctx); err != nil {
		return err
	}
	return tok.acquire(ctx)
}

// forget drops p if it is still ep's pending join.
func (j *joins) forget(epID string, p *pendingJoin) {
	j.mu.Lock()
	if j.pending[epID] == p {
		delete(j.pending, epID)
	}
	j.mu.Unlock()
}

// cancelAll stops every watcher: the plugin is stopping, and the next
// start resumes the joins it left undone.
func (j *joins) cancelAll() {
	j.mu.Lock()
	pending := j.pending
	j.pending = map[string]*pendingJoin{}
	j.mu.Unlock()
	for _, p := range pending {
		p.cancel()
	}
}

// cancel stops ep's watcher, if any.
func (j *joins) cancel(epID string) {
	j.mu.Lock()
	p := j.pending[epID]
	delete(j.pending, epID)
	j.mu.Unlock()
	if p != nil {
		p.cancel()
	}
}

// settled waits for every pending join, those that start meanwhile too,
// and returns the first error one of them ended with.
func (j *joins) settled() error {
	var first error
	seen := map[*pendingJoin]bool{}
	for {
		j.mu.Lock()
		waiting := map[string]*pendingJoin{}
		for id, p := range j.pending {
			if !seen[p] {
				seen[p] = true
				waiting[id] = p
			}
		}
		j.mu.Unlock()
		if len(waiting) == 0 {
			return first
		}
		for id, p := range waiting {
			<-p.done
			if first == nil && p.err != nil && !errors.Is(p.err, context.Canceled) {
				first = fmt.Errorf("endpoint %s: configure the container's interface in %s: %w", short(id), p.sandbox, p.err)
			}
		}
	}
}

// wait returns when every pending join in the container of endpoint epID is
// complete, with the first error, or with an error once j.connectivity has
// passed: the container would start without its addresses.
func (j *joins) wait(epID string) error {
	j.mu.Lock()
	p := j.pending[epID]
	var same []*pendingJoin
	if p != nil {
		for _, q := range j.pending {
			if q.sandbox == p.sandbox && q.early {
				same = append(same, q)
			}
		}
	}
	j.mu.Unlock()
	deadline := time.NewTimer(j.connectivity)
	defer deadline.Stop()
	for _, q := range same {
		select {
		case <-q.done:
		case <-deadline.C:
			return fmt.Errorf("the container side of the join is not done after %s (still %s in %s), "+
				"so the container would start without its addresses: see the plugin's log", j.connectivity, q.stage.Load(), q.sandbox)
		}
		if q.err != nil && !errors.Is(q.err, context.Canceled) {
			return fmt.Errorf("configure the container's interface: %w", q.err)
		}
	}
	return nil
}
