package delegation

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/state"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// fast is RFC 8415's timing shortened for tests.
var fast = Timing{
	SolMaxDelay: time.Millisecond, SolTimeout: 200 * time.Millisecond, SolMaxRT: time.Second,
	ReqTimeout: 200 * time.Millisecond, ReqMaxRT: time.Second,
	RenTimeout: 300 * time.Millisecond, RenMaxRT: time.Second,
	RebTimeout: 300 * time.Millisecond, RebMaxRT: time.Second,
	RelTimeout: 200 * time.Millisecond, RelMaxRC: 2, MinRenew: 500 * time.Millisecond,
}

// start returns clients on db whose goroutines run in l's host namespace,
// closed when t ends.
func (l *link) start(t *testing.T, db state.Store) *Clients {
	t.Helper()
	c := New(Config{DB: db, Log: testLog(t), Timing: fast})
	t.Cleanup(c.Close)
	return c
}

// hold calls Hold from inside the host namespace.
func (l *link) hold(t *testing.T, c *Clients, holder string) Lease {
	t.Helper()
	var lease Lease
	err := netns.Do(l.host.Path, func() error {
		var err error
		lease, err = c.Hold(uplink, holder)
		return err
	})
	if err != nil {
		t.Fatalf("Hold: %v", err)
	}
	return lease
}

// waitFor polls uplink's lease until ok holds, failing t after timeout.
func waitFor(t *testing.T, c *Clients, what string, timeout time.Duration, ok func(Lease) bool) Lease {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		l, _ := c.Lease(uplink)
		if ok(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v: lease %+v (current %+v)", what, timeout, l, l.Current)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func holds(p netip.Prefix) func(Lease) bool {
	return func(l Lease) bool { return l.Current != nil && l.Current.Prefix == p && l.State == StateBound }
}

// near reports whether got is within 600 ms of want.
func near(got, want time.Time) bool {
	d := got.Sub(want)
	return d > -600*time.Millisecond && d < 600*time.Millisecond
}

// TestBindRenewRestart: the client binds the prefix delegated with its
// lifetimes and T1, renews it at T1; after Close and New on the same
// state it holds the prefix at once and renews it at once, with the same
// DUID and IAID.
func TestBindRenewRestart(t *testing.T) {
	t.Parallel()
	l := newLink(t, p1)
	db := state.NewMemory()
	c := l.start(t, db)
	if got := l.hold(t, c, "net1"); got.Current != nil || got.State != StateSoliciting || got.DUID == "" {
		t.Errorf("Hold with no record = %+v, want soliciting, no prefix, a DUID", got)
	}
	got := waitFor(t, c, "prefix bound", 8*time.Second, holds(p1))
	now := time.Now()
	if !near(got.Current.Valid, now.Add(4*time.Second)) || !near(got.Current.Preferred, now.Add(3*time.Second)) ||
		!near(got.Renew, now.Add(time.Second)) || !near(got.Rebind, now.Add(2*time.Second)) {
		t.Errorf("bound %+v (current %+v), want preferred 3 s, valid 4 s, renew 1 s, rebind 2 s from now", got, got.Current)
	}
	first := got.Current.Valid
	renewed := waitFor(t, c, "renewal", 3*time.Second, func(x Lease) bool { return holds(p1)(x) && x.Current.Valid.After(first) })
	if n := l.srv.count(dhcpv6.MessageTypeRenew, time.Time{}); n == 0 {
		t.Errorf("lease renewed (%+v) without a Renew", renewed.Current)
	}

	c.Close()
	if n := l.srv.count(dhcpv6.MessageTypeRelease, time.Time{}); n != 0 {
		t.Errorf("Close sent %d Releases, want none", n)
	}
	closed := time.Now()
	c2 := l.start(t, db)
	again := l.hold(t, c2, "net1")
	if again.Current == nil || again.Current.Prefix != p1 || again.State != StateRenewing {
		t.Errorf("Hold after a restart = %+v (current %+v), want %s held at once, renewing", again, again.Current, p1)
	}
	waitFor(t, c2, "renewal after the restart", 3*time.Second, func(x Lease) bool { return holds(p1)(x) && x.Current.Valid.After(closed.Add(3*time.Second)) })
	after := l.srv.received()
	var restarted []seen
	for _, m := range after {
		if !m.At.Before(closed) {
			restarted = append(restarted, m)
		}
	}
	if len(restarted) == 0 || restarted[0].Type != dhcpv6.MessageTypeRenew || restarted[0].At.Sub(closed) > time.Second {
		t.Errorf("messages after the restart %+v, want a Renew at once", restarted)
	}
	for _, m := range after {
		if m.DUID != after[0].DUID || m.IAID != after[0].IAID || m.DUID != again.DUID || m.IAID != again.IAID {
			t.Errorf("server saw DUID %s IAID %d, want always %s %d", m.DUID, m.IAID, again.DUID, again.IAID)
			break
		}
	}
}

// TestRenumber: a server that delegates another prefix on Renew (the old
// one with lifetime 0), or answers NoBinding so that the client solicits
// anew: the new prefix is Current, the old one Stale, deprecated and
// valid as last granted, then dropped when that ends.
func TestRenumber(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{serve, noBinding} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			l := newLink(t, p1)
			log := testLog(t).(*logrus.Logger)
			hook := logtest.NewLocal(log)
			c := New(Config{DB: state.NewMemory(), Log: log, Timing: fast})
			t.Cleanup(c.Close)
			l.hold(t, c, "net1")
			before := waitFor(t, c, "prefix bound", 8*time.Second, holds(p1))
			l.srv.set(mode, p2)
			got := waitFor(t, c, "new prefix", 6*time.Second, holds(p2))
			now := time.Now()
			if len(got.Stale) != 1 || got.Stale[0].Prefix != p1 || got.Stale[0].Preferred.After(now) ||
				got.Stale[0].Valid.Before(before.Current.Valid) {
				t.Errorf("Stale after renumbering = %+v, want %s deprecated, valid until at least %v", got.Stale, p1, before.Current.Valid)
			}
			if !logged(hook, "delegated prefix changed", logrus.Fields{"prefix": p2, "old": p1, "uplink": uplink}) {
				t.Errorf("no info \"delegated prefix changed\" from %s to %s logged", p1, p2)
			}
			last := got.Stale[0].Valid
			gone := waitFor(t, c, "old prefix dropped", 6*time.Second, func(x Lease) bool { return len(x.Stale) == 0 })
			if time.Now().Before(last) || gone.Current == nil || gone.Current.Prefix != p2 {
				t.Errorf("Stale dropped at %v, before its Valid %v, or lost Current: %+v", time.Now(), last, gone.Current)
			}
		})
	}
}

