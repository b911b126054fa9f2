package delegation

import (
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/dualstack-net/dualstack/state"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func TestTimers(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name                     string
		t1, t2, preferred, valid time.Duration
		wantRenew, wantRebind    time.Duration
	}{
		{"as granted", 100 * s, 160 * s, 200 * s, 300 * s, 100 * s, 160 * s},
		{"T1=T2=0: 0.5 and 0.8 of preferred", 0, 0, 200 * s, 300 * s, 100 * s, 160 * s},
		{"T2=0 only", 50 * s, 0, 200 * s, 300 * s, 50 * s, 160 * s},
		{"T2 beyond valid: capped", 100 * s, 400 * s, 200 * s, 300 * s, 100 * s, 300 * s},
		{"preferred 0: no Renew sooner than MinRenew", 0, 0, 0, 300 * s, s, s},
		{"valid below MinRenew", 0, 0, 0, s / 2, s / 2, s / 2},
		{"infinite", infinity, infinity, infinity, infinity, infinity, infinity},
	} {
		renew, rebind := timers(t0, c.t1, c.t2, c.preferred, c.valid, s)
		if renew.Sub(t0) != c.wantRenew || rebind.Sub(t0) != c.wantRebind {
			t.Errorf("%s: renew, rebind after %v, %v; want %v, %v", c.name, renew.Sub(t0), rebind.Sub(t0), c.wantRenew, c.wantRebind)
		}
	}
}

func TestNextRT(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name     string
		prev     time.Duration
		rnd      float64
		positive bool
		want     time.Duration
	}{
		{"first", 0, 0.1, false, 1100 * time.Millisecond},
		{"first, negative", 0, -0.1, false, 900 * time.Millisecond},
		{"first Solicit is above IRT", 0, -0.1, true, 1100 * time.Millisecond},
		{"doubles", 4 * s, 0, false, 8 * s},
		{"capped at MRT", 100 * s, 0, false, 120 * s},
		{"capped at MRT, jittered", 100 * s, -0.1, false, 108 * s},
	} {
		if got := nextRT(c.prev, s, 120*s, c.rnd, c.positive); got != c.want {
			t.Errorf("%s: nextRT = %v, want %v", c.name, got, c.want)
		}
	}
}

var (
	p1 = netip.MustParsePrefix("2001:db8:100::/56")
	p2 = netip.MustParsePrefix("2001:db8:200::/56")
)

// replyWith returns a Reply for IAID 7 carrying prefixes with lifetimes.
func replyWith(t *testing.T, t1, t2 time.Duration, prefixes ...*dhcpv6.OptIAPrefix) *dhcpv6.Message {
	t.Helper()
	m, err := dhcpv6.NewMessage(dhcpv6.WithServerID(&dhcpv6.DUIDLL{HWType: iana.HWTypeEthernet, LinkLayerAddr: net.HardwareAddr{2, 0, 0, 0, 0, 1}}),
		dhcpv6.WithIAPD(iaid4(7), prefixes...))
	if err != nil {
		t.Fatal(err)
	}
	m.MessageType = dhcpv6.MessageTypeReply
	ia := m.Options.OneIAPD()
	ia.T1, ia.T2 = t1, t2
	// Through the wire format, as a client reads it.
	out, err := dhcpv6.MessageFromBytes(m.ToBytes())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func iaPrefix(p netip.Prefix, preferred, valid time.Duration) *dhcpv6.OptIAPrefix {
	return &dhcpv6.OptIAPrefix{PreferredLifetime: preferred, ValidLifetime: valid,
		Prefix: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}}
}

