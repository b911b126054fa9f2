package delegation

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/sirupsen/logrus"
)

// client is the state machine of one uplink, run by one goroutine.
type client struct {
	uplink  string
	cfg     *Config
	t       Timing
	log     logrus.FieldLogger
	conn    *net.UDPConn
	duid    dhcpv6.DUID
	rx      chan *dhcpv6.Message
	stop    chan struct{} // closed by Close: stop without Release
	release chan struct{} // closed by the last Drop: Release, then stop
	done    chan struct{} // closed when the goroutine ends
	holders map[string]bool

	mu    sync.Mutex
	lease Lease // written by the goroutine only (and newClient)

	renewNow  bool // a restored lease: Renew at once, whatever T1
	releasing bool // the release channel is no more a reason to stop
	// withdrawn is the prefix a server withdrew (NoBinding) while the
	// client solicits another: the next one bound is a change from it.
	withdrawn *netip.Prefix
}

var (
	errStop     = errors.New("stopped")
	errRelease  = errors.New("released")
	errTimeout  = errors.New("timeout")
	errNoAnswer = errors.New("no answer")
)

// newClient restores uplink's record (or creates our DUID and IAID) and
// opens the socket, in the calling thread's namespace.
func newClient(cfg *Config, uplink string) (*client, error) {
	l, found, err := loadRecord(cfg.DB, uplink)
	if err != nil {
		return nil, err
	}
	if !found || l.DUID == "" {
		if l.DUID, l.IAID, err = newIdentity(uplink); err != nil {
			return nil, err
		}
	}
	duid, err := parseDUID(l.DUID)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: the recorded DUID %q is not one: %w (delete key %q of bucket %q in the state file)",
			uplink, l.DUID, err, uplink, bucket[0])
	}
	conn, err := listen(uplink)
	if err != nil {
		return nil, err
	}
	c := &client{uplink: uplink, cfg: cfg, t: cfg.Timing, log: cfg.Log.WithField("uplink", uplink),
		conn: conn, duid: duid, rx: make(chan *dhcpv6.Message, 16), stop: make(chan struct{}),
		release: make(chan struct{}), done: make(chan struct{}), holders: map[string]bool{}}
	c.lease = c.restore(l, time.Now())
	if err := saveRecord(cfg.DB, c.lease); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// restore returns the lease to start from, given the record l: a Current
// still valid is held, renewing at once; one no longer valid is gone.
func (c *client) restore(l Lease, now time.Time) Lease {
	l.Uplink = c.uplink
	l = expireStale(l, now)
	if l.Current != nil && now.Before(l.Current.Valid) {
		l.State = StateRenewing
		c.renewNow = true
		c.log.WithFields(logrus.Fields{"prefix": l.Current.Prefix, "valid": stamp(l.Current.Valid)}).
			Info("delegated prefix restored from the state file, renewing")
		return l
	}
	l.Current, l.Renew, l.Rebind, l.Server = nil, time.Time{}, time.Time{}, ""
	l.State = StateSoliciting
	return l
}

// snapshot returns a copy of what the client holds.
func (c *client) snapshot() Lease {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lease.clone()
}

// commit makes next what the client holds: recorded, then told to
// OnChange. Nothing happens if nothing changed.
func (c *client) commit(next Lease) {
	c.mu.Lock()
	same := reflect.DeepEqual(c.lease, next)
	if !same {
		c.lease = next.clone()
	}
	c.mu.Unlock()
	if same {
		return
	}
	if err := saveRecord(c.cfg.DB, next); err != nil {
		c.log.WithError(err).Warn("delegated prefix not recorded: a restarted plugin would solicit anew")
	}
	c.cfg.OnChange(next.clone())
}

// update commits what fn makes of the lease held.
func (c *client) update(fn func(*Lease)) {
	l := c.snapshot()
	fn(&l)
	c.commit(l)
}

func (c *client) setState(s string) { c.update(func(l *Lease) { l.State = s }) }

func (c *client) setError(s string) { c.update(func(l *Lease) { l.Error = s }) }

// run is the client's goroutine: it runs the state machine until Close
// (stop) or the last Drop (release).
func (c *client) run() {
	defer close(c.done)
	rxDone := make(chan struct{})
	defer close(rxDone)
	go receive(c.conn, c.rx, rxDone)
	defer c.conn.Close()

	err := c.loop()
	if errors.Is(err, errRelease) {
		c.sendRelease()
		if err := forgetRecord(c.cfg.DB, c.uplink); err != nil {
			c.log.WithError(err).Warn("delegated prefix record not removed: a restarted plugin would renew it")
		}
	}
}

// loop runs steps until one fails (stop, release).
func (c *client) loop() error {
	if c.snapshot().Current == nil {
		delay := time.Duration(rand.Int64N(int64(c.t.SolMaxDelay) + 1))
		if _, err := c.await(time.Now().Add(delay), nil); !errors.Is(err, errTimeout) {
			return err
		}
	}
	for {
		if err := c.step(); err != nil {
			return err
		}
	}
}

// step does what the lease held calls for now: acquire a prefix, wait
// for T1, Renew until T2, Rebind until the end of the valid lifetime, or
// lose it.
func (c *client) step() error {
	l := c.snapshot()
	now := time.Now()
	switch {
	case l.Current == nil:
		return c.acquire(l)
	case !now.Before(l.Current.Valid):
		c.lose(l)
		return nil
	case !now.Before(l.Rebind):
		return c.extend(l, dhcpv6.MessageTypeRebind, l.Current.Valid)
	case c.renewNow || !now.Before(l.Renew):
		c.renewNow = false
		return c.extend(l, dhcpv6.MessageTypeRenew, l.Rebind)
	}
	c.setState(StateBound)
	_, err := c.await(l.Renew, nil)
	if errors.Is(err, errTimeout) {
		return nil
	}
	return err
}

// await waits until until for a message that accept takes (none if
// accept is nil), dropping Stale prefixes as their Valid passes. It fails
// with errTimeout at until, errStop or errRelease.
func (c *client) await(until time.Time, accept func(*dhcpv6.Message) bool) (*dhcpv6.Message, error) {
	release := c.release
	if c.releasing {
		release = nil
	}
	for {
		now := time.Now()
		l := c.snapshot()
		if e := nextExpiry(l); !e.IsZero() && !now.Before(e) {
			c.commit(expireStale(l, now))
			continue
		}
		if !now.Before(until) {
			return nil, errTimeout
		}
		wake := until
		if e := nextExpiry(l); !e.IsZero() && e.Before(wake) {
			wake = e
		}
		timer := time.NewTimer(wake.Sub(now))
		select {
		case m := <-c.rx:
			timer.Stop()
			c.log.WithFields(logrus.Fields{"type": m.MessageType, "xid": m.TransactionID}).Debug("DHCPv6 message received")
			if accept != nil && accept(m) {
				return m, nil
			}
		case <-timer.C:
		case <-c.stop:
			timer.Stop()
			return nil, errStop
		case <-release:
			timer.Stop()
			return nil, errRelease
		}
	}
}