// TestSilentServer: a server that stops answering gets Renews until T2,
// Rebinds until the valid lifetime ends; then the prefix is lost and the
// client solicits.
func TestSilentServer(t *testing.T) {
	t.Parallel()
	l := newLink(t, p1)
	var states []string
	var mu = make(chan struct{}, 1)
	c := New(Config{DB: state.NewMemory(), Log: testLog(t), Timing: fast, OnChange: func(x Lease) {
		mu <- struct{}{}
		if len(states) == 0 || states[len(states)-1] != x.State {
			states = append(states, x.State)
		}
		<-mu
	}})
	t.Cleanup(c.Close)
	l.hold(t, c, "net1")
	bound := waitFor(t, c, "prefix bound", 8*time.Second, holds(p1))
	l.srv.set(silent, p1)
	silenced := time.Now()
	lost := waitFor(t, c, "prefix lost", 7*time.Second, func(x Lease) bool { return x.Current == nil })
	if now := time.Now(); now.Before(bound.Current.Valid) || !strings.Contains(lost.Error, "lost") {
		t.Errorf("lost at %v, before the valid end %v, or error %q says nothing of it", now, bound.Current.Valid, lost.Error)
	}
	if lost.State != StateSoliciting && lost.State != StateRequesting {
		t.Errorf("state after the loss %q, want soliciting", lost.State)
	}
	renews, rebinds := l.srv.count(dhcpv6.MessageTypeRenew, silenced), l.srv.count(dhcpv6.MessageTypeRebind, silenced)
	if renews < 1 || rebinds < 2 {
		t.Errorf("server saw %d Renews and %d Rebinds while silent, want some of each", renews, rebinds)
	}
	mu <- struct{}{}
	seq := slices.Clone(states)
	<-mu
	iRenew, iRebind := slices.Index(seq, StateRenewing), slices.Index(seq, StateRebinding)
	if iRenew < 0 || iRebind < iRenew {
		t.Errorf("states %v, want renewing then rebinding", seq)
	}
	l.srv.set(serve, p1)
	waitFor(t, c, "prefix bound again", 5*time.Second, holds(p1))
}

