package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// sections are the generated sections of docs/performance.md, by name:
// each renders its table, and says under it where its figures come from.
var sections = map[string]func(*Results) string{
	"allocator": allocatorTable,
	"engines":   enginesTable,
	"roots":     rootsTable,
	"publish":   publishTable,
	"ndp":       ndpTable,
	"delegated": delegatedTable,
	"scale":     scaleTable,
	"cluster":   clusterTable,
	"bgp":       bgpTable,
	"routes":    routesTable,
}

// micro converts figures in µs to ms.
func micro(vs []float64) []float64 {
	var out []float64
	for _, v := range vs {
		out = append(out, v/1000)
	}
	return out
}

// allocatorTable: bench/ipamcompare (ipam), the plugin's durable
// RequestAddress (durable) and its fsyncs (fsync).
func allocatorTable(r *Results) string {
	ipam := func(bench, impl, unit string) []float64 { return r.values("ipam", bench+"/"+impl, unit) }
	withRate := func(bench, impl string) string {
		ns := ipam(bench, impl, "ns/op")
		if len(ns) == 0 {
			return none
		}
		return fmt.Sprintf("%s (%s)", scaled(ns, nsSteps), scaled(ipam(bench, impl, "allocs/s"), rateSteps))
	}
	seq, churn, mem := "BenchmarkNextSequentialV6", "BenchmarkChurn10k", "BenchmarkMemory1M"
	durable := func(unit string) []float64 {
		return micro(r.values("durable", "BenchmarkDurableRequestAddress/single-host", unit))
	}
	durableCell := none
	if p50 := durable("p50-µs"); len(p50) > 0 {
		durableCell = fmt.Sprintf("p50 %s, p99 %s", ms(p50), ms(durable("p99-µs")))
	}
	fsyncs := none
	if vs := r.values("fsync", "BenchmarkFsyncsPerAllocation", "fsyncs/op"); len(vs) > 0 {
		fsyncs = strconv.FormatFloat(median(vs), 'f', 2, 64)
	}
	rows := [][]string{
		{"sequential allocation in a /64, in memory", withRate(seq, "dualstack"), withRate(seq, "docker-ipam"),
			faster(ipam(seq, "dualstack", "ns/op"), ipam(seq, "docker-ipam", "ns/op"))},
		{"heap after 1 M sequential allocations in a /64", scaled(ipam(mem, "dualstack", "B/1M-allocs"), byteSteps),
			scaled(ipam(mem, "docker-ipam", "B/1M-allocs"), byteSteps), ""},
		{"churn: 10 k live, release a random one, allocate the next", scaled(ipam(churn, "dualstack", "ns/op"), nsSteps),
			scaled(ipam(churn, "docker-ipam", "ns/op"), nsSteps), faster(ipam(churn, "dualstack", "ns/op"), ipam(churn, "docker-ipam", "ns/op"))},
		{"durable RequestAddress over the unix socket (commit + 2 fsyncs)", durableCell, "not durable", ""},
		{"fsyncs per durable allocation (strace)", fsyncs, "", ""},
	}
	return table([]string{"benchmark", "dualstack", "Docker's default IPAM", "ratio"}, rows) + "\n" +
		measured(r, "ipam", "durable", "fsync")
}

// engines are the engines r has figures of, from its sources named
// prefix+engine (engine-docker.io: docker.io), in order.
func engines(r *Results, prefixes ...string) []string {
	seen := map[string]bool{}
	var out []string
	for name := range r.Sources {
		for _, p := range prefixes {
			if e, ok := strings.CutPrefix(name, p); ok && !strings.HasSuffix(e, "-shared") && !seen[e] {
				seen[e] = true
				out = append(out, e)
			}
		}
	}
	sort.Strings(out)
	return out
}

// engineName is how sources describe engine e, or e itself.
func engineName(r *Results, e string, sources ...string) string {
	for _, s := range sources {
		if src := r.Sources[s+e]; src != nil && src.Engine != "" {
			return src.Engine
		}
	}
	return e
}

