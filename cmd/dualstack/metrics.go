package main

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/metrics"
	"github.com/dualstack-net/dualstack/ndp"
	"github.com/dualstack-net/dualstack/plugin"
	"github.com/dualstack-net/dualstack/settings"
)

// ops is the plugin's metrics and readiness, served on METRICS_ADDR
// from the start (not ready while the state loads) and on the socket
// once it serves.
type ops struct {
	metrics *metrics.Metrics
	health  *metrics.Health
	// firewall says whether the firewall's rules are in place (set by
	// newDriver).
	firewall func() error
	stop     func()
}

// startOps makes the metrics and starts METRICS_ADDR's server, if set. An
// address that cannot be opened is logged: the plugin serves without it.
func startOps(cfg *settings.Settings, log logrus.FieldLogger) *ops {
	o := &ops{metrics: metrics.New(), health: metrics.NewHealth(), stop: func() {}}
	o.metrics.WatchHealth(o.health)
	if cfg.MetricsAddr == "" {
		return o
	}
	l, err := metrics.Listen(cfg.MetricsAddr)
	if err != nil {
		log.WithError(err).Error("no metrics server: /metrics and /health are served on the plugin's socket only")
		return o
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, l, o.metrics, o.health); err != nil {
			log.WithError(err).Error("metrics server stopped")
		}
	}()
	log.WithField("addr", l.Addr().String()).Info("metrics server: GET /metrics and /health")
	o.stop = func() { cancel(); <-done }
	return o
}

// loaded has the metrics read the plugin's state at scrape time, marks
// the plugin ready once its checks pass, and registers /metrics and
// /health on the socket's server.
func (o *ops) loaded(server *plugin.Server, d *driver.Driver, book *addrbook.Book, store *cluster.Store, speaker *bgp.Speaker, prefixes *delegation.Clients, log logrus.FieldLogger) error {
	src := metrics.Sources{
		Pools:    book,
		NDPLinks: d.NDPLinks,
		NDPEntries: func(link string) (int, error) {
			e, err := ndp.Entries(link)
			return len(e), err
		},
		Leases: prefixes.Leases,
		Log:    log,
	}
	if speaker != nil {
		src.BGP = speaker
	}
	if err := o.metrics.Watch(src); err != nil {
		return err
	}
	var ping func(context.Context) error
	if store != nil {
		ping = func(ctx context.Context) error { return store.Ping(ctx, metrics.StoreTimeout) }
	}
	firewall := o.firewall
	if firewall == nil {
		firewall = func() error { return nil }
	}
	o.health.Loaded(firewall, ping)
	server.Observe(o.metrics)
	server.HandleOps("/metrics", o.metrics.Handler())
	server.HandleOps("/health", o.health)
	return nil
}
