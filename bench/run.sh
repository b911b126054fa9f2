#!/usr/bin/env bash
# bench/run.sh: the benchmarks behind docs/performance.md's figures
# (`make bench`).
#
# 1. dualstack's allocator and Docker's own default IPAM, measured in the
#    same process (bench/ipamcompare, a separate module so the main module
#    does not depend on moby);
# 2. durable RequestAddress over the plugin's unix socket (p50/p99);
# 3. fsyncs per durable allocation, counted with strace when it is present
#    (BENCH_IPAM=0 skips 1-3); the same RequestAddress in a cluster
#    network's pool, inside its host's block;
# 3b. cluster networks (BENCH_CLUSTER=0 skips): a block leased against a
#    three-member etcd, and docker run -d of 100 containers at once per
#    host on the three hosts of the cluster test bed against one host
#    (three rounds, medians);
# 3b'. routes (BENCH_ROUTES=0 skips; root): one BGP update (a learned
#    route withdrawn or learned again) with 10,000 learned routes
#    installed, driver to kernel in a throwaway namespace, in CPU per
#    update (issue 21 bounds it at 1 ms);
# 3c. BGP (BENCH_BGP=0 skips): on the routed test bed, how long a host's
#    new blocks take to reach the router (BIRD), and to leave it;
# 4. for each engine (BENCH_ENGINES, default Engine 20.10 and current
#    Moby), on a private engine (root; BENCH_ENGINE=0 skips): docker run
#    --rm, dualstack bridge against Docker's bridge, with the engine's root
#    mount private (hosts without systemd) and again with it shared
#    (systemd hosts), and the ratio of the two; docker run --rm with 1 and
#    with 500 published ports, both drivers; connect + disconnect
#    of a running container, bridge against bridge and macvlan against
#    macvlan; docker run --rm on an ndp_proxy network against a plain
#    dualstack bridge (issue 23, goal <= 1.05; BENCH_NDP=0 skips,
#    BENCH_NDP_CYCLES rounds, default 40, about a minute on Moby);
#    docker run --rm on a delegated_prefix network (issue 24, Debian's
#    kea-dhcp6-server delegating the prefix) against a plain dualstack
#    bridge and Docker's bridge (goal <= 1.05 against the plain one;
#    BENCH_DELEGATED=0 skips, BENCH_DELEGATED_CYCLES rounds, default 40,
#    about a minute on Moby);
#    docker run --rm with 1 to 500 containers on the network, both
#    drivers, plotted to docs/scale-latency.png with gnuplot; a plugin
#    restart (SIGKILL to serving) with 1 and with 500 endpoints
#    (BENCH_SCALE=0 skips; BENCH_SCALE_ENGINES picks the engines, default
#    both; BENCH_SCALE_DRIVERS=dualstack runs dualstack's series only:
#    about 15 minutes per series on Engine 20.10 and 7 on Moby on a 2-CPU
#    machine, plus the engine's release of 500 endpoints after each;
#    Engine 20.10 may keep a stale endpoint count then, see docs/performance.md).
#
# Each step leaves the output of its go test run in BENCH_OUT (default
# build/bench), one file per source (ipam.txt, engine-moby.txt, ...); at the
# end bench/report reads them into BENCH_OUT/results.json, merges them into
# bench/results.json (the figures docs/performance.md shows; a source this
# run did not measure keeps its figures) and renders docs/performance.md's
# generated tables from it. BENCH_REPORT=0 skips that last step.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-build/bench}
mkdir -p "$out"
# The previous run's figures are in bench/results.json already.
rm -f "$out"/*.txt "$out"/*.log "$out"/results.json
printf 'go: %s\ncpus: %s\n' "$(go version | cut -d' ' -f3)" "$(nproc)" >"$out/run.txt"
echo "# $(date -u +%Y-%m-%d) $(go version | cut -d' ' -f3) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

if [ "${BENCH_IPAM:-1}" = 1 ]; then
	echo "## allocator: dualstack against Docker's default IPAM (same process)"
	(cd bench/ipamcompare && go test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-3}") | tee "$out/ipam.txt" | grep -E '^Benchmark'

	echo "## allocator package"
	go test -run '^$' -bench . -benchmem ./bench/allocator/ | grep -E '^Benchmark'

	echo "## durable RequestAddress over the unix socket: a pool of one host, and a cluster network's inside its host's block"
	go test -run '^$' -bench DurableRequestAddress -benchtime 2000x ./bench/ipam/ | tee "$out/durable.txt" | grep -E '^Benchmark'
	awk '/^BenchmarkDurableRequestAddress\/single-host/ { for (i = 2; i <= NF; i++) if ($i == "p50-µs") one = $(i-1) }
	     /^BenchmarkDurableRequestAddress\/cluster/ { for (i = 2; i <= NF; i++) if ($i == "p50-µs") cl = $(i-1) }
	     END { if (one > 0) printf "ratio RequestAddress p50, cluster/single host: %.3f (%d µs against %d µs)\n", cl / one, cl, one }' "$out/durable.txt"

	if command -v strace >/dev/null; then
		echo "## fsyncs per durable allocation"
		go test -c -o "$out/ipam.test" ./bench/ipam/
		n=1000
		strace -f -c -e trace=fsync,fdatasync -o "$out/strace.txt" \
			"$out/ipam.test" -test.run '^$' -test.bench 'DurableRequestAddress/single-host' -test.benchtime ${n}x >/dev/null
		calls=$(awk '$NF ~ /^(fsync|fdatasync)$/ { s += $4 } END { print s + 0 }' "$out/strace.txt")
		# The pool request and the state file's creation add a few; per 1000
		# allocations they round away.
		awk -v c="$calls" -v n="$n" 'BEGIN { printf "%d fsync/fdatasync calls for %d allocations: %.2f per allocation\n", c, n, c / n }'
		# The same in go test's format, for bench/report.
		awk -v c="$calls" -v n="$n" 'BEGIN { printf "BenchmarkFsyncsPerAllocation %d %.2f fsyncs/op\n", n, c / n }' >"$out/fsync.txt"
	else
		echo "## fsyncs per durable allocation: skipped (apt-get install strace)"
	fi
else
	echo "## IPAM benchmarks: skipped (BENCH_IPAM=0)"
fi

if [ "${BENCH_CLUSTER:-1}" = 1 ]; then
	echo "## cluster: a block leased against a three-member etcd (in-process, fsync on)"
	go test -run '^$' -bench LeaseBlock -benchtime 300x ./bench/cluster/ | tee "$out/lease.txt" | grep -E '^Benchmark'
	if [ "$(id -u)" = 0 ] && command -v etcd >/dev/null; then
		make --no-print-directory plugin-test >/dev/null
		engines/build-moby.sh >/dev/null
		echo "## cluster: docker run -d of 100 containers at once per host, on 3 hosts (Moby, the cluster test bed) against one"
		DUALSTACK_ENGINE=moby DUALSTACK_IT_LOG_LEVEL=info go test -tags integration -count=1 -run '^$' \
			-bench ClusterRuns -benchtime 1x -timeout 40m -v ./bench/e2e/cluster/ | tee "$out/cluster-runs.txt" | grep -E '^Benchmark.*ms|each round' | sed 's/^ *bench_test.go:[0-9]*: //'
		awk '/^BenchmarkClusterRuns/ { for (i = 2; i <= NF; i++) m[$i] = $(i-1) }
		     function ratio(what, a, b) { if (b > 0) printf "ratio %s: %.3f (%.1f ms against %.1f ms per container)\n", what, a / b, a, b }
		     END {
		       ratio("docker run, 3 hosts at once on a cluster network/one host", m["dualstack-cluster-ms"], m["dualstack-one-host-ms"])
		       ratio("docker run, 3 hosts at once, cluster network/a dualstack network of each host", m["dualstack-cluster-ms"], m["dualstack-three-hosts-ms"])
		       ratio("docker run, 3 hosts at once, cluster network/Docker'"'"'s bridge", m["dualstack-cluster-ms"], m["docker-bridge-three-hosts-ms"])
		       ratio("docker run, 3 hosts at once/one host, Docker'"'"'s bridge", m["docker-bridge-three-hosts-ms"], m["docker-bridge-one-host-ms"])
		     }' "$out/cluster-runs.txt"
	else
		echo "## cluster: docker run across hosts skipped (needs root and Debian's etcd: apt-get install etcd-server etcd-client)"
	fi
else
	echo "## cluster benchmarks: skipped (BENCH_CLUSTER=0)"
fi

if [ "${BENCH_ROUTES:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
	echo "## routes: one BGP update with 10,000 learned routes installed (driver to kernel, a throwaway namespace)"
	go test -run '^$' -bench LearnedUpdate -benchtime 2000x ./bench/routes/ | tee "$out/routes.txt" | grep -E '^Benchmark'
else
	echo "## routes benchmark: skipped (BENCH_ROUTES=0, or not root)"
fi

if [ "${BENCH_BGP:-1}" = 1 ] && [ "$(id -u)" = 0 ] && command -v etcd >/dev/null && command -v bird >/dev/null; then
	make --no-print-directory plugin-test >/dev/null
	engines/build-moby.sh >/dev/null
	echo "## BGP: a host's new blocks at the router (BIRD) from their lease in etcd, and gone from docker network rm (Moby, the routed test bed)"
	DUALSTACK_ENGINE=moby DUALSTACK_IT_LOG_LEVEL=info go test -tags integration -count=1 -run '^$' \
		-bench BGPAnnounce -benchtime 20x -timeout 20m ./bench/e2e/bgp/ | tee "$out/bgp.txt" | grep -E '^Benchmark'
else
	echo "## BGP benchmarks: skipped (BENCH_BGP=0, or not root, or no etcd or bird: apt-get install etcd-server etcd-client bird2)"
fi

if [ "${BENCH_ENGINE:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
	make --no-print-directory plugin-test >/dev/null
	# The plugin logs at its default level, info, as users run it (the
	# integration suite's debug level logs every request's body).
	export DUALSTACK_IT_LOG_LEVEL=info
	for engine in ${BENCH_ENGINES:-docker.io moby}; do
		if [ "$engine" = moby ]; then
			engines/build-moby.sh >/dev/null
		fi
		echo "## engine $engine: dualstack against Docker's own drivers (same engine, same run)"
		DUALSTACK_ENGINE=$engine go test -tags integration -count=1 -run '^$' -bench 'RunRm|ConnectDisconnect' \
			-benchtime "${BENCH_CYCLES:-40}x" ./bench/e2e/engine/ | tee "$out/engine-$engine.txt" | grep -E '^(engine|Benchmark)'
		# Each benchmark reports one "<median> <network>-ms" pair per network.
		awk '/^BenchmarkRunRm/ { for (i = 2; i <= NF; i++) run[$i] = $(i-1) }
		     /^BenchmarkConnectDisconnect/ { for (i = 2; i <= NF; i++) cd[$i] = $(i-1) }
		     function ratio(what, a, b) { if (b > 0) printf "ratio %s: %.3f (median %.1f ms against %.1f ms)\n", what, a / b, a, b }
		     END {
		       ratio("docker run --rm dualstack/docker bridge", run["dualstack-ms"], run["docker-bridge-ms"])
		       ratio("connect+disconnect dualstack/docker bridge", cd["dualstack-ms"], cd["docker-bridge-ms"])
		       ratio("connect+disconnect dualstack/docker macvlan", cd["dualstack-macvlan-ms"], cd["docker-macvlan-ms"])
		     }' "$out/engine-$engine.txt"
		if [ "${BENCH_NDP:-1}" = 1 ]; then
			echo "## engine $engine: docker run --rm on an ndp_proxy network against a plain dualstack bridge"
			DUALSTACK_ENGINE=$engine go test -tags integration -count=1 -run '^$' -bench 'NDPProxy' \
				-benchtime "${BENCH_NDP_CYCLES:-40}x" ./bench/e2e/engine/ | tee "$out/ndp-$engine.txt" | grep -E '^(engine|Benchmark)'
			awk '/^BenchmarkNDPProxy/ { for (i = 2; i <= NF; i++) m[$i] = $(i-1) }
			     END { if (m["dualstack-ms"] > 0) printf "ratio docker run --rm ndp_proxy/plain dualstack bridge: %.3f (median %.1f ms against %.1f ms; goal <= 1.05)\n", m["ndp-proxy-ms"] / m["dualstack-ms"], m["ndp-proxy-ms"], m["dualstack-ms"] }' "$out/ndp-$engine.txt"
		fi
		if [ "${BENCH_DELEGATED:-1}" = 1 ] && ! command -v kea-dhcp6 >/dev/null; then
			echo "## engine $engine: delegated_prefix benchmark skipped (no kea-dhcp6: apt-get install kea-dhcp6-server)"
		elif [ "${BENCH_DELEGATED:-1}" = 1 ]; then
			echo "## engine $engine: docker run --rm on a delegated_prefix network against a plain dualstack bridge and Docker's"
			DUALSTACK_ENGINE=$engine go test -tags integration -count=1 -run '^$' -bench 'DelegatedPrefix' \
				-benchtime "${BENCH_DELEGATED_CYCLES:-40}x" ./bench/e2e/engine/ | tee "$out/delegated-$engine.txt" | grep -E '^(engine|Benchmark)'
			awk '/^BenchmarkDelegatedPrefix/ { for (i = 2; i <= NF; i++) m[$i] = $(i-1) }
			     function ratio(what, a, b) { if (b > 0) printf "ratio %s: %.3f (median %.1f ms against %.1f ms)\n", what, a / b, a, b }
			     END {
			       ratio("docker run --rm delegated_prefix/plain dualstack bridge (goal <= 1.05)", m["delegated-ms"], m["dualstack-ms"])
			       ratio("docker run --rm delegated_prefix/Docker'"'"'s bridge", m["delegated-ms"], m["docker-bridge-ms"])
			     }' "$out/delegated-$engine.txt"
		fi
		echo "## engine $engine: docker run --rm with 1 and with 500 published ports"
		DUALSTACK_ENGINE=$engine go test -tags integration -count=1 -run '^$' -bench 'Publish' \
			-benchtime "${BENCH_PUBLISH_CYCLES:-10}x" -timeout 60m ./bench/e2e/engine/ | tee "$out/publish-$engine.txt" | grep -E '^(engine|Benchmark)'
		awk '/^BenchmarkPublish/ { for (i = 2; i <= NF; i++) m[$i] = $(i-1) }
		     function ratio(what, a, b) { if (b > 0) printf "ratio %s: %.2f (median %.1f ms against %.1f ms)\n", what, a / b, a, b }
		     END {
		       ratio("docker run --rm, 500 ports against 1, dualstack", m["dualstack-500-ms"], m["dualstack-1-ms"])
		       ratio("docker run --rm, 500 ports against 1, Docker bridge", m["docker-bridge-500-ms"], m["docker-bridge-1-ms"])
		       ratio("docker run --rm with 500 ports, dualstack/Docker bridge", m["dualstack-500-ms"], m["docker-bridge-500-ms"])
		     }' "$out/publish-$engine.txt"
		# The engine above runs with its root mount private, as on hosts
		# without systemd; the same docker run --rm with a shared one, as on
		# systemd hosts (issue 12: the plugin costs no more on either).
		echo "## engine $engine: docker run --rm with the engine's root mount shared (systemd hosts) against private"
		DUALSTACK_ROOT=shared DUALSTACK_ENGINE=$engine go test -tags integration -count=1 -run '^$' -bench 'RunRm' \
			-benchtime "${BENCH_CYCLES:-40}x" ./bench/e2e/engine/ | tee "$out/engine-$engine-shared.txt" | grep -E '^(engine|Benchmark)'
		awk 'FNR == 1 { f++ }
		     /^BenchmarkRunRm/ { for (i = 2; i <= NF; i++) run[f, $i] = $(i-1) }
		     END {
		       p = run[1, "dualstack-ms"]; s = run[2, "dualstack-ms"]; dp = run[1, "docker-bridge-ms"]; ds = run[2, "docker-bridge-ms"]
		       if (s > 0 && ds > 0 && dp > 0)
		         printf "ratio docker run --rm dualstack, private/shared root: %.3f (median %.1f ms against %.1f ms); against Docker'"'"'s bridge in each run: %.3f (%.3f against %.3f)\n", p / s, p, s, (p / dp) / (s / ds), p / dp, s / ds
		     }' "$out/engine-$engine.txt" "$out/engine-$engine-shared.txt"
		if [ "${BENCH_SCALE:-1}" = 1 ] && [[ " ${BENCH_SCALE_ENGINES:-docker.io moby} " == *" $engine "* ]]; then
			echo "## engine $engine: docker run --rm with 1 to ${BENCH_SCALE_MAX:-500} containers on the network; plugin restart with 1 and with that many endpoints"
			DUALSTACK_ENGINE=$engine BENCH_SCALE_OUT="$PWD/$out/scale-$engine.txt" go test -tags integration -count=1 -run '^$' \
				-bench Scale -benchtime 1x -timeout 80m -v ./bench/e2e/engine/ | tee "$out/scale-$engine.log" |
				grep -E '^Benchmark|containers: run|plugin restart' | sed 's/^ *bench_test.go:[0-9]*: //'
		fi
	done
	if [ "${BENCH_SCALE:-1}" = 1 ] && command -v gnuplot >/dev/null; then
		plot=docs/scale-latency.png
		mkdir -p docs
		{
			echo "set terminal pngcairo size 900,520 font ',11'; set output '$plot'"
			echo "set title 'docker run --rm latency against containers already on the network ($(date -u +%Y-%m-%d))'"
			echo "set xlabel 'containers on the network'; set ylabel 'median latency (ms)'; set key top left; set grid"
			echo -n "plot "
			sep=""
			for engine in ${BENCH_SCALE_ENGINES:-docker.io moby}; do
				for drv in docker-bridge dualstack; do
					f="$out/scale-$engine-$drv.dat"
					awk -v d="$drv" '$1 == d { print $2, $3 }' "$out/scale-$engine.txt" >"$f"
					echo -n "$sep'$f' with linespoints title '$engine: $drv'"
					sep=", "
				done
			done
			echo
		} >"$out/scale.gp"
		gnuplot "$out/scale.gp" && echo "plot: $plot"
	fi
else
	echo "## engines: skipped (needs root; BENCH_ENGINE=1)"
fi

if [ "${BENCH_REPORT:-1}" = 1 ]; then
	echo "## report: $out/results.json, bench/results.json, docs/performance.md"
	go run ./bench/report "$out"
fi
