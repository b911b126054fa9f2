package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/state"
)

// realIPAM returns dualstack's IPAM driver on a state file in dir, closed
// when tb ends, and a logger that discards.
func realIPAM(tb testing.TB, dir string) (*ipamdriver.Driver, logrus.FieldLogger) {
	tb.Helper()
	db, err := state.Open(dir, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	log := logrus.New()
	log.SetOutput(io.Discard)
	id, err := ipamdriver.New(ipamdriver.Config{DB: db, MachineID: "test", Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	return id, log
}

// BenchmarkDurableRequestAddress measures what Docker waits for: one
// RequestAddress over the plugin's unix socket, answered after the
// allocation is committed (fsynced) to the state file. It reports the
// median and 99th percentile latency.
func BenchmarkDurableRequestAddress(b *testing.B) {
	dir := b.TempDir()
	id, log := realIPAM(b, dir)
	sock := filepath.Join(dir, "dualstack.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{}
	go New(fakeNetwork{}, id, log).Serve(context.Background(), srv, l, time.Second)
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

	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := ipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{
			"com.docker.network.endpoint.macaddress": fmt.Sprintf("02:42:%02x:%02x:%02x:%02x", byte(i>>24), byte(i>>16), byte(i>>8), byte(i)),
		}}
		var resp ipam.RequestAddressResponse
		start := time.Now()
		call("/IpamDriver.RequestAddress", req, &resp)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
