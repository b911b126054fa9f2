// Package metrics is dualstack's Prometheus metrics: counters and
// histograms that the plugin's subsystems feed through small hooks (the
// socket server's Observer, the driver's JoinFailed, the firewall's and the
// cluster store's Observers), and gauges read at scrape time from the
// address book, the BGP speaker, the NDP proxy and the prefix-delegation
// clients, so that a request pays one histogram observation and one
// counter increment, and nothing else.
//
// Everything lives in the plugin's own registry (not the process-wide
// default), with the Go runtime's and the process's collectors. Health
// (health.go) is the readiness behind GET /health and dualstack_ready.
package metrics

import (
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/version"
)

// buckets (seconds) of the latency histograms: a request is a few
// milliseconds, an iptables-restore tens, a store call that waits for a
// dead etcd up to its 3 s timeout.
var buckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Metrics is the plugin's registry and the metrics its hooks feed. Its
// methods are safe for concurrent use.
type Metrics struct {
	reg             *prometheus.Registry
	requestDuration *prometheus.HistogramVec
	requests        *prometheus.CounterVec
	joinFailures    *prometheus.CounterVec
	fwDuration      *prometheus.HistogramVec
	fwFailures      *prometheus.CounterVec
	storeDuration   *prometheus.HistogramVec
	storeErrors     *prometheus.CounterVec
}

// New returns the metrics, registered in a registry of their own with the
// Go runtime's and the process's collectors and dualstack_build_info.
// The scrape-time gauges come with Watch.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dualstack_request_duration_seconds", Help: "Time the plugin took to answer Docker's calls, by call (NetworkDriver.Join, IpamDriver.RequestAddress, ...).", Buckets: buckets,
		}, []string{"call"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dualstack_requests_total", Help: "Docker's calls the plugin answered, by call and outcome (ok or refused).",
		}, []string{"call", "outcome"}),
		joinFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dualstack_join_failures_total", Help: "Joins of a container to a network that failed, by cause (sandbox, interface_name, link, address, firewall, state, other).",
		}, []string{"cause"}),
		fwDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dualstack_firewall_apply_duration_seconds", Help: "Time an iptables-restore of dualstack's rules took, by family (ipv4, ipv6).", Buckets: buckets,
		}, []string{"family"}),
		fwFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dualstack_firewall_failures_total", Help: "Firewall applies that failed, by cause (save, restore, lock, command).",
		}, []string{"cause"}),
		storeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "dualstack_cluster_store_request_duration_seconds", Help: "Round-trip time of calls to the cluster store (etcd), by operation.", Buckets: buckets,
		}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dualstack_cluster_store_errors_total", Help: "Calls to the cluster store (etcd) that failed, by operation.",
		}, []string{"op"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "dualstack_build_info", Help: "The plugin's version and architecture; always 1.",
	}, []string{"version", "goarch"})
	buildInfo.WithLabelValues(version.Version, runtime.GOARCH).Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, m.requestDuration, m.requests, m.joinFailures, m.fwDuration, m.fwFailures, m.storeDuration, m.storeErrors)
	// Every cause at 0, so that a first failure is an increase.
	for _, c := range driver.JoinCauses {
		m.joinFailures.WithLabelValues(string(c))
	}
	for _, c := range firewall.FailureCauses {
		m.fwFailures.WithLabelValues(c)
	}
	return m
}

// Registry is the metrics' registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus's exposition formats (GET
// /metrics). A source that fails to answer leaves its metrics out; the
// others are served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Request is the socket server's Observer (plugin.Observer).
func (m *Metrics) Request(call string, took time.Duration, ok bool) {
	outcome := "refused"
	if ok {
		outcome = "ok"
	}
	m.requestDuration.WithLabelValues(call).Observe(took.Seconds())
	m.requests.WithLabelValues(call, outcome).Inc()
}

// JoinFailed is the driver's Config.JoinFailed.
func (m *Metrics) JoinFailed(cause driver.JoinCause) {
	m.joinFailures.WithLabelValues(string(cause)).Inc()
}

// StoreCall is the cluster store's Observer (cluster.Observer).
func (m *Metrics) StoreCall(op string, took time.Duration, err error) {
	m.storeDuration.WithLabelValues(op).Observe(took.Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

var _ cluster.Observer = (*Metrics)(nil)

// Firewall is the firewall's Observer (firewall.Observer).
func (m *Metrics) Firewall() firewall.Observer { return firewallObserver{m} }

type firewallObserver struct{ m *Metrics }

func (o firewallObserver) Restored(f firewall.Family, took time.Duration) {
	o.m.fwDuration.WithLabelValues(family(f == firewall.IPv4)).Observe(took.Seconds())
}

func (o firewallObserver) Failed(cause string) { o.m.fwFailures.WithLabelValues(cause).Inc() }

// family is the family label's value.
func family(is4 bool) string {
	if is4 {
		return "ipv4"
	}
	return "ipv6"
}
