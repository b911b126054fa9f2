//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"
)

// api calls the engine's API directly, so that the docker CLI's own start-up
// does not blur the measurement.
type engineAPI struct {
	client  *http.Client
	version string
}

func newEngineAPI(b *testing.B) *engineAPI {
	sock := strings.TrimPrefix(eng.host, "unix://")
	return &engineAPI{
		client: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}},
		version: "v" + docker(b, "version", "-f", "{{.Server.APIVersion}}"),
	}
}

func (a *engineAPI) post(b *testing.B, path, body string) {
	resp, err := a.client.Post("http://docker/"+a.version+path, "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// BenchmarkConnectDisconnect measures `docker network connect` plus
// `disconnect` of a running container, in the same engine and run: a
// dualstack bridge (three IPv6 subnets) against Docker's own bridge (one
// IPv6 subnet, all it takes), and a dualstack macvlan network (three IPv6
// subnets) against Docker's macvlan (one), both on a veth parent. It
// reports the median cycle per network.
func BenchmarkConnectDisconnect(b *testing.B) {
	if !eng.external {
		if out, err := exec.Command("ip", "-n", eng.netns, "link", "add", "dsbp0", "type", "veth", "peer", "name", "dsbp1").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		b.Cleanup(func() { _ = exec.Command("ip", "-n", eng.netns, "link", "del", "dsbp0").Run() })
		_ = exec.Command("ip", "-n", eng.netns, "link", "set", "dsbp0", "up").Run()
		_ = exec.Command("ip", "-n", eng.netns, "link", "set", "dsbp1", "up").Run()
	}
	createNetwork(b, "ds-bench-base", "-d", "bridge")
	createNetwork(b, "ds-bench-docker", "-d", "bridge", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:d::/64")
	createNetwork(b, "ds-bench-ds", "-d", pluginName, "--ipam-driver", pluginName, "--ipv6",
		"--subnet", "198.51.100.0/24", "--subnet", "2001:db8:e::/64", "--subnet", "2001:db8:f::/64", "--subnet", "2001:db8:10::/64")
	networks := []struct{ name, network string }{{"docker-bridge", "ds-bench-docker"}, {"dualstack", "ds-bench-ds"}}
	if !eng.external {
		createNetwork(b, "ds-bench-dmv", "-d", "macvlan", "-o", "parent=dsbp0", "--ipv6", "--subnet", "203.0.113.0/25", "--subnet", "2001:db8:20::/64")
		createNetwork(b, "ds-bench-mv", "-d", pluginName, "--ipam-driver", pluginName, "-o", "mode=macvlan", "-o", "parent=dsbp0", "--ipv6",
			"--subnet", "203.0.113.128/25", "--subnet", "2001:db8:21::/64", "--subnet", "2001:db8:22::/64", "--subnet", "2001:db8:23::/64")
		networks = append(networks, struct{ name, network string }{"docker-macvlan", "ds-bench-dmv"}, struct{ name, network string }{"dualstack-macvlan", "ds-bench-mv"})
	}
	runContainer(b, "ds-bench-c", "ds-bench-base")
	api := newEngineAPI(b)
	cycle := func(b *testing.B, network string) time.Duration {
		body := fmt.Sprintf(`{"Container":"ds-bench-c"}`)
		start := time.Now()
		api.post(b, "/networks/"+network+"/connect", body)
		api.post(b, "/networks/"+network+"/disconnect", body)
		return time.Since(start)
	}
	for _, n := range networks {
		b.Run(n.name, func(b *testing.B) {
			cycle(b, n.network) // warm up
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				lat = append(lat, cycle(b, n.network))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "median-ms")
		})
	}
}
