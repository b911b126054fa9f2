// Package lifecycle starts and stops the plugin's loops once its parts
// are built: first what a start owes (the joins a restart interrupted,
// the allocations and default pools nobody claims), then the followers
// that run until the plugin stops: the firewall follower, the BGP
// follower and the announcement of new blocks, and with a cluster store
// the watch of the other hosts' blocks and the rejoin (the host's
// definitions and blocks, and what the store did not take back).
package lifecycle

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver"
)

// Config is what the loops work on.
type Config struct {
	Driver *driver.Driver
	Book   *addrbook.Book
	// Store is the cluster store; nil: this host is in no cluster.
	Store *cluster.Store
	// Speaker is the BGP speaker; nil: BGP does not run.
	Speaker *bgp.Speaker
	// Import routes what the speaker learns (BGP_IMPORT_ROUTES).
	Import bool
	// Log gets the loops' lines, with the field driver=cluster or bgp.
	Log logrus.FieldLogger
}

// Loops are the loops Start started.
type Loops struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	log    logrus.FieldLogger
}

// Start does what the plugin owes at start, then starts the loops; they
// run until ctx ends or Stop. The speaker stops as soon as they end: the
// routers drop the host's routes at once, not after the requests under
// way.
func Start(ctx context.Context, c Config) *Loops {
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
	d := c.Driver
	d.ResumeJoins()
	c.Book.CollectStale(addrbook.StaleGrace)
	c.Book.CollectEmptyDefaultPools(addrbook.StaleGrace)
	ctx, cancel := context.WithCancel(ctx)
	l := &Loops{cancel: cancel, log: c.Log}
	// dualstack's rules follow the host's as they change (Docker's
	// networks, dockerd restarting, another manager).
	l.run(func() { d.FollowFirewall(ctx) })
	// A block leased is announced at once (BGP).
	l.run(func() { announceBlocks(ctx, c) })
	followBGP(ctx, l, c, c.Log.WithField("driver", "bgp"))
	if c.Store != nil {
		log := c.Log.WithField("driver", "cluster")
		l.run(func() { watchClusterRoutes(ctx, c.Store, d, c.Book, log) })
		l.run(func() { rejoinCluster(ctx, d, c.Book, log) })
	}
	return l
}

// run runs loop on a goroutine of its own.
func (l *Loops) run(loop func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		loop()
	}()
}

// stopWait bounds how long Stop waits for the loops: one may be inside a
// call to the cluster store that has not timed out yet.
const stopWait = 2 * time.Second

// Stop ends the loops and waits for them, stopWait at most.
func (l *Loops) Stop() {
	l.cancel()
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopWait):
		l.log.Debug("a loop is still ending (a call to the cluster store under way); not waiting for it")
	}
}