// TestApplyGrant: which prefix becomes Current and which go Stale, with
// what lifetimes, from a Reply.
func TestApplyGrant(t *testing.T) {
	s := time.Second
	g := parseGrant(replyWith(t, 0, 0, iaPrefix(p1, 200*s, 300*s)), 7)
	bound, old := applyGrant(Lease{Uplink: "eth0", IAID: 7}, g, t0, s)
	want := Prefix{Prefix: p1, Preferred: t0.Add(200 * s), Valid: t0.Add(300 * s)}
	if old != nil || bound.Current == nil || *bound.Current != want || bound.Stale != nil ||
		bound.Renew != t0.Add(100*s) || bound.Rebind != t0.Add(160*s) || bound.Server != "00030001020000000001" {
		t.Fatalf("bound: %+v (old %v), want Current %+v, renew at 100 s, rebind at 160 s, server DUID-LL", bound, old, want)
	}

	// Same prefix: only lifetimes and timers move.
	later := t0.Add(100 * s)
	renewed, old := applyGrant(bound, g, later, s)
	if old != nil || renewed.Current.Valid != later.Add(300*s) || renewed.Renew != later.Add(100*s) || len(renewed.Stale) != 0 {
		t.Errorf("renewed: %+v (old %v)", renewed, old)
	}

	// The server moves to p2 and sends p1 with lifetime 0: p1 is
	// deprecated now and valid as last granted (not shortened).
	g2 := parseGrant(replyWith(t, 50*s, 80*s, iaPrefix(p1, 0, 0), iaPrefix(p2, 200*s, 300*s)), 7)
	changed, old := applyGrant(renewed, g2, later.Add(10*s), s)
	wantStale := []Prefix{{Prefix: p1, Preferred: later.Add(10 * s), Valid: later.Add(300 * s)}}
	if old == nil || old.Prefix != p1 || changed.Current.Prefix != p2 || !reflect.DeepEqual(changed.Stale, wantStale) {
		t.Errorf("changed: Current %+v, Stale %+v (old %v); want Current %s, Stale %+v", changed.Current, changed.Stale, old, p2, wantStale)
	}
	if changed.Renew != later.Add(60*s) {
		t.Errorf("changed: renew %v after, want 50 s", changed.Renew.Sub(later.Add(10*s)))
	}

	// p1 comes back: it leaves Stale.
	back, _ := applyGrant(changed, g, later.Add(20*s), s)
	if back.Current.Prefix != p1 || len(back.Stale) != 1 || back.Stale[0].Prefix != p2 {
		t.Errorf("back: Current %+v, Stale %+v; want p1, Stale p2", back.Current, back.Stale)
	}

	// The Stale prefix is dropped when its Valid passes.
	if l := expireStale(changed, wantStale[0].Valid.Add(-time.Nanosecond)); len(l.Stale) != 1 {
		t.Errorf("Stale before its Valid: %+v", l.Stale)
	}
	if l := expireStale(changed, wantStale[0].Valid); l.Stale != nil {
		t.Errorf("Stale at its Valid: %+v, want none", l.Stale)
	}
}

// TestParseGrantRefusals: NoBinding, a missing IA_PD, an IA_PD of
// another IAID and a prefix whose preferred exceeds its valid lifetime
// delegate nothing.
func TestParseGrantRefusals(t *testing.T) {
	s := time.Second
	nb := replyWith(t, 0, 0)
	nb.Options.OneIAPD().Options.Add(&dhcpv6.OptStatusCode{StatusCode: iana.StatusNoBinding})
	nb, _ = dhcpv6.MessageFromBytes(nb.ToBytes())
	for name, m := range map[string]*dhcpv6.Message{
		"NoBinding":         nb,
		"preferred > valid": replyWith(t, 0, 0, iaPrefix(p1, 300*s, 200*s)),
		"valid lifetime 0":  replyWith(t, 0, 0, iaPrefix(p1, 0, 0)),
	} {
		if g := parseGrant(m, 7); g.usable() {
			t.Errorf("%s: grant usable: %+v", name, g)
		}
	}
	if g := parseGrant(replyWith(t, 0, 0, iaPrefix(p1, s, s)), 8); g.usable() || g.hasIA {
		t.Errorf("another IAID: grant %+v", g)
	}
	if g := parseGrant(nb, 7); g.status != iana.StatusNoBinding {
		t.Errorf("NoBinding: status %v", g.status)
	}
}

