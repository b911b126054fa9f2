//go:build integration

package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/bench/e2e"
	"github.com/dualstack-net/dualstack/integration/harness"
)

// engineAPI is the engine's API (harness.EngineAPI), called directly so that
// the docker CLI's own start-up does not blur the measurement.
type engineAPI struct{ *harness.EngineAPI }

// runRmBody is `docker run --rm` through the API of the container body
// describes (with AutoRemove): create, start, and wait until the
// container is removed.
func (a engineAPI) runRmBody(b testing.TB, body string) time.Duration {
	start := time.Now()
	id := a.Create(b, "", body)
	a.Post(b, "/containers/"+id+"/start", "")
	a.Post(b, "/containers/"+id+"/wait?condition=removed", "")
	return time.Since(start)
}

// runRm is `docker run --rm IMAGE true` on network.
func (a engineAPI) runRm(b *testing.B, network string) time.Duration {
	return a.runRmBody(b, fmt.Sprintf(`{"Image":%q,"Cmd":["true"],"Labels":{"dualstack.test":"1"},"HostConfig":{"NetworkMode":%q,"AutoRemove":true}}`, harness.Image, network))
}

// BenchmarkRunRm measures `docker run --rm` of a container that exits at
// once, on a dualstack bridge (four subnets) and on Docker's bridge (two),
// in the same engine and run, in turns: the median per network.
func BenchmarkRunRm(b *testing.B) {
	harness.CreateNetwork(b, "ds-brun-docker", "-d", "bridge", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:d::/64")
	harness.CreateNetwork(b, "ds-brun-ds", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", "198.51.100.0/24", "--subnet", "2001:db8:e::/64", "--subnet", "2001:db8:f::/64", "--subnet", "2001:db8:10::/64")
	api := engineAPI{harness.NewEngineAPI(b)}
	inTurns(b, []benchNetwork{{"docker-bridge", "ds-brun-docker"}, {"dualstack", "ds-brun-ds"}}, api.runRm)
}

// runRmPorts is runRm with ports host ports published (tcp 20000 and up,
// each to the same container port).
func (a engineAPI) runRmPorts(b *testing.B, network string, ports int) time.Duration {
	exposed, bindings := map[string]struct{}{}, map[string][]map[string]string{}
	for p := 20000; p < 20000+ports; p++ {
		key := fmt.Sprintf("%d/tcp", p)
		exposed[key] = struct{}{}
		bindings[key] = []map[string]string{{"HostPort": strconv.Itoa(p)}}
	}
	body, err := json.Marshal(map[string]any{
		"Image": harness.Image, "Cmd": []string{"true"}, "Labels": map[string]string{"dualstack.test": "1"}, "ExposedPorts": exposed,
		"HostConfig": map[string]any{"NetworkMode": network, "AutoRemove": true, "PortBindings": bindings},
	})
	if err != nil {
		b.Fatal(err)
	}
	return a.runRmBody(b, string(body))
}

// BenchmarkPublish measures `docker run --rm -p 20000:20000` against
// `-p 20000-20499:20000-20499` (500 ports, both families on dualstack's
// network), on a dualstack bridge and on Docker's bridge, in the same
// engine and run, in turns: the median per network and port count.
func BenchmarkPublish(b *testing.B) {
	harness.CreateNetwork(b, "ds-bpub-docker", "-d", "bridge", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:d::/64")
	harness.CreateNetwork(b, "ds-bpub-ds", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6", "--subnet", "198.51.100.0/24", "--subnet", "2001:db8:e::/64")
	api := engineAPI{harness.NewEngineAPI(b)}
	cases := map[string]struct {
		network string
		ports   int
	}{
		"docker-bridge-1": {"ds-bpub-docker", 1}, "docker-bridge-500": {"ds-bpub-docker", 500},
		"dualstack-1": {"ds-bpub-ds", 1}, "dualstack-500": {"ds-bpub-ds", 500},
	}
	var nets []benchNetwork
	for _, name := range []string{"docker-bridge-1", "docker-bridge-500", "dualstack-1", "dualstack-500"} {
		nets = append(nets, benchNetwork{name, name})
	}
	inTurns(b, nets, func(b *testing.B, name string) time.Duration {
		c := cases[name]
		return api.runRmPorts(b, c.network, c.ports)
	})
}

// benchNetwork is a network a benchmark measures, and the name it reports.
type benchNetwork struct{ name, network string }

// inTurns measures op on every network b.N times, one round at a time
// (each round in another order), after a round to warm up, and reports the
// median per network as "<name>-ms". Taking turns, rather than one network
// after the other, keeps a drift of the engine over the run (its own
// state, the machine's load) from landing on one side of a ratio.
func inTurns(b *testing.B, networks []benchNetwork, op func(b *testing.B, network string) time.Duration) {
	for _, n := range networks {
		op(b, n.network)
	}
	lat := make([][]time.Duration, len(networks))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range networks {
			j := (i + k) % len(networks)
			lat[j] = append(lat[j], op(b, networks[j].network))
		}
	}
	b.StopTimer()
	for j, n := range networks {
		b.ReportMetric(e2e.Median(lat[j]), n.name+"-ms")
	}
	// ns/op would be a round over every network: not a figure to quote.
	b.ReportMetric(0, "ns/op")
}

// fill starts containers on network until it has n (in parallel, ten at a
// time), named prefix-<i>.
func fill(b *testing.B, network, prefix string, have, n int) {
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	for i := have; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%s-%d", prefix, i)
			if out, err := harness.DockerCmd("run", "-d", "--label", harness.TestLabel, "--name", name, "--network", network, harness.Image, "sleep", "36000"); err != nil {
				b.Errorf("%s: %v: %s", name, err, out)
			}
		}(i)
	}
	wg.Wait()
}

// removeAll removes the containers fill started.
func removeAll(prefix string, n int) {
	var names []string
	for i := 0; i < n; i++ {
		names = append(names, fmt.Sprintf("%s-%d", prefix, i))
	}
	for len(names) > 0 {
		k := min(len(names), 50)
		_, _ = harness.DockerCmd(append([]string{"rm", "-f"}, names[:k]...)...)
		names = names[k:]
	}
}

// removeNetwork removes network once its endpoints are gone: Engine 20.10
// returns from `docker rm -f` of a running container before it has
// released the container's endpoints, and hundreds of them take minutes.
func removeNetwork(network string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := harness.DockerCmd("network", "rm", network)
		if err == nil || strings.Contains(strings.ToLower(out), "not found") || strings.Contains(strings.ToLower(out), "no such network") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("network rm %s: %v: %s", network, err, out)
		}
		time.Sleep(time.Second)
	}
}

