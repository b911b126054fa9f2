//go:build integration

package local

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/pluginclient"
	"github.com/dualstack-net/dualstack/metrics"
)

// Issue 26: Prometheus metrics and the health endpoint.

// prometheusBin is Debian's Prometheus (apt-get install prometheus).
const prometheusBin = "/usr/bin/prometheus"

// promAddr is where the test's Prometheus serves its API, in the engine's
// network namespace.
const promAddr = "127.0.0.1:19475"

// TestMetrics: Debian's Prometheus, scraping the plugin's METRICS_ADDR,
// answers the addresses in use on a network with IPv4 and two IPv6
// subnets with the number of addresses its containers hold, and a join
// refused for a taken interface name increments
// dualstack_join_failures_total{cause="interface_name"}; /health answers
// ready on METRICS_ADDR and on the plugin's socket.
func TestMetrics(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Skip("Debian's Prometheus is not installed: apt-get install -y prometheus")
	}
	if harness.Eng.External {
		t.Skip("needs a private engine to run Prometheus beside")
	}
	web := engineClient()
	wantHealthy(t, web, "http://"+harness.MetricsAddr+"/health")
	var rep metrics.Report
	if err := pluginclient.New(harness.PluginSocket(t)).Get(context.Background(), "/health", &rep); err != nil || !rep.Ready {
		t.Fatalf("GET /health on the plugin's socket: %+v, %v; want ready", rep, err)
	}

	subnets := []string{"198.18.81.0/24", "2001:db8:81::/64", "2001:db8:82::/64"}
	harness.DSNet(t, "ds-metrics", "--ipv6", "--subnet", subnets[0], "--subnet", subnets[1], "--subnet", subnets[2])
	id := harness.Docker(t, "network", "inspect", "-f", "{{.Id}}", "ds-metrics")[:12]
	names := []string{"metrics-a", "metrics-b", "metrics-c"}
	for _, n := range names {
		harness.RunContainer(t, n, "ds-metrics")
	}
	prom := startPrometheus(t)
	held := heldAddrs(t, names, subnets)
	if held != 3*len(names) {
		t.Fatalf("the containers hold %d addresses on ds-metrics, want 3 each", held)
	}
	inUse := fmt.Sprintf(`sum(dualstack_pool_addresses_in_use{network=%q})`, id)
	waitQuery(t, web, prom, inUse, float64(held))

	if harness.Eng.Kind == harness.EngineDockerIO {
		t.Log("Engine 20.10 ignores interface names, so no join fails there for a taken one: the join failure is checked on Moby")
		return
	}
	failures := `dualstack_join_failures_total{cause="interface_name"}`
	before := waitQuery(t, web, prom, failures, -1)
	harness.DSNet(t, "ds-metrics2", "--subnet", "198.18.83.0/24")
	out := harness.DockerFails(t, "run", "--rm", "--label", harness.TestLabel,
		"--network", "name=ds-metrics,"+ifnameOpt+"x0", "--network", "name=ds-metrics2,"+ifnameOpt+"x0", harness.Image, "true")
	harness.WantMessage(t, out, "already has an interface named x0")
	waitQuery(t, web, prom, failures, before+1)
	// The refused container gave its addresses back.
	waitQuery(t, web, prom, inUse, float64(held))
}

// engineClient is an HTTP client whose connections are made in the
// engine's network namespace, where the plugin and Prometheus listen.
func engineClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = netns.Do(harness.EngineNetns(), func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
	}}
}

// wantHealthy wants GET url to answer 200 with a ready report.
func wantHealthy(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var rep metrics.Report
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &rep); err != nil || resp.StatusCode != http.StatusOK || !rep.Ready {
		t.Fatalf("GET %s: %d %s; want 200 and ready", url, resp.StatusCode, body)
	}
}

// startPrometheus runs Debian's Prometheus in the engine's network
// namespace, scraping METRICS_ADDR every second, and returns its API's
// base URL.
func startPrometheus(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	config := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(
		"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: dualstack\n    static_configs:\n      - targets: [%q]\n", harness.MetricsAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(harness.Repo, "engines/in-netns.sh"), harness.Eng.Netns, prometheusBin,
		"--config.file="+config, "--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("Prometheus's log:\n%s", b)
		}
	})
	return "http://" + promAddr
}

// heldAddrs counts the addresses the containers hold on the network of
// subnets: those docker inspect shows, and the extra IPv6 addresses of
// the other subnets, read in the containers.
func heldAddrs(t *testing.T, names, subnets []string) int {
	t.Helper()
	n := 0
	for _, name := range names {
		shown := strings.Fields(harness.Docker(t, "inspect", "-f",
			`{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.GlobalIPv6Address}}{{end}}`, name))
		var in []netip.Addr
		for _, p := range harness.ContainerAddrs(t, name, "eth0") {
			for _, s := range subnets {
				if netip.MustParsePrefix(s).Contains(p.Addr()) {
					in = append(in, p.Addr())
				}
			}
		}
		for _, s := range shown {
			found := false
			for _, a := range in {
				found = found || a.String() == s
			}
			if !found {
				t.Fatalf("%s: docker inspect shows %s, which its interface lacks (%v)", name, s, in)
			}
		}
		n += len(in)
	}
	return n
}

// waitQuery asks Prometheus for query until it answers want (any value
// when want is negative), for up to 15 s, and returns the value.
func waitQuery(t *testing.T, c *http.Client, prom, query string, want float64) float64 {
	t.Helper()
	var got float64
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		if got, err = promQuery(c, prom, query); err == nil && (want < 0 || got == want) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus: %s = %v (%v), want %v", query, got, err, want)
		}
	}
}

// promQuery runs an instant query that answers one sample.
func promQuery(c *http.Client, prom, query string) (float64, error) {
	resp, err := c.Get(prom + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status string
		Error  string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", r.Error)
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%d samples, want 1 (no scrape yet?)", len(r.Data.Result))
	}
	s, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
