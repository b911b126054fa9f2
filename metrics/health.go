package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is one of readiness's checks, as GET /health answers it.
type Check struct {
	// Name is state, firewall or cluster-store.
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// Reason says why the check fails.
	Reason string `json:"reason,omitempty"`
}

// Report is GET /health's answer: 200 when Ready, else 503.
type Report struct {
	Ready  bool    `json:"ready"`
	Checks []Check `json:"checks"`
}

// Health is the plugin's readiness: its state is loaded (the address book
// and the network driver, with the kernel reconciled), the firewall holds
// its rules, and on a cluster host the store answers.
type Health struct {
	mu sync.Mutex
	// firewall and store are Loaded's; loaded says Loaded was called.
	loaded   bool
	firewall func() error
	store    func(context.Context) error
	// The store's last answer and when it came (see storeCache).
	storeErr  error
	storeAt   time.Time
	storeOnce bool
	now       func() time.Time
}

// storeCache is how long the store's answer is reused: a health check
// every second costs the store one read every few.
const storeCache = 5 * time.Second

// StoreTimeout bounds the store's answer to a health check.
const StoreTimeout = time.Second

// NewHealth returns a Health that is not ready until Loaded.
func NewHealth() *Health { return &Health{now: time.Now} }

// Loaded says the plugin's state is loaded; firewall then says whether
// the rules are in place (nil: they are), and store, on a cluster host
// (nil otherwise), whether the store answers within the time its context
// gives.
func (h *Health) Loaded(firewall func() error, store func(context.Context) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.loaded, h.firewall, h.store = true, firewall, store
}

// Check runs the checks.
func (h *Health) Check(ctx context.Context) Report {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.loaded {
		return Report{Checks: []Check{{Name: "state", Reason: "the plugin is starting: its state is not loaded yet"}}}
	}
	checks := []Check{{Name: "state", OK: true}, result("firewall", h.firewall())}
	if h.store != nil {
		now := h.now()
		if !h.storeOnce || now.Sub(h.storeAt) >= storeCache {
			sctx, cancel := context.WithTimeout(ctx, StoreTimeout)
			h.storeErr = h.store(sctx)
			cancel()
			h.storeAt, h.storeOnce = now, true
		}
		checks = append(checks, result("cluster-store", h.storeErr))
	}
	r := Report{Ready: true, Checks: checks}
	for _, c := range checks {
		r.Ready = r.Ready && c.OK
	}
	return r
}

func result(name string, err error) Check {
	if err != nil {
		return Check{Name: name, Reason: err.Error()}
	}
	return Check{Name: name, OK: true}
}

// ServeHTTP answers GET /health with the Report as JSON: 200 when ready,
// 503 when not.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "GET /health", http.StatusMethodNotAllowed)
		return
	}
	rep := h.Check(r.Context())
	w.Header().Set("Content-Type", "application/json")
	if !rep.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(rep)
}

// errNotReady is what a Report that is not ready says when there is no
// failing check to name.
var errNotReady = errors.New("not ready")

// Err is nil for a ready Report, else the failing checks' reasons.
func (r Report) Err() error {
	if r.Ready {
		return nil
	}
	var errs []error
	for _, c := range r.Checks {
		if !c.OK {
			errs = append(errs, errors.New(c.Name+": "+c.Reason))
		}
	}
	if len(errs) == 0 {
		return errNotReady
	}
	return errors.Join(errs...)
}

// WatchHealth registers dualstack_ready: 1 when h is ready at the scrape,
// else 0.
func (m *Metrics) WatchHealth(h *Health) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "dualstack_ready", Help: "1 when the plugin is ready (state loaded, firewall applied, cluster store answering), else 0; GET /health says why not.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), StoreTimeout)
		defer cancel()
		if h.Check(ctx).Ready {
			return 1
		}
		return 0
	}))
}