// TestReleaseOnLastDrop: only the last holder's Drop releases the prefix
// and forgets the record.
func TestReleaseOnLastDrop(t *testing.T) {
	t.Parallel()
	l := newLink(t, p1)
	db := state.NewMemory()
	c := l.start(t, db)
	l.hold(t, c, "net1")
	if again := l.hold(t, c, "net2"); again.DUID == "" {
		t.Errorf("second Hold = %+v", again)
	}
	waitFor(t, c, "prefix bound", 8*time.Second, holds(p1))
	if err := c.Drop(uplink, "net3"); err == nil {
		t.Error("Drop of a holder that holds nothing: no error")
	}
	if err := c.Drop(uplink, "net1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if n := l.srv.count(dhcpv6.MessageTypeRelease, time.Time{}); n != 0 {
		t.Errorf("Release sent while net2 holds the prefix")
	}
	if _, ok := c.Lease(uplink); !ok {
		t.Error("client stopped while net2 holds the prefix")
	}
	if err := c.Drop(uplink, "net2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, found, _ := loadRecord(db, uplink)
		released := false
		for _, m := range l.srv.received() {
			released = released || m.Type == dhcpv6.MessageTypeRelease && m.Prefix == p1
		}
		if released && !found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the last Drop: Release of %s seen %v, record still there %v", p1, released, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, ok := c.Lease(uplink); ok {
		t.Error("client still runs after the last Drop")
	}
}

// logged reports whether an info entry msg with (at least) fields was
// logged.
func logged(hook *logtest.Hook, msg string, fields logrus.Fields) bool {
	for _, e := range hook.AllEntries() {
		if e.Message != msg || e.Level != logrus.InfoLevel {
			continue
		}
		match := true
		for k, v := range fields {
			match = match && fmt.Sprint(e.Data[k]) == fmt.Sprint(v)
		}
		if match {
			return true
		}
	}
	return false
}

// TestTwoUplinks: clients on two uplinks of one host run at once, each
// on its own link, each with its own DUID.
func TestTwoUplinks(t *testing.T) {
	t.Parallel()
	l := newLink(t, p1)
	other := newLinkIn(t, l.host, "dsthost1", p2)
	c := l.start(t, state.NewMemory())
	l.hold(t, c, "net1")
	if err := netns.Do(l.host.Path, func() error { _, err := c.Hold("dsthost1", "net2"); return err }); err != nil {
		t.Fatalf("Hold of the second uplink: %v", err)
	}
	waitFor(t, c, "prefix bound", 8*time.Second, holds(p1))
	deadline := time.Now().Add(8 * time.Second)
	for {
		ls := c.Leases()
		if len(ls) == 2 && ls[1].Uplink == "dsthost1" && ls[1].Current != nil && ls[1].Current.Prefix == p2 {
			if ls[0].DUID == ls[1].DUID {
				t.Errorf("both uplinks use DUID %s", ls[0].DUID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Leases = %+v, want %s on %s and %s on dsthost1", ls, p1, uplink, p2)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, m := range other.srv.received() {
		if m.DUID != c.mustLease(t, "dsthost1").DUID {
			t.Errorf("server of dsthost1 saw DUID %s: the other uplink's client", m.DUID)
		}
	}
}

func (c *Clients) mustLease(t *testing.T, up string) Lease {
	t.Helper()
	l, ok := c.Lease(up)
	if !ok {
		t.Fatalf("no client on %s", up)
	}
	return l
}
