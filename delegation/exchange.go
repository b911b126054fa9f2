package delegation

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/sirupsen/logrus"
)

// xfer is one message to send with its retransmission parameters (RFC
// 8415 section 15).
type xfer struct {
	msg      *dhcpv6.Message
	irt, mrt time.Duration
	mrc      int       // 0: no limit
	until    time.Time // end of the MRD; zero: none
	answer   dhcpv6.MessageType
}

// name is the message type as RFC 8415 writes it: Solicit, Renew.
func name(t dhcpv6.MessageType) string {
	s := strings.ToLower(t.String())
	return strings.ToUpper(s[:1]) + s[1:]
}

// exchange sends x.msg and retransmits it until an answer comes, until
// x.until or after x.mrc transmissions (errNoAnswer), or until a stop or a
// release. A failed send (the uplink's link-local address still tentative,
// the link down) counts as a transmission unanswered.
func (c *client) exchange(x xfer) (*dhcpv6.Message, error) {
	start := time.Now()
	var rt time.Duration
	kind := x.msg.MessageType
	accept := func(m *dhcpv6.Message) bool { return c.acceptable(m, x) }
	for n := 1; ; n++ {
		rt = nextRT(rt, x.irt, x.mrt, jitter(), kind == dhcpv6.MessageTypeSolicit)
		x.msg.UpdateOption(dhcpv6.OptElapsedTime(min(time.Since(start), 0xffff*10*time.Millisecond)))
		log := c.log.WithFields(logrus.Fields{"type": kind, "xid": x.msg.TransactionID, "attempt": n})
		if _, err := c.conn.WriteToUDP(x.msg.ToBytes(), servers); err != nil {
			log.WithError(err).Debug("DHCPv6 message not sent")
		} else {
			log.Debug("DHCPv6 message sent")
		}
		end := time.Now().Add(rt)
		if !x.until.IsZero() && x.until.Before(end) {
			end = x.until
		}
		m, err := c.await(end, accept)
		if !errors.Is(err, errTimeout) {
			return m, err
		}
		c.setError(fmt.Sprintf("no server answered %d %ss since %s", n, name(kind), start.Format("15:04:05")))
		if (x.mrc > 0 && n >= x.mrc) || (!x.until.IsZero() && !time.Now().Before(x.until)) {
			return nil, errNoAnswer
		}
	}
}

// acceptable reports whether m answers x. An answer whose message status
// is a failure is not: the exchange goes on.
func (c *client) acceptable(m *dhcpv6.Message, x xfer) bool {
	if !answers(m, x.msg, x.answer) {
		return false
	}
	if st := m.Options.Status(); st != nil && st.StatusCode != iana.StatusSuccess {
		c.setError(fmt.Sprintf("the server answered a %s with status %s %q", name(x.msg.MessageType), st.StatusCode, st.StatusMessage))
		return false
	}
	if x.answer == dhcpv6.MessageTypeAdvertise {
		return parseGrant(m, c.snapshot().IAID).usable() // no prefix to request
	}
	return true
}

// acquire solicits a prefix (the last one held as a hint) and requests
// it from the first server that advertises one.
func (c *client) acquire(l Lease) error {
	c.setState(StateSoliciting)
	var hint []netip.Prefix
	if n := len(l.Stale); n > 0 {
		hint = []netip.Prefix{l.Stale[n-1].Prefix}
	}
	sol, err := buildMessage(dhcpv6.MessageTypeSolicit, c.duid, nil, l.IAID, hint)
	if err != nil {
		return err
	}
	adv, err := c.exchange(xfer{msg: sol, irt: c.t.SolTimeout, mrt: c.t.SolMaxRT, answer: dhcpv6.MessageTypeAdvertise})
	if err != nil {
		return err
	}
	c.setState(StateRequesting)
	g := parseGrant(adv, l.IAID)
	var want []netip.Prefix
	for _, p := range g.prefixes {
		want = append(want, p.prefix)
	}
	req, err := buildMessage(dhcpv6.MessageTypeRequest, c.duid, adv.Options.ServerID(), l.IAID, want)
	if err != nil {
		return err
	}
	rep, err := c.exchange(xfer{msg: req, irt: c.t.ReqTimeout, mrt: c.t.ReqMaxRT, mrc: c.t.ReqMaxRC, answer: dhcpv6.MessageTypeReply})
	if errors.Is(err, errNoAnswer) {
		return nil // Solicit again
	}
	if err != nil {
		return err
	}
	if !c.take(rep) { // not to ask again at once
		if _, err := c.await(time.Now().Add(c.t.SolTimeout), nil); !errors.Is(err, errTimeout) {
			return err
		}
	}
	return nil
}

