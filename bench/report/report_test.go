package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Output as bench/run.sh leaves it in build/bench.
const (
	ipamOut = `goos: linux
goarch: amd64
pkg: github.com/dualstack-net/dualstack/bench/ipamcompare
cpu: Oxide Virtual Turin-like Processor             
BenchmarkNextSequentialV6/dualstack-2         	100000000	        10.96 ns/op	  91259687 allocs/s	       0 B/op	       0 allocs/op
BenchmarkNextSequentialV6/dualstack-2         	100000000	        11.91 ns/op	  83959687 allocs/s	       0 B/op	       0 allocs/op
BenchmarkNextSequentialV6/docker-ipam-2       	 1869682	       618.1 ns/op	   1617899 allocs/s	     560 B/op	      13 allocs/op
BenchmarkNextSequentialV6/docker-ipam-2       	 1946024	       607.7 ns/op	   1645433 allocs/s	     560 B/op	      13 allocs/op
BenchmarkChurn10k/dualstack-2                 	 4170603	       286.4 ns/op	   3491860 allocs/s	      10 B/op	       0 allocs/op
BenchmarkChurn10k/docker-ipam-2               	   76503	     19979 ns/op	     50052 allocs/s	    1048 B/op	      24 allocs/op
BenchmarkMemory1M/dualstack-2                 	      99	  11794932 ns/op	       648.0 B/1M-allocs	     648 B/op	      10 allocs/op
BenchmarkMemory1M/docker-ipam-2               	       2	 648080670 ns/op	      1976 B/1M-allocs	560002696 B/op	13000038 allocs/op
PASS
ok  	github.com/dualstack-net/dualstack/bench/ipamcompare	61.422s
`
	durableOut = `BenchmarkDurableRequestAddress/single-host-2         	    2000	    571642 ns/op	       481.0 p50-µs	      2236 p99-µs
BenchmarkDurableRequestAddress/cluster-2             	    2000	    568021 ns/op	       496.0 p50-µs	      2481 p99-µs
`
	fsyncOut = "BenchmarkFsyncsPerAllocation 1000 2.02 fsyncs/op\n"
	// engineOut is a suite's start (integration/harness) and the engine
	// benchmarks on Moby.
	engineOut = `engine moby: dockerd github.com/moby/moby/v2 v2.0.0-beta.24 (go1.26.8); containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3; runc version 1.5.2 (no seccomp)
engine: client 28.2.2, engine library-import (API 1.56) at unix:///tmp/dualstack-it-1/docker.sock (private: true, root mount: private, Docker's firewall backend: default)
goos: linux
cpu: Oxide Virtual Turin-like Processor
BenchmarkRunRm-2               	      40	       183.0 docker-bridge-ms	       204.7 dualstack-ms
BenchmarkConnectDisconnect-2   	      40	       110.1 docker-bridge-ms	        93.3 docker-macvlan-ms	        92.2 dualstack-macvlan-ms	        87.8 dualstack-ms
PASS
`
	// ndpOut is BenchmarkNDPProxy on Moby.
	ndpOut = `engine moby: dockerd github.com/moby/moby/v2 v2.0.0-beta.24 (go1.26.8); containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3; runc version 1.5.2 (no seccomp)
engine: client 28.2.2, engine library-import (API 1.56) at unix:///tmp/dualstack-it-1/docker.sock (private: true, root mount: private, Docker's firewall backend: default)
cpu: Oxide Virtual Turin-like Processor
BenchmarkNDPProxy-2   	      40	       190.2 dualstack-ms	       195.1 ndp-proxy-ms
PASS
`
	// delegatedOut is BenchmarkDelegatedPrefix on Moby.
	delegatedOut = `engine moby: dockerd github.com/moby/moby/v2 v2.0.0-beta.24 (go1.26.8); containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3; runc version 1.5.2 (no seccomp)
engine: client 28.2.2, engine library-import (API 1.56) at unix:///tmp/dualstack-it-1/docker.sock (private: true, root mount: private, Docker's firewall backend: default)
cpu: Oxide Virtual Turin-like Processor
BenchmarkDelegatedPrefix-2   	      40	       446.1 delegated-ms	       483.3 docker-bridge-ms	       446.7 dualstack-ms
PASS
`
	// scaleLog is BenchmarkScale's -v output, scaleTxt its series.
	scaleLog = `engine: client 28.2.2, engine 20.10.24+dfsg1 (API 1.41) at unix:///tmp/x/docker.sock (private: true, root mount: private, Docker's firewall backend: default)
BenchmarkScale
BenchmarkScale-2   	       1	         0 ns/op	       500.0 endpoints	       145.0 own-start-ms	       444.0 exec-ms	       812.0 restart-ms	       379.0 restart-1-ms
--- BENCH: BenchmarkScale-2
    bench_test.go:262: dualstack with 500 containers: run --rm median 2432.7 ms
`
	scaleTxt = "docker-bridge 1 1849.0\ndocker-bridge 500 2643.0\ndualstack 1 1578.2\ndualstack 500 2432.7\n"
)

