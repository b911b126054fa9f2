package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/state"
)

type fakePools []addrbook.Usage

func (f fakePools) Usage() []addrbook.Usage { return f }

type fakeBGP []bgp.PeerCounts

func (f fakeBGP) Counts(context.Context) ([]bgp.PeerCounts, error) { return f, nil }

const netID = "0123456789abcdef0123456789abcdef"

// TestScrapedGauges: the gauges read at scrape time carry the sources'
// values under the names and labels of the design.
func TestScrapedGauges(t *testing.T) {
	m := New()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	err := m.Watch(Sources{
		Pools: fakePools{
			{Network: netID, Subnet: netip.MustParsePrefix("198.51.100.0/24"), Size: 254, InUse: 3, Free: 250},
			{Network: netID, Subnet: netip.MustParsePrefix("2001:db8:1::/64"), Size: 18446744073709551615, InUse: 3, Free: 18446744073709551610},
			{Network: netID, Subnet: netip.MustParsePrefix("2001:db8:2::/64"), Size: 18446744073709551615, InUse: 3, Free: 18446744073709551610},
			{Network: "fedcba9876543210", Subnet: netip.MustParsePrefix("203.0.113.0/24"), Size: 254, InUse: 1, Free: 60, Cluster: "c1", Blocks: 2},
		},
		BGP:        fakeBGP{{Address: netip.MustParseAddr("198.51.100.1"), Up: true, Sent: 4, Received: 7}},
		NDPLinks:   func() []string { return []string{"eth0"} },
		NDPEntries: func(string) (int, error) { return 5, nil },
		Leases: func() []delegation.Lease {
			return []delegation.Lease{{Uplink: "eth1", Current: &delegation.Prefix{
				Prefix: netip.MustParsePrefix("2001:db8:100::/56"), Preferred: now.Add(time.Hour), Valid: now.Add(2 * time.Hour)}}}
		},
		Now: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP dualstack_pool_addresses_in_use Addresses of the subnet held by containers (endpoints); the gateway, the host's own addresses and reservations are not counted.
# TYPE dualstack_pool_addresses_in_use gauge
dualstack_pool_addresses_in_use{family="ipv4",network="0123456789ab",subnet="198.51.100.0/24"} 3
dualstack_pool_addresses_in_use{family="ipv4",network="fedcba987654",subnet="203.0.113.0/24"} 1
dualstack_pool_addresses_in_use{family="ipv6",network="0123456789ab",subnet="2001:db8:1::/64"} 3
dualstack_pool_addresses_in_use{family="ipv6",network="0123456789ab",subnet="2001:db8:2::/64"} 3
# HELP dualstack_cluster_blocks Blocks of a cluster network this host holds, by network (short ID) and family.
# TYPE dualstack_cluster_blocks gauge
dualstack_cluster_blocks{family="ipv4",network="fedcba987654"} 2
# HELP dualstack_cluster_block_addresses_free Addresses not allocated in the blocks of a cluster network this host holds.
# TYPE dualstack_cluster_block_addresses_free gauge
dualstack_cluster_block_addresses_free{family="ipv4",network="fedcba987654"} 60
# HELP dualstack_bgp_peer_up 1 when the BGP session with the peer is established, else 0.
# TYPE dualstack_bgp_peer_up gauge
dualstack_bgp_peer_up{peer="198.51.100.1"} 1
# HELP dualstack_bgp_prefixes_sent Prefixes advertised to the BGP peer, both families.
# TYPE dualstack_bgp_prefixes_sent gauge
dualstack_bgp_prefixes_sent{peer="198.51.100.1"} 4
# HELP dualstack_bgp_prefixes_received Prefixes received from the BGP peer, both families.
# TYPE dualstack_bgp_prefixes_received gauge
dualstack_bgp_prefixes_received{peer="198.51.100.1"} 7
# HELP dualstack_ndp_proxy_entries Proxy neighbour entries on an uplink of ndp_proxy networks: the addresses the host answers for.
# TYPE dualstack_ndp_proxy_entries gauge
dualstack_ndp_proxy_entries{uplink="eth0"} 5
# HELP dualstack_delegated_prefix_valid_seconds Seconds left of a delegated prefix's valid lifetime, by uplink and prefix.
# TYPE dualstack_delegated_prefix_valid_seconds gauge
dualstack_delegated_prefix_valid_seconds{prefix="2001:db8:100::/56",uplink="eth1"} 7200
# HELP dualstack_delegated_prefix_preferred_seconds Seconds left of a delegated prefix's preferred lifetime, by uplink and prefix.
# TYPE dualstack_delegated_prefix_preferred_seconds gauge
dualstack_delegated_prefix_preferred_seconds{prefix="2001:db8:100::/56",uplink="eth1"} 3600
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"dualstack_pool_addresses_in_use", "dualstack_cluster_blocks", "dualstack_cluster_block_addresses_free",
		"dualstack_bgp_peer_up", "dualstack_bgp_prefixes_sent", "dualstack_bgp_prefixes_received",
		"dualstack_ndp_proxy_entries", "dualstack_delegated_prefix_valid_seconds", "dualstack_delegated_prefix_preferred_seconds"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry(), "dualstack_pool_size_addresses", "dualstack_pool_addresses_free"); err != nil || n != 8 {
		t.Fatalf("pool size and free: %d series (%v), want 8", n, err)
	}
}

// TestPoolsFromBook: the pool gauges of a real address book count the
// endpoints' addresses only, not the gateway Docker asked for.
func TestPoolsFromBook(t *testing.T) {
	db := state.NewMemory()
	book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "0123456789abcdef", Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	pool := requestPool(t, book, "198.51.100.0/29")
	if _, err := book.Allocate(pool, addrbook.Owner{Kind: addrbook.Gateway}); err != nil {
		t.Fatal(err)
	}
	var held []netip.Addr
	for _, ep := range []string{"e1", "e2"} {
		a, err := book.Allocate(pool, addrbook.Owner{Kind: addrbook.Endpoint, ID: ep})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, a.Addr())
		book.Claim(addrbook.Claim{Endpoint: ep, Network: netID, Addrs: []netip.Addr{a.Addr()}})
	}
	book.Attach(netID, []string{pool})
	m := New()
	if err := m.Watch(Sources{Pools: book}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP dualstack_pool_addresses_in_use Addresses of the subnet held by containers (endpoints); the gateway, the host's own addresses and reservations are not counted.
# TYPE dualstack_pool_addresses_in_use gauge
dualstack_pool_addresses_in_use{family="ipv4",network="0123456789ab",subnet="198.51.100.0/29"} 2
# HELP dualstack_pool_addresses_free Addresses of the subnet not allocated (cluster networks: in the blocks this host holds).
# TYPE dualstack_pool_addresses_free gauge
dualstack_pool_addresses_free{family="ipv4",network="0123456789ab",subnet="198.51.100.0/29"} 3
# HELP dualstack_pool_size_addresses Addresses of the subnet that may be handed out, by network (short ID), family and subnet.
# TYPE dualstack_pool_size_addresses gauge
dualstack_pool_size_addresses{family="ipv4",network="0123456789ab",subnet="198.51.100.0/29"} 6
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"dualstack_pool_addresses_in_use", "dualstack_pool_addresses_free", "dualstack_pool_size_addresses"); err != nil {
		t.Fatalf("%v (endpoints hold %v)", err, held)
	}
}