// extend sends a Renew (to the server that granted the prefix) or a
// Rebind (to any) for the prefix held, until until.
func (c *client) extend(l Lease, kind dhcpv6.MessageType, until time.Time) error {
	irt, mrt, st := c.t.RenTimeout, c.t.RenMaxRT, StateRenewing
	var server dhcpv6.DUID
	if kind == dhcpv6.MessageTypeRenew {
		var err error
		if server, err = parseDUID(l.Server); err != nil { // a record without a server: Rebind
			kind, server = dhcpv6.MessageTypeRebind, nil
		}
	}
	if kind == dhcpv6.MessageTypeRebind {
		irt, mrt, st, until = c.t.RebTimeout, c.t.RebMaxRT, StateRebinding, l.Current.Valid
	}
	c.setState(st)
	msg, err := buildMessage(kind, c.duid, server, l.IAID, []netip.Prefix{l.Current.Prefix})
	if err != nil {
		return err
	}
	rep, err := c.exchange(xfer{msg: msg, irt: irt, mrt: mrt, until: until, answer: dhcpv6.MessageTypeReply})
	if errors.Is(err, errNoAnswer) {
		return nil // on to Rebind, or lost
	}
	if err != nil {
		return err
	}
	c.take(rep)
	return nil
}

// take applies a Reply: a prefix granted is held (bound, or changed, or
// only its lifetimes moved); none granted (NoBinding, NoPrefixAvail, the
// prefix with lifetime 0) moves the prefix held to Stale, to solicit
// anew. It reports whether a prefix is held.
func (c *client) take(rep *dhcpv6.Message) bool {
	now := time.Now()
	l := c.snapshot()
	g := parseGrant(rep, l.IAID)
	if !g.usable() {
		next := demote(l, now)
		next.State, next.Error = StateSoliciting, fmt.Sprintf("server %s delegated no prefix: %s", g.server, g.why())
		if l.Current != nil {
			c.withdrawn = &l.Current.Prefix
			c.log.WithFields(logrus.Fields{"prefix": l.Current.Prefix, "server": g.server, "status": g.status}).
				Info("delegated prefix withdrawn by the server, soliciting a new one")
		}
		c.commit(next)
		return false
	}
	next, old := applyGrant(l, g, now, c.t.MinRenew)
	next.State = StateBound
	if w := c.withdrawn; w != nil && old == nil && *w != next.Current.Prefix {
		old = &Prefix{Prefix: *w} // withdrawn, then another solicited: a change
	}
	c.withdrawn = nil
	c.logGrant(l, next, old) // before the change is seen, so that the log tells it first
	c.commit(next)
	return true
}

// logGrant logs what a Reply changed from l to next: bound, changed
// (from old) or renewed.
func (c *client) logGrant(l, next Lease, old *Prefix) {
	log := c.log.WithFields(logrus.Fields{"prefix": next.Current.Prefix, "preferred": stamp(next.Current.Preferred),
		"valid": stamp(next.Current.Valid), "renew": stamp(next.Renew)})
	switch {
	case old != nil:
		log.WithField("old", old.Prefix).Info("delegated prefix changed")
	case l.Current == nil:
		log.Info("delegated prefix bound")
	default:
		log.Debug("delegated prefix renewed")
	}
}

// lose drops the prefix held at the end of its valid lifetime.
func (c *client) lose(l Lease) {
	c.withdrawn = nil
	c.log.WithField("prefix", l.Current.Prefix).Info("delegated prefix lost")
	next := demote(l, time.Now())
	next.State = StateSoliciting
	next.Error = fmt.Sprintf("lost %s at the end of its valid lifetime: no server renewed it", l.Current.Prefix)
	c.commit(next)
}

// sendRelease releases the prefix held, if any, waiting for the server's
// Reply at most RelMaxRC transmissions.
func (c *client) sendRelease() {
	c.releasing = true
	l := c.snapshot()
	server, err := parseDUID(l.Server)
	if l.Current == nil || err != nil {
		return
	}
	c.setState(StateReleasing)
	msg, err := buildMessage(dhcpv6.MessageTypeRelease, c.duid, server, l.IAID, []netip.Prefix{l.Current.Prefix})
	if err != nil {
		c.log.WithError(err).Warn("delegated prefix not released")
		return
	}
	_, err = c.exchange(xfer{msg: msg, irt: c.t.RelTimeout, mrc: c.t.RelMaxRC, answer: dhcpv6.MessageTypeReply})
	log := c.log.WithField("prefix", l.Current.Prefix)
	if err != nil {
		log.WithError(err).Info("delegated prefix released, unconfirmed by the server")
		return
	}
	log.Info("delegated prefix released")
}

// stamp formats t for the logs.
func stamp(t time.Time) string { return t.Format(time.RFC3339) }