// TestRecordRoundTrip: a lease written is read back whole; an uplink
// without a record has none.
func TestRecordRoundTrip(t *testing.T) {
	db := state.NewMemory()
	l := Lease{Uplink: "eth0", State: StateBound, DUID: "00030001020000000002", IAID: 7, Server: "0003000102000000000001",
		Current: &Prefix{Prefix: p2, Preferred: t0.Add(time.Hour), Valid: t0.Add(2 * time.Hour)},
		Stale:   []Prefix{{Prefix: p1, Preferred: t0, Valid: t0.Add(time.Hour)}},
		Renew:   t0.Add(30 * time.Minute), Rebind: t0.Add(48 * time.Minute)}
	if err := saveRecord(db, l); err != nil {
		t.Fatal(err)
	}
	got, found, err := loadRecord(db, "eth0")
	if err != nil || !found || !reflect.DeepEqual(got, l) {
		t.Errorf("loadRecord = %+v, %v, %v; want %+v", got, found, err, l)
	}
	if _, found, err := loadRecord(db, "eth1"); found || err != nil {
		t.Errorf("loadRecord of another uplink: found %v, %v", found, err)
	}
	if err := forgetRecord(db, "eth0"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := loadRecord(db, "eth0"); found {
		t.Error("record found after forgetRecord")
	}
}

// TestRestore: a recorded Current still valid is held, renewing at once;
// one past its valid lifetime is gone, and so are expired Stale ones.
func TestRestore(t *testing.T) {
	now := time.Now()
	rec := Lease{Uplink: "eth0", DUID: "00030001020000000002", IAID: 7, Server: "00",
		Current: &Prefix{Prefix: p2, Preferred: now.Add(time.Hour), Valid: now.Add(2 * time.Hour)},
		Stale:   []Prefix{{Prefix: p1, Preferred: now.Add(-time.Hour), Valid: now.Add(-time.Minute)}}}
	c := &client{uplink: "eth0", log: testLog(t)}
	l := c.restore(rec, now)
	if l.State != StateRenewing || l.Current == nil || l.Current.Prefix != p2 || l.Stale != nil || !c.renewNow {
		t.Errorf("restored %+v (renew now %v), want Current %s renewing at once, no Stale", l, c.renewNow, p2)
	}
	c = &client{uplink: "eth0", log: testLog(t)}
	l = c.restore(rec, now.Add(3*time.Hour))
	if l.State != StateSoliciting || l.Current != nil || c.renewNow || l.DUID != rec.DUID || l.IAID != 7 {
		t.Errorf("restored after the valid lifetime: %+v, want soliciting with the same DUID/IAID", l)
	}
}

// TestHoldRefusals: an uplink that does not exist is refused and nothing
// is recorded; a Drop of what is not held is refused.
func TestHoldRefusals(t *testing.T) {
	db := state.NewMemory()
	c := New(Config{DB: db, Log: testLog(t)})
	defer c.Close()
	_, err := c.Hold("dsnope0", "net1")
	if err == nil || !strings.Contains(err.Error(), "dsnope0") || !strings.Contains(err.Error(), "existing interface") {
		t.Errorf("Hold of a missing uplink: %v, want an error naming it and what to do", err)
	}
	if _, found, _ := loadRecord(db, "dsnope0"); found {
		t.Error("record written for a refused Hold")
	}
	if _, ok := c.Lease("dsnope0"); ok || len(c.Leases()) != 0 {
		t.Error("client runs after a refused Hold")
	}
	if _, err := c.Hold("", "net1"); err == nil {
		t.Error("Hold of no uplink: no error")
	}
	if err := c.Drop("dsnope0", "net1"); !errors.Is(err, ErrNotHeld) {
		t.Errorf("Drop of what is not held: %v, want ErrNotHeld", err)
	}
}