func TestParse(t *testing.T) {
	var s Source
	if err := Parse(strings.NewReader(engineOut), &s, false); err != nil {
		t.Fatal(err)
	}
	want := Source{
		CPU:    "Oxide Virtual Turin-like Processor",
		Engine: "Moby v2.0.0-beta.24 (API 1.56), runc 1.5.2",
		Metrics: map[string]map[string][]float64{
			"BenchmarkRunRm":             {"docker-bridge-ms": {183.0}, "dualstack-ms": {204.7}},
			"BenchmarkConnectDisconnect": {"docker-bridge-ms": {110.1}, "docker-macvlan-ms": {93.3}, "dualstack-macvlan-ms": {92.2}, "dualstack-ms": {87.8}},
		},
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("Parse gave %+v, want %+v", s, want)
	}
	var scale Source
	if err := Parse(strings.NewReader(scaleLog), &scale, false); err != nil {
		t.Fatal(err)
	}
	if scale.Engine != "Engine 20.10.24+dfsg1 (API 1.41)" || scale.Metrics["BenchmarkScale"]["restart-ms"][0] != 812 {
		t.Fatalf("scale output: %+v", scale)
	}
	if err := Parse(strings.NewReader(scaleTxt), &scale, true); err != nil {
		t.Fatal(err)
	}
	if got := scale.Series["dualstack"]; !reflect.DeepEqual(got, map[int]float64{1: 1578.2, 500: 2432.7}) {
		t.Fatalf("series: %v", got)
	}
}