// enginesTable: docker run --rm and connect + disconnect on each engine
// (engine-E), and the plugin's restart (scale-E).
func enginesTable(r *Results) string {
	var rows [][]string
	var sources []string
	for _, e := range engines(r, "engine-", "scale-") {
		run := func(bench, unit string) []float64 { return r.values("engine-"+e, bench, unit) }
		rr, cd := "BenchmarkRunRm", "BenchmarkConnectDisconnect"
		rows = append(rows, []string{
			engineName(r, e, "engine-", "scale-"),
			against(run(rr, "dualstack-ms"), run(rr, "docker-bridge-ms")),
			against(run(cd, "dualstack-ms"), run(cd, "docker-bridge-ms")),
			against(run(cd, "dualstack-macvlan-ms"), run(cd, "docker-macvlan-ms")),
			restartCell(r, e),
		})
		sources = append(sources, "engine-"+e, "scale-"+e)
	}
	return table([]string{"engine", "`docker run --rm`, bridge", "connect + disconnect, bridge", "connect + disconnect, macvlan", "plugin restart"}, rows) +
		"\n" + measured(r, sources...)
}

// restartCell is the plugin's restart on engine e, from the scale
// benchmark.
func restartCell(r *Results, e string) string {
	v := func(unit string) []float64 { return r.values("scale-"+e, "BenchmarkScale", unit) }
	full := v("restart-ms")
	if len(full) == 0 {
		return none
	}
	cell := "**" + ms(full) + "**"
	if eps := v("endpoints"); len(eps) > 0 {
		cell += fmt.Sprintf(" with %.0f endpoints", median(eps))
	}
	if one := v("restart-1-ms"); len(one) > 0 {
		cell += fmt.Sprintf(" (%s with 1)", ms(one))
	}
	if exec, own := v("exec-ms"), v("own-start-ms"); len(exec) > 0 && len(own) > 0 {
		cell += fmt.Sprintf(": Docker started the new process after %s, its own start took %s", ms(exec), ms(own))
	}
	return cell
}

// rootsTable: docker run --rm with the engine's root mount private
// (engine-E) against shared (engine-E-shared).
func rootsTable(r *Results) string {
	var rows [][]string
	var sources []string
	for _, e := range engines(r, "engine-") {
		if r.Sources["engine-"+e+"-shared"] == nil {
			continue
		}
		get := func(src, unit string) []float64 { return r.values(src, "BenchmarkRunRm", unit) }
		p, pd := get("engine-"+e, "dualstack-ms"), get("engine-"+e, "docker-bridge-ms")
		s, sd := get("engine-"+e+"-shared", "dualstack-ms"), get("engine-"+e+"-shared", "docker-bridge-ms")
		cell := func(a, d []float64) string {
			if len(a) == 0 {
				return none
			}
			return fmt.Sprintf("%s (Docker's bridge %s)", ms(a), ms(d))
		}
		vsDocker := none
		if len(p) > 0 && len(pd) > 0 && len(s) > 0 && len(sd) > 0 {
			vsDocker = ratio(p, pd) + " against " + ratio(s, sd)
		}
		rows = append(rows, []string{engineName(r, e, "engine-"), cell(p, pd), cell(s, sd), "**" + ratio(p, s) + "**", vsDocker})
		sources = append(sources, "engine-"+e, "engine-"+e+"-shared")
	}
	return table([]string{"engine", "private root", "shared root", "private/shared", "against Docker's bridge in each run"}, rows) +
		"\n" + measured(r, sources...)
}

