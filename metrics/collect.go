package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/delegation"
)

// Sources are what the scrape-time gauges read. A nil source has no
// metrics.
type Sources struct {
	// Pools is the address book.
	Pools interface{ Usage() []addrbook.Usage }
	// BGP is the BGP speaker.
	BGP interface {
		Counts(context.Context) ([]bgp.PeerCounts, error)
	}
	// NDPLinks lists the interfaces ndp_proxy networks answer on, and
	// NDPEntries counts a link's proxy entries (ndp.Entries).
	NDPLinks   func() []string
	NDPEntries func(link string) (int, error)
	// Leases lists the prefix-delegation clients' leases.
	Leases func() []delegation.Lease
	// Now is the clock of the lifetimes; nil: time.Now.
	Now func() time.Time
	// Log hears of a source that fails to answer (at debug).
	Log logrus.FieldLogger
}

// scrapeTimeout bounds the BGP speaker's answer to a scrape.
const scrapeTimeout = 2 * time.Second

var (
	descPoolSize = prometheus.NewDesc("dualstack_pool_size_addresses",
		"Addresses of the subnet that may be handed out, by network (short ID), family and subnet.", []string{"network", "family", "subnet"}, nil)
	descPoolInUse = prometheus.NewDesc("dualstack_pool_addresses_in_use",
		"Addresses of the subnet held by containers (endpoints); the gateway, the host's own addresses and reservations are not counted.", []string{"network", "family", "subnet"}, nil)
	descPoolFree = prometheus.NewDesc("dualstack_pool_addresses_free",
		"Addresses of the subnet not allocated (cluster networks: in the blocks this host holds).", []string{"network", "family", "subnet"}, nil)
	descBlocks = prometheus.NewDesc("dualstack_cluster_blocks",
		"Blocks of a cluster network this host holds, by network (short ID) and family.", []string{"network", "family"}, nil)
	descBlockFree = prometheus.NewDesc("dualstack_cluster_block_addresses_free",
		"Addresses not allocated in the blocks of a cluster network this host holds.", []string{"network", "family"}, nil)
	descPeerUp = prometheus.NewDesc("dualstack_bgp_peer_up",
		"1 when the BGP session with the peer is established, else 0.", []string{"peer"}, nil)
	descSent = prometheus.NewDesc("dualstack_bgp_prefixes_sent",
		"Prefixes advertised to the BGP peer, both families.", []string{"peer"}, nil)
	descReceived = prometheus.NewDesc("dualstack_bgp_prefixes_received",
		"Prefixes received from the BGP peer, both families.", []string{"peer"}, nil)
	descNDP = prometheus.NewDesc("dualstack_ndp_proxy_entries",
		"Proxy neighbour entries on an uplink of ndp_proxy networks: the addresses the host answers for.", []string{"uplink"}, nil)
	descValid = prometheus.NewDesc("dualstack_delegated_prefix_valid_seconds",
		"Seconds left of a delegated prefix's valid lifetime, by uplink and prefix.", []string{"uplink", "prefix"}, nil)
	descPreferred = prometheus.NewDesc("dualstack_delegated_prefix_preferred_seconds",
		"Seconds left of a delegated prefix's preferred lifetime, by uplink and prefix.", []string{"uplink", "prefix"}, nil)
)

// Watch registers the scrape-time gauges of src.
func (m *Metrics) Watch(src Sources) error {
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.Log == nil {
		src.Log = logrus.StandardLogger()
	}
	return m.reg.Register(scraped{src})
}

// scraped collects src's gauges at each scrape.
type scraped struct{ src Sources }

func (s scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolSize, descPoolInUse, descPoolFree, descBlocks, descBlockFree,
		descPeerUp, descSent, descReceived, descNDP, descValid, descPreferred} {
		ch <- d
	}
}

func (s scraped) Collect(ch chan<- prometheus.Metric) {
	s.pools(ch)
	s.bgp(ch)
	s.ndp(ch)
	s.leases(ch)
}

// shortID is a network's ID as `docker network ls` shows it.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func (s scraped) pools(ch chan<- prometheus.Metric) {
	if s.src.Pools == nil {
		return
	}
	type key struct{ network, family string }
	blocks, free := map[key]float64{}, map[key]float64{}
	for _, u := range s.src.Pools.Usage() {
		labels := []string{shortID(u.Network), family(u.Subnet.Addr().Is4()), u.Subnet.String()}
		ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, u.Size, labels...)
		ch <- prometheus.MustNewConstMetric(descPoolInUse, prometheus.GaugeValue, float64(u.InUse), labels...)
		ch <- prometheus.MustNewConstMetric(descPoolFree, prometheus.GaugeValue, u.Free, labels...)
		if u.Cluster != "" {
			k := key{labels[0], labels[1]}
			blocks[k] += float64(u.Blocks)
			free[k] += u.Free
		}
	}
	for k, n := range blocks {
		ch <- prometheus.MustNewConstMetric(descBlocks, prometheus.GaugeValue, n, k.network, k.family)
		ch <- prometheus.MustNewConstMetric(descBlockFree, prometheus.GaugeValue, free[k], k.network, k.family)
	}
}

func (s scraped) bgp(ch chan<- prometheus.Metric) {
	if s.src.BGP == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	peers, err := s.src.BGP.Counts(ctx)
	if err != nil {
		s.src.Log.WithError(err).Debug("metrics: the BGP speaker did not answer")
	}
	for _, p := range peers {
		up := 0.0
		if p.Up {
			up = 1
		}
		peer := p.Address.String()
		ch <- prometheus.MustNewConstMetric(descPeerUp, prometheus.GaugeValue, up, peer)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.GaugeValue, float64(p.Sent), peer)
		ch <- prometheus.MustNewConstMetric(descReceived, prometheus.GaugeValue, float64(p.Received), peer)
	}
}

func (s scraped) ndp(ch chan<- prometheus.Metric) {
	if s.src.NDPLinks == nil || s.src.NDPEntries == nil {
		return
	}
	for _, link := range s.src.NDPLinks() {
		n, err := s.src.NDPEntries(link)
		if err != nil {
			s.src.Log.WithError(err).WithField("uplink", link).Debug("metrics: cannot count the proxy entries")
			continue
		}
		ch <- prometheus.MustNewConstMetric(descNDP, prometheus.GaugeValue, float64(n), link)
	}
}

func (s scraped) leases(ch chan<- prometheus.Metric) {
	if s.src.Leases == nil {
		return
	}
	now := s.src.Now()
	left := func(t time.Time) float64 { return max(t.Sub(now).Seconds(), 0) }
	for _, l := range s.src.Leases() {
		prefixes := l.Stale
		if l.Current != nil {
			prefixes = append([]delegation.Prefix{*l.Current}, prefixes...)
		}
		for _, p := range prefixes {
			ch <- prometheus.MustNewConstMetric(descValid, prometheus.GaugeValue, left(p.Valid), l.Uplink, p.Prefix.String())
			ch <- prometheus.MustNewConstMetric(descPreferred, prometheus.GaugeValue, left(p.Preferred), l.Uplink, p.Prefix.String())
		}
	}
}
