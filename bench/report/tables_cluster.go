package main

import "fmt"

// clusterTable: RequestAddress in a cluster network's block (durable), a
// block's lease (lease) and containers started at once on three hosts
// (cluster-runs).
func clusterTable(r *Results) string {
	durable := func(sub, unit string) []float64 {
		return micro(r.values("durable", "BenchmarkDurableRequestAddress/"+sub, unit))
	}
	inBlock := against(durable("cluster", "p50-µs"), durable("single-host", "p50-µs"))
	if inBlock != none {
		inBlock = "p50 " + inBlock + fmt.Sprintf(" (p99 %s against %s)", ms(durable("cluster", "p99-µs")), ms(durable("single-host", "p99-µs")))
	}
	lease := none
	if p50 := r.values("lease", "BenchmarkLeaseBlock", "p50-ms"); len(p50) > 0 {
		lease = fmt.Sprintf("p50 **%s**, p99 %s", ms(p50), ms(r.values("lease", "BenchmarkLeaseBlock", "p99-ms")))
	}
	runs := func(unit string) []float64 { return r.values("cluster-runs", "BenchmarkClusterRuns", unit) }
	rows := [][]string{
		{"durable RequestAddress over the socket, inside the host's block of a cluster network, against a pool of one host (same run)", inBlock, "≤ 1.1"},
		{"a block leased against a three-member etcd (in-process members, fsync on)", lease, "p50 ≤ 20 ms"},
		{"`docker run -d` of 100 containers at once per host, 3 hosts at once on a cluster network, against 100 on one host (wall time per container)",
			against(runs("dualstack-cluster-ms"), runs("dualstack-one-host-ms")), "≤ 1.2"},
		{"the same, 3 hosts at once: the cluster network against a dualstack network of each host's own",
			against(runs("dualstack-cluster-ms"), runs("dualstack-three-hosts-ms")), ""},
		{"the same, 3 hosts at once: the cluster network against Docker's bridge",
			against(runs("dualstack-cluster-ms"), runs("docker-bridge-three-hosts-ms")), ""},
		{"Docker's bridge, 3 hosts at once against one (what sharing the CPUs costs)",
			against(runs("docker-bridge-three-hosts-ms"), runs("docker-bridge-one-host-ms")), ""},
	}
	return table([]string{"benchmark", "figure", "goal"}, rows) + "\n" + measured(r, "durable", "lease", "cluster-runs")
}

// bgpTable: a host's blocks at the router and gone from it (bgp).
func bgpTable(r *Results) string {
	v := func(unit string) []float64 { return r.values("bgp", "BenchmarkBGPAnnounce", unit) }
	cell := func(what string) string {
		p50 := v(what + "-p50-ms")
		if len(p50) == 0 {
			return none
		}
		return fmt.Sprintf("p50 **%s**, slowest %s", ms(p50), ms(v(what+"-max-ms")))
	}
	rows := [][]string{
		{"a host's new IPv4 and IPv6 blocks in the router's table: from etcd reporting the lease (`etcdctl watch`) until `birdc show route` lists the block with the host's next hop",
			cell("lease-to-router"), "≤ 1 s"},
		{"the blocks gone from the router, from the start of `docker network rm`", cell("rm-to-withdrawn"), ""},
	}
	return table([]string{"benchmark", "figure", "goal"}, rows) + "\n" + measured(r, "bgp")
}

// routesTable: one BGP update with 10,000 learned routes installed
// (routes).
func routesTable(r *Results) string {
	cpu := none
	if vs := r.values("routes", "BenchmarkLearnedUpdate", "cpu-µs/op"); len(vs) > 0 {
		cpu = "**" + ms(micro(vs)) + "**"
	}
	rows := [][]string{{"CPU of the process (user and system) per update", cpu, "≤ 1 ms"}}
	return table([]string{"benchmark", "figure", "goal"}, rows) + "\n" + measured(r, "routes")
}