// BenchmarkScale measures `docker run --rm` latency (median of 5) with 1
// to 500 containers already on the network, Docker's bridge first, then a
// dualstack bridge (BENCH_SCALE_DRIVERS limits it to some), and writes
// "driver containers median-ms" lines to BENCH_SCALE_OUT (for the plot in
// docs/performance.md). It then restarts the plugin
// with 500 endpoints on its network and reports how long until it serves.
func BenchmarkScale(b *testing.B) {
	if harness.Eng.External {
		b.Skip("needs the private engine")
	}
	steps := []int{1, 50, 100, 200, 300, 400, 500}
	if v := os.Getenv("BENCH_SCALE_MAX"); v != "" {
		max, _ := strconv.Atoi(v)
		var s []int
		for _, x := range steps {
			if x <= max {
				s = append(s, x)
			}
		}
		steps = s
	}
	api := engineAPI{harness.NewEngineAPI(b)}
	var lines []string
	drivers := os.Getenv("BENCH_SCALE_DRIVERS") // default: both
	for _, d := range []struct {
		name, net string
		args      []string
	}{
		{"docker-bridge", "ds-scale-docker", []string{"-d", "bridge", "--ipv6", "--subnet", "10.250.0.0/16", "--subnet", "2001:db8:d1::/64"}},
		{"dualstack", "ds-scale-ds", []string{"-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6", "--subnet", "10.251.0.0/16", "--subnet", "2001:db8:d2::/64", "--subnet", "2001:db8:d3::/64", "--subnet", "2001:db8:d4::/64"}},
	} {
		if drivers != "" && !strings.Contains(" "+drivers+" ", " "+d.name+" ") {
			continue
		}
		harness.CreateNetwork(b, d.net, d.args...)
		have := 0
		for _, n := range steps {
			fill(b, d.net, d.net, have, n)
			have = n
			lat := make([]time.Duration, 0, 5)
			for i := 0; i < 5; i++ {
				lat = append(lat, api.runRm(b, d.net))
			}
			lines = append(lines, fmt.Sprintf("%s %d %.1f", d.name, n, e2e.Median(lat)))
			b.Logf("%s with %d containers: run --rm median %.1f ms", d.name, n, e2e.Median(lat))
			if d.name == "dualstack" && (n == steps[0] || n == steps[len(steps)-1]) {
				total, started, own := restartToServing(b)
				b.Logf("plugin restart with %d endpoints: %.0f ms from SIGKILL to serving, Docker's restart included; Docker started the new process after %.0f ms (±10); its own start %.0f ms", n, e2e.Ms(total), e2e.Ms(started), e2e.Ms(own))
				if n == steps[0] {
					b.ReportMetric(e2e.Ms(total), "restart-1-ms")
				} else {
					b.ReportMetric(e2e.Ms(total), "restart-ms")
					b.ReportMetric(e2e.Ms(own), "own-start-ms")
					b.ReportMetric(e2e.Ms(started), "exec-ms")
					b.ReportMetric(float64(have), "endpoints")
				}
			}
		}
		// The next series starts on an engine done with this one's
		// containers: Engine 20.10 takes minutes to release 500 endpoints.
		removing := time.Now()
		removeAll(d.net, have)
		if err := removeNetwork(d.net, 20*time.Minute); err != nil {
			b.Error(err)
		}
		b.Logf("%s: %d containers and their network removed in %.0f s", d.name, have, time.Since(removing).Seconds())
	}
	if out := os.Getenv("BENCH_SCALE_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// restartToServing SIGKILLs the plugin and returns the time until the new
// process answers on its socket (Docker's restart included), until Docker
// had started that process, and the new process's own share: its "startup"
// field, from its start to serving.
//
// The wait polls the socket Docker dials (/run/docker/plugins/<id>/), not
// /proc: with 500 containers a scan of every process each few milliseconds
// would take a CPU from the engine and the plugin it measures.
func restartToServing(b *testing.B) (total, started, own time.Duration) {
	pids := harness.PluginPIDs()
	if len(pids) != 1 {
		b.Fatalf("plugin processes %v", pids)
	}
	id := harness.Docker(b, "plugin", "inspect", "-f", "{{.Id}}", harness.PluginName)
	// The path dockerd dials (on Linux /run/docker/plugins whatever the
	// exec-root), in its own mount namespace; a unix socket address is
	// limited to 108 bytes, the link is not.
	sock := filepath.Join(harness.Eng.Dir, "bench.sock")
	_ = os.Remove(sock)
	if err := os.Symlink(fmt.Sprintf("/proc/%d/root/run/docker/plugins/%s/dualstack.sock", harness.Eng.PID(), id), sock); err != nil {
		b.Fatal(err)
	}
	if err := harness.Activate(sock); err != nil {
		b.Fatalf("the plugin's socket, as Docker dials it: %v", err)
	}
	starts := len(startupRE.FindAllStringSubmatch(harness.Eng.PluginLog(), -1))
	var ts unix.Timespec
	start := time.Now()
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		b.Fatal(err)
	}
	for harness.ProcessAlive(pids[0]) && time.Since(start) < 10*time.Second {
		time.Sleep(time.Millisecond)
	}
	for time.Since(start) < time.Minute {
		if harness.Activate(sock) == nil {
			total = time.Since(start)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if total == 0 {
		b.Fatal("the plugin did not come back within a minute")
	}
	// When Docker started the new process: its start time, in clock ticks
	// (1/100 s) since boot.
	if now := harness.PluginPIDs(); len(now) == 1 {
		if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", now[0])); err == nil {
			f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
			if ticks, err := strconv.ParseInt(f[19], 10, 64); err == nil {
				started = time.Duration(ticks)*10*time.Millisecond - time.Duration(ts.Nano())
			}
		}
	}
	// dockerd writes the plugin's log line shortly after.
	for i := 0; i < 200; i++ {
		if m := startupRE.FindAllStringSubmatch(harness.Eng.PluginLog(), -1); len(m) > starts {
			d, err := time.ParseDuration(m[len(m)-1][1])
			if err != nil {
				b.Fatal(err)
			}
			return total, started, d
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatal("no new \"dualstack serving\" line in the plugin's log")
	return 0, 0, 0
}

// startupRE finds the plugin's own start-up time in its log.
var startupRE = regexp.MustCompile(`dualstack serving.*startup=([0-9.]+[µmn]?s)`)

// BenchmarkConnectDisconnect measures `docker network connect` plus
// `disconnect` of a running container, in the same engine and run: a
// dualstack bridge (three IPv6 subnets) against Docker's own bridge (one
// IPv6 subnet, all it takes), and a dualstack macvlan network (three IPv6
// subnets) against Docker's macvlan (one), both on a veth parent, in
// turns. It reports the median cycle per network.
func BenchmarkConnectDisconnect(b *testing.B) {
	if !harness.Eng.External {
		if out, err := exec.Command("ip", "-n", harness.Eng.Netns, "link", "add", "dsbp0", "type", "veth", "peer", "name", "dsbp1").CombinedOutput(); err != nil {
			b.Fatalf("%v: %s", err, out)
		}
		b.Cleanup(func() { _ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "del", "dsbp0").Run() })
		_ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "set", "dsbp0", "up").Run()
		_ = exec.Command("ip", "-n", harness.Eng.Netns, "link", "set", "dsbp1", "up").Run()
	}
	harness.CreateNetwork(b, "ds-bench-base", "-d", "bridge")
	harness.CreateNetwork(b, "ds-bench-docker", "-d", "bridge", "--ipv6", "--subnet", "192.0.2.0/24", "--subnet", "2001:db8:d::/64")
	harness.CreateNetwork(b, "ds-bench-ds", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "--ipv6",
		"--subnet", "198.51.100.0/24", "--subnet", "2001:db8:e::/64", "--subnet", "2001:db8:f::/64", "--subnet", "2001:db8:10::/64")
	networks := []benchNetwork{{"docker-bridge", "ds-bench-docker"}, {"dualstack", "ds-bench-ds"}}
	if !harness.Eng.External {
		harness.CreateNetwork(b, "ds-bench-dmv", "-d", "macvlan", "-o", "parent=dsbp0", "--ipv6", "--subnet", "203.0.113.0/25", "--subnet", "2001:db8:20::/64")
		harness.CreateNetwork(b, "ds-bench-mv", "-d", harness.PluginName, "--ipam-driver", harness.PluginName, "-o", "mode=macvlan", "-o", "parent=dsbp0", "--ipv6",
			"--subnet", "203.0.113.128/25", "--subnet", "2001:db8:21::/64", "--subnet", "2001:db8:22::/64", "--subnet", "2001:db8:23::/64")
		networks = append(networks, benchNetwork{"docker-macvlan", "ds-bench-dmv"}, benchNetwork{"dualstack-macvlan", "ds-bench-mv"})
	}
	harness.RunContainer(b, "ds-bench-c", "ds-bench-base")
	api := engineAPI{harness.NewEngineAPI(b)}
	body := `{"Container":"ds-bench-c"}`
	inTurns(b, networks, func(b *testing.B, network string) time.Duration {
		start := time.Now()
		api.Post(b, "/networks/"+network+"/connect", body)
		api.Post(b, "/networks/"+network+"/disconnect", body)
		return time.Since(start)
	})
}
