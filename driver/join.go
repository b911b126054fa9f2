package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver/sandbox"
)

// joinTimeout bounds how long a join waits for Docker to move the interface
// into the container.
const joinTimeout = 2 * time.Minute

// joins runs the container side of each join.
//
// Docker moves the interface into the container only after Join returns,
// and addresses put on it before the move are lost in it. So Join sets the
// namespace defaults (no duplicate address detection, accept_ra) before the
// move, and a watcher, subscribed to the namespace's links before Join
// returns, adds the extra addresses the moment the interface arrives.
// ProgramExternalConnectivity, which Docker calls after the move and before
// the container's process starts, waits for the watchers of that container:
// the process never starts before its addresses exist.
type joins struct {
	mu      sync.Mutex
	pending map[string]*pendingJoin // by endpoint ID
	// configure is sandbox.ConfigureInterface; tests slow it down.
	configure func(nsPath string, m sandbox.InterfaceMatch, addrs []netip.Prefix, acceptRA int) error
}

type pendingJoin struct {
	sandbox string
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // set before done is closed
}

func newJoins() *joins {
	return &joins{pending: map[string]*pendingJoin{}, configure: sandbox.ConfigureInterface}
}

// start prepares the namespace at nsPath and starts the watcher for ep.
func (j *joins) start(log logrus.FieldLogger, nsPath string, n *network, ep *endpoint) error {
	mac, err := net.ParseMAC(ep.MAC)
	if err != nil {
		return fmt.Errorf("dualstack: endpoint %s has a bad MAC address %q", short(ep.ID), ep.MAC)
	}
	if err := sandbox.PrepareNamespace(nsPath, n.Options.AcceptRA); err != nil {
		return fmt.Errorf("dualstack: prepare the container's network namespace: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	p := &pendingJoin{sandbox: nsPath, cancel: cancel, done: make(chan struct{})}
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
		_, err := sandbox.WaitInterface(ctx, nsPath, match)
		if err == nil {
			err = j.configure(nsPath, match, extra, n.Options.AcceptRA)
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
			log.Errorf("configure the container's interface: %v", err)
		}
	}()
	return nil
}

// forget drops p if it is still ep's pending join.
func (j *joins) forget(epID string, p *pendingJoin) {
	j.mu.Lock()
	if j.pending[epID] == p {
		delete(j.pending, epID)
	}
	j.mu.Unlock()
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

// wait returns when every pending join in the container of endpoint epID is
// complete, with the first error.
func (j *joins) wait(epID string) error {
	j.mu.Lock()
	p := j.pending[epID]
	var same []*pendingJoin
	if p != nil {
		for _, q := range j.pending {
			if q.sandbox == p.sandbox {
				same = append(same, q)
			}
		}
	}
	j.mu.Unlock()
	for _, q := range same {
		<-q.done // the watcher's own timeout bounds this
		if q.err != nil && !errors.Is(q.err, context.Canceled) {
			return fmt.Errorf("dualstack: configure the container's interface: %w", q.err)
		}
	}
	return nil
}