// sampleRun writes a run's output to a directory, as bench/run.sh would,
// with its files dated date, and returns the directory.
func sampleRun(t *testing.T, date string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"run.txt": "go: go1.99.1\ncpus: 4\n", "ipam.txt": ipamOut, "durable.txt": durableOut, "fsync.txt": fsyncOut,
		"engine-moby.txt": engineOut, "ndp-moby.txt": ndpOut, "delegated-moby.txt": delegatedOut,
		"scale-docker.io.log": scaleLog, "scale-docker.io.txt": scaleTxt,
		"strace.txt": "% time     seconds  usecs/call     calls    errors syscall\n",
	}
	when, err := time.Parse("2006-01-02", date)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when.Add(12*time.Hour), when.Add(12*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCollect(t *testing.T) {
	r, err := Collect(sampleRun(t, "2026-12-02"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n, s := range r.Sources {
		names = append(names, n)
		if s.Date != "2026-12-02" || s.Go != "go1.99.1" || s.CPUs != 4 {
			t.Errorf("source %s: date %s, %s, %d CPUs; want 2026-12-02, go1.99.1, 4 CPUs (run.txt)", n, s.Date, s.Go, s.CPUs)
		}
	}
	if got, want := strings.Join(slices.Sorted(slices.Values(names)), " "), "delegated-moby durable engine-moby fsync ipam ndp-moby scale-docker.io"; got != want {
		t.Fatalf("sources %s, want %s (strace.txt holds no figures)", got, want)
	}
	if got := r.values("ipam", "BenchmarkNextSequentialV6/dualstack", "ns/op"); !reflect.DeepEqual(got, []float64{10.96, 11.91}) {
		t.Fatalf("ipam sequential dualstack: %v", got)
	}
}

// TestTables renders the sample run's tables: what the docs would show.
func TestTables(t *testing.T) {
	r, err := Collect(sampleRun(t, "2026-12-02"))
	if err != nil {
		t.Fatal(err)
	}
	want := `| benchmark | dualstack | Docker's default IPAM | ratio |
|---|---|---|---|
| sequential allocation in a /64, in memory | 11–12 ns (84–91 M/s) | 608–618 ns (1.6 M/s) | 54× faster |
| heap after 1 M sequential allocations in a /64 | 648 B | 1976 B |  |
| churn: 10 k live, release a random one, allocate the next | 286 ns | 20 µs | 70× faster |
| durable RequestAddress over the unix socket (commit + 2 fsyncs) | p50 481 µs, p99 2.24 ms | not durable |  |
| fsyncs per durable allocation (strace) | 2.02 |  |  |

Measured by ` + "`make bench`" + ` (source and date): ` + "`ipam`" + ` 2026-12-02, ` + "`durable`" + ` 2026-12-02, ` + "`fsync`" + ` 2026-12-02; go1.99.1, 4 CPUs (Oxide Virtual Turin-like Processor).
`
	if got := allocatorTable(r); got != want {
		t.Errorf("allocator table:\n%s\nwant:\n%s", got, want)
	}
	engines := enginesTable(r)
	for _, row := range []string{
		"| Engine 20.10.24+dfsg1 (API 1.41) | — | — | — | **812 ms** with 500 endpoints (379 ms with 1): Docker started the new process after 444 ms, its own start took 145 ms |",
		"| Moby v2.0.0-beta.24 (API 1.56), runc 1.5.2 | 204.7 ms against 183 ms: **1.119** | 87.8 ms against 110.1 ms: **0.797** | 92.2 ms against 93.3 ms: **0.988** | — |",
	} {
		if !strings.Contains(engines, row+"\n") {
			t.Errorf("engines table lacks the row\n%s\nin:\n%s", row, engines)
		}
	}
	ndp := ndpTable(r)
	if row := "| Moby v2.0.0-beta.24 (API 1.56), runc 1.5.2 | 195.1 ms against 190.2 ms: **1.026** | ≤ 1.05 |"; !strings.Contains(ndp, row+"\n") {
		t.Errorf("ndp table lacks the row\n%s\nin:\n%s", row, ndp)
	}
	if got := ndpTable(&Results{Sources: map[string]*Source{}}); !strings.Contains(got, "| — | — | ≤ 1.05 |") {
		t.Errorf("the ndp table without figures:\n%s", got)
	}
	delegated := delegatedTable(r)
	if row := "| Moby v2.0.0-beta.24 (API 1.56), runc 1.5.2 | 446.1 ms against 446.7 ms: **0.999** | ≤ 1.05 | 483.3 ms: 0.923 (the plain one 0.924) |"; !strings.Contains(delegated, row+"\n") {
		t.Errorf("delegated table lacks the row\n%s\nin:\n%s", row, delegated)
	}
	if got := delegatedTable(&Results{Sources: map[string]*Source{}}); !strings.Contains(got, "| — | — | ≤ 1.05 | — |") {
		t.Errorf("the delegated table without figures:\n%s", got)
	}
	if got := bgpTable(r); !strings.Contains(got, "No figures yet: run `make bench`.") || !strings.Contains(got, "| — |") {
		t.Errorf("a table without figures:\n%s", got)
	}
}

func TestRender(t *testing.T) {
	r := &Results{Sources: map[string]*Source{"routes": {Date: "2026-12-04", Go: "go1.26.8", CPUs: 2,
		Metrics: map[string]map[string][]float64{"BenchmarkLearnedUpdate": {"cpu-µs/op": {307, 272}}}}}}
	doc := "# Title\n\nProse before.\n\n<!-- generated by make bench: begin routes -->\nan old table\n<!-- generated by make bench: end routes -->\n\nProse after.\n"
	got, err := Render(doc, r)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Title\n\nProse before.\n\n<!-- generated by make bench: begin routes -->\n\n" +
		"| benchmark | figure | goal |\n|---|---|---|\n| CPU of the process (user and system) per update | **272–307 µs** | ≤ 1 ms |\n\n" +
		"Measured by `make bench` (source and date): `routes` 2026-12-04; go1.26.8, 2 CPUs.\n\n" +
		"<!-- generated by make bench: end routes -->\n\nProse after.\n"
	if got != want {
		t.Fatalf("Render gave:\n%s\nwant:\n%s", got, want)
	}
	if again, err := Render(got, r); err != nil || again != got {
		t.Fatalf("a second Render changed the doc (%v):\n%s", err, again)
	}
	for doc, msg := range map[string]string{
		"<!-- generated by make bench: begin nosuch -->\n<!-- generated by make bench: end nosuch -->\n": `no generated section is named "nosuch"`,
		"<!-- generated by make bench: begin bgp -->\n":                                                  "section bgp has no end marker",
		"<!-- generated by make bench: begin bgp -->\n<!-- generated by make bench: begin routes -->\n":  "section routes begins inside section bgp",
		"<!-- generated by make bench: end bgp -->\n":                                                    "end of section bgp, which is not open",
	} {
		if _, err := Render(doc, r); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Render(%q) = %v, want an error saying %q", doc, err, msg)
		}
	}
}

// TestMerge: a partial run renews only the sources it measured, and an
// older output does not replace newer figures.
func TestMerge(t *testing.T) {
	all := &Results{Sources: map[string]*Source{
		"ipam": {Date: "2026-11-23"}, "bgp": {Date: "2026-12-01"}, "fsync": {Date: "2026-12-09"},
	}}
	run := &Results{Sources: map[string]*Source{"ipam": {Date: "2026-12-04"}, "fsync": {Date: "2026-12-04"}}}
	if got := all.Merge(run); !reflect.DeepEqual(got, []string{"ipam"}) {
		t.Fatalf("Merge took %v, want [ipam]", got)
	}
	for name, date := range map[string]string{"ipam": "2026-12-04", "bgp": "2026-12-01", "fsync": "2026-12-09"} {
		if all.Sources[name].Date != date {
			t.Errorf("%s: %s after the merge, want %s", name, all.Sources[name].Date, date)
		}
	}
}

// TestRun: a run's output ends in its results.json, in the results the
// docs show, and in the doc's tables.
func TestRun(t *testing.T) {
	dir := sampleRun(t, "2026-12-02")
	results := filepath.Join(t.TempDir(), "results.json")
	doc := filepath.Join(t.TempDir(), "performance.md")
	page := "Prose.\n<!-- generated by make bench: begin allocator -->\n<!-- generated by make bench: end allocator -->\n"
	if err := os.WriteFile(doc, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(results, doc, dir, false); err != nil {
		t.Fatal(err)
	}
	if err := run(results, doc, "", true); err != nil {
		t.Fatalf("-check after a run: %v", err)
	}
	for _, f := range []string{results, filepath.Join(dir, "results.json")} {
		r, err := Load(f)
		if err != nil || len(r.Sources) != 7 {
			t.Errorf("%s: %d sources, %v; want 7", f, len(r.Sources), err)
		}
	}
	b, _ := os.ReadFile(doc)
	if !strings.HasPrefix(string(b), "Prose.\n") || !strings.Contains(string(b), "| fsyncs per durable allocation (strace) | 2.02 |") {
		t.Fatalf("the doc after a run:\n%s", b)
	}
	if err := os.WriteFile(doc, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(results, doc, "", true); err == nil {
		t.Fatal("-check passed on a doc whose tables are not the results'")
	}
}