// publishTable: docker run --rm with 500 published ports against 1
// (publish-E).
func publishTable(r *Results) string {
	var rows [][]string
	var sources []string
	for _, e := range engines(r, "publish-") {
		v := func(unit string) []float64 { return r.values("publish-"+e, "BenchmarkPublish", unit) }
		docker := none
		if a, b := v("docker-bridge-500-ms"), v("docker-bridge-1-ms"); len(a) > 0 && len(b) > 0 {
			docker = fmt.Sprintf("%s against %s: %s", ms(a), ms(b), ratio(a, b))
		}
		rows = append(rows, []string{engineName(r, e, "publish-", "engine-"), against(v("dualstack-500-ms"), v("dualstack-1-ms")), docker})
		sources = append(sources, "publish-"+e)
	}
	return table([]string{"engine", "dualstack, 500 ports against 1", "Docker's bridge, 500 ports against 1"}, rows) +
		"\n" + measured(r, sources...)
}

// ndpTable: docker run --rm on an ndp_proxy network against a plain
// dualstack bridge (ndp-E), issue 23's goal beside it.
func ndpTable(r *Results) string {
	var rows [][]string
	var sources []string
	for _, e := range engines(r, "ndp-") {
		v := func(unit string) []float64 { return r.values("ndp-"+e, "BenchmarkNDPProxy", unit) }
		rows = append(rows, []string{engineName(r, e, "ndp-", "engine-"), against(v("ndp-proxy-ms"), v("dualstack-ms")), "≤ 1.05"})
		sources = append(sources, "ndp-"+e)
	}
	if len(rows) == 0 {
		rows = append(rows, []string{none, none, "≤ 1.05"})
	}
	return table([]string{"engine", "`docker run --rm`, ndp_proxy network against a plain dualstack bridge", "goal"}, rows) +
		"\n" + measured(r, sources...)
}

// delegatedTable: docker run --rm on a delegated_prefix network against
// a plain dualstack bridge and against Docker's bridge, all three in the
// same run (delegated-E), issue 24's goal beside it.
func delegatedTable(r *Results) string {
	var rows [][]string
	var sources []string
	for _, e := range engines(r, "delegated-") {
		v := func(unit string) []float64 { return r.values("delegated-"+e, "BenchmarkDelegatedPrefix", unit) }
		docker := none
		if d, p, br := v("delegated-ms"), v("dualstack-ms"), v("docker-bridge-ms"); len(d) > 0 && len(p) > 0 && len(br) > 0 {
			docker = fmt.Sprintf("%s: %s (the plain one %s)", ms(br), ratio(d, br), ratio(p, br))
		}
		rows = append(rows, []string{engineName(r, e, "delegated-", "engine-"), against(v("delegated-ms"), v("dualstack-ms")), "≤ 1.05", docker})
		sources = append(sources, "delegated-"+e)
	}
	if len(rows) == 0 {
		rows = append(rows, []string{none, none, "≤ 1.05", none})
	}
	return table([]string{"engine", "`docker run --rm`, delegated_prefix network against a plain dualstack bridge", "goal", "against Docker's bridge"}, rows) +
		"\n" + measured(r, sources...)
}

// scaleTable: docker run --rm with 1 to 500 containers on the network
// (scale-E's series).
func scaleTable(r *Results) string {
	counts := map[int]bool{}
	es := engines(r, "scale-")
	for _, e := range es {
		for _, s := range r.Sources["scale-"+e].Series {
			for n := range s {
				counts[n] = true
			}
		}
	}
	var ns []int
	for n := range counts {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	head := []string{"containers on the network"}
	for _, n := range ns {
		head = append(head, strconv.Itoa(n))
	}
	var rows [][]string
	var sources []string
	for _, e := range es {
		for _, d := range []struct{ key, name string }{{"docker-bridge", "Docker bridge"}, {"dualstack", "dualstack bridge"}} {
			s := r.Sources["scale-"+e].Series[d.key]
			if s == nil {
				continue
			}
			row := []string{fmt.Sprintf("%s, %s (ms)", engineName(r, e, "scale-"), d.name)}
			for _, n := range ns {
				cell := none
				if v, ok := s[n]; ok {
					cell = strconv.FormatFloat(v, 'f', 1, 64)
				}
				row = append(row, cell)
			}
			rows = append(rows, row)
		}
		sources = append(sources, "scale-"+e)
	}
	return table(head, rows) + "\n" + measured(r, sources...)
}
