package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler) (int, Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/health", nil))
	var rep Report
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatalf("/health answered %q: %v", rec.Body, err)
	}
	return rec.Code, rep
}

// TestHealth: /health is 503 while the state loads and while a check
// fails, naming it and why, and 200 once every check passes;
// dualstack_ready follows.
func TestHealth(t *testing.T) {
	m, h := New(), NewHealth()
	m.WatchHealth(h)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	code, rep := get(t, h)
	if code != http.StatusServiceUnavailable || rep.Ready || len(rep.Checks) != 1 || rep.Checks[0].Name != "state" || rep.Checks[0].OK {
		t.Fatalf("starting: %d %+v, want 503 with the state check failing", code, rep)
	}
	if v := readyValue(t, m); v != 0 {
		t.Fatalf("dualstack_ready %v while starting, want 0", v)
	}
	fwErr := errors.New("firewall: IPv4 rules: iptables-restore: exit status 4")
	var pings int
	var storeErr error
	h.Loaded(func() error { return fwErr }, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("the store is asked without a deadline")
		}
		pings++
		return storeErr
	})
	code, rep = get(t, h)
	if code != http.StatusServiceUnavailable || rep.Ready || rep.Err() == nil || !strings.Contains(rep.Err().Error(), "firewall: firewall: IPv4 rules") {
		t.Fatalf("firewall failing: %d %+v, want 503 naming it", code, rep)
	}
	fwErr = nil
	code, rep = get(t, h)
	if code != http.StatusOK || !rep.Ready || len(rep.Checks) != 3 || rep.Err() != nil {
		t.Fatalf("ready: %d %+v, want 200 with state, firewall, cluster-store", code, rep)
	}
	if v := readyValue(t, m); v != 1 {
		t.Fatalf("dualstack_ready %v when ready, want 1", v)
	}
	// The store's answer is kept a few seconds.
	storeErr = errors.New("context deadline exceeded")
	if _, rep = get(t, h); !rep.Ready || pings != 1 {
		t.Fatalf("within the cache: ready %v after %d pings, want the cached answer of 1", rep.Ready, pings)
	}
	now = now.Add(storeCache)
	code, rep = get(t, h)
	if code != http.StatusServiceUnavailable || pings != 2 || !strings.Contains(rep.Err().Error(), "cluster-store: context deadline exceeded") {
		t.Fatalf("store down: %d %+v after %d pings", code, rep, pings)
	}
}

// readyValue is dualstack_ready as a scrape shows it.
func readyValue(t *testing.T, m *Metrics) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "dualstack_ready" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no dualstack_ready")
	return 0
}