func requestPool(t *testing.T, book *addrbook.Book, subnet string) string {
	t.Helper()
	p, err := book.RequestPool(addrbook.PoolRequest{Subnet: subnet})
	if err != nil {
		t.Fatal(err)
	}
	return p.ID
}

func quiet() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// TestJoinFailures: a Join the driver refuses counts once under its
// cause, and every other cause is there at 0.
func TestJoinFailures(t *testing.T) {
	m := New()
	db := state.NewMemory()
	book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "0123456789abcdef", Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	d, err := driver.New(driver.Config{DB: db, Book: book, Log: quiet(), JoinFailed: m.JoinFailed})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.JoinFrom(0, &api.JoinRequest{NetworkID: "n1", EndpointID: "e1", SandboxKey: "/proc/self/ns/net"}); err == nil {
		t.Fatal("a Join of an unknown endpoint succeeded")
	}
	if v := testutil.ToFloat64(m.joinFailures.WithLabelValues("state")); v != 1 {
		t.Fatalf(`dualstack_join_failures_total{cause="state"} = %v, want 1`, v)
	}
	if n := testutil.CollectAndCount(m.joinFailures); n != len(driver.JoinCauses) {
		t.Fatalf("%d causes shown, want all %d", n, len(driver.JoinCauses))
	}
}

// TestHooks: requests, firewall applies and store calls land in their
// histograms and counters.
func TestHooks(t *testing.T) {
	m := New()
	m.Request("NetworkDriver.Join", 3*time.Millisecond, true)
	m.Request("NetworkDriver.Join", time.Millisecond, false)
	m.Firewall().Restored(firewall.IPv6, 20*time.Millisecond)
	m.Firewall().Failed("lock")
	m.StoreCall("txn", 2*time.Millisecond, nil)
	m.StoreCall("txn", time.Second, errors.New("deadline exceeded"))
	for _, c := range []struct {
		name string
		got  float64
		want float64
	}{
		{`dualstack_requests_total{call="NetworkDriver.Join",outcome="ok"}`, testutil.ToFloat64(m.requests.WithLabelValues("NetworkDriver.Join", "ok")), 1},
		{`dualstack_requests_total{call="NetworkDriver.Join",outcome="refused"}`, testutil.ToFloat64(m.requests.WithLabelValues("NetworkDriver.Join", "refused")), 1},
		{`dualstack_firewall_failures_total{cause="lock"}`, testutil.ToFloat64(m.fwFailures.WithLabelValues("lock")), 1},
		{`dualstack_firewall_failures_total{cause="restore"}`, testutil.ToFloat64(m.fwFailures.WithLabelValues("restore")), 0},
		{`dualstack_cluster_store_errors_total{op="txn"}`, testutil.ToFloat64(m.storeErrors.WithLabelValues("txn")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	body := scrape(t, m.Handler())
	for _, want := range []string{
		`dualstack_request_duration_seconds_count{call="NetworkDriver.Join"} 2`,
		`dualstack_firewall_apply_duration_seconds_count{family="ipv6"} 1`,
		`dualstack_cluster_store_request_duration_seconds_count{op="txn"} 2`,
		`dualstack_build_info{goarch=`,
		"go_goroutines ", "process_open_fds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// BenchmarkRequest: what a request of Docker's pays for the metrics.
func BenchmarkRequest(b *testing.B) {
	m := New()
	b.ReportAllocs()
	for b.Loop() {
		m.Request("NetworkDriver.Join", 3*time.Millisecond, true)
	}
}
