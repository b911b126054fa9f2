// Package ipambench measures what Docker waits for from the IPAM: one
// durable RequestAddress over the plugin's unix socket.
package ipambench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/cluster/clustertest"
	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/plugin"
	"github.com/dualstack-net/dualstack/state"
)

// ipamOnly is a network driver that is never called: the benchmark asks
// the IPAM alone.
type ipamOnly struct{ network.Driver }

// realClusterIPAM returns dualstack's IPAM driver on a state file in dir,
// closed when tb ends, with a cluster store (nil for none), its address
// book, and a logger that discards.
func realClusterIPAM(tb testing.TB, dir string, leases addrbook.Leases) (*ipamdriver.Driver, *addrbook.Book, logrus.FieldLogger) {
	tb.Helper()
	db, err := state.Open(dir, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	log := logrus.New()
	log.SetOutput(io.Discard)
	book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "test", Log: log, Leases: leases})
	if err != nil {
		tb.Fatal(err)
	}
	return ipamdriver.New(book, nil), book, log
}

// BenchmarkDurableRequestAddress measures what Docker waits for: one
// RequestAddress over the plugin's unix socket, answered after the
// allocation is committed (fsynced) to the state file. It reports the
// median and 99th percentile latency, in a pool of one host and in a
// cluster network's pool, inside the block its host leased (which the
// first request, before the timer, leases).
func BenchmarkDurableRequestAddress(b *testing.B) {
	b.Run("single-host", func(b *testing.B) { benchRequestAddress(b, false) })
	b.Run("cluster", func(b *testing.B) { benchRequestAddress(b, true) })
}

func benchRequestAddress(b *testing.B, inCluster bool) {
	dir := b.TempDir()
	var leases addrbook.Leases
	var store *cluster.Store
	if inCluster {
		endpoints, _, _ := clustertest.Etcd(b)
		var err error
		store, err = cluster.Open(cluster.Config{Endpoints: endpoints, Node: "bench", Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.2")}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { store.Close() })
		def := cluster.Definition{Mode: cluster.ModeBridge, Subnets: []netip.Prefix{netip.MustParsePrefix("2001:db8::/64")}, HostBlock6: 80, Routes: cluster.RoutesHostGW}
		if _, err := store.Define(context.Background(), "bench", def); err != nil {
			b.Fatal(err)
		}
		leases = store
	}
	id, book, log := realClusterIPAM(b, dir, leases)
	sock := filepath.Join(dir, "dualstack.sock")
	l, err := plugin.ListenUnix(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{}
	go plugin.New(ipamOnly{}, id, log).Serve(context.Background(), srv, l, time.Second)
	defer srv.Shutdown(context.Background())
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(path string, req, resp any) {
		body, _ := json.Marshal(req)
		r, err := client.Post("http://plugin"+path, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		defer r.Body.Close()
		if r.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(r.Body)
			b.Fatalf("%s: %s", path, msg)
		}
		if err := json.NewDecoder(r.Body).Decode(resp); err != nil {
			b.Fatal(err)
		}
	}
	var pool ipam.RequestPoolResponse
	call("/IpamDriver.RequestPool", ipam.RequestPoolRequest{AddressSpace: "local", Pool: "2001:db8::/64", V6: true}, &pool)
	if inCluster {
		if err := book.JoinCluster(pool.PoolID, addrbook.ClusterPool{Network: "bench", Bits: 80, Routed: true}); err != nil {
			b.Fatal(err)
		}
	}
	request := func(i int) time.Duration {
		req := ipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{
			"com.docker.network.endpoint.macaddress": fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)),
		}}
		var resp ipam.RequestAddressResponse
		start := time.Now()
		call("/IpamDriver.RequestAddress", req, &resp)
		return time.Since(start)
	}
	request(-1) // a cluster pool leases its block here

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = append(lat, request(i))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
