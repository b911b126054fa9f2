#!/usr/bin/env bash
# bench/run.sh: the benchmarks behind the README's figures (`make bench`).
#
# 1. dualstack's allocator and Docker's own default IPAM, measured in the
#    same process (bench/ipamcompare, a separate module so the main module
#    does not depend on moby);
# 2. durable RequestAddress over the plugin's unix socket (p50/p99);
# 3. fsyncs per durable allocation, counted with strace when it is present;
# 4. docker network connect + disconnect of a running container, dualstack
#    bridge against Docker's own bridge and dualstack macvlan against
#    Docker's macvlan, on a private Engine (root; set BENCH_ENGINE=0 to
#    skip).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${BENCH_OUT:-build/bench}
mkdir -p "$out"
echo "# $(date -u +%Y-%m-%d) $(go version | cut -d' ' -f3) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

echo "## allocator: dualstack against Docker's default IPAM (same process)"
(cd bench/ipamcompare && go test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-3}") | tee "$out/ipam.txt" | grep -E '^Benchmark'

echo "## allocator package"
go test -run '^$' -bench . -benchmem ./ipamdriver/allocator/ | grep -E '^Benchmark'

echo "## durable RequestAddress over the unix socket"
go test -run '^$' -bench DurableRequestAddress -benchtime 2000x ./plugin/ | tee "$out/durable.txt" | grep -E '^Benchmark'

if command -v strace >/dev/null; then
	echo "## fsyncs per durable allocation"
	go test -c -o "$out/plugin.test" ./plugin/
	n=1000
	strace -f -c -e trace=fsync,fdatasync -o "$out/strace.txt" \
		"$out/plugin.test" -test.run '^$' -test.bench DurableRequestAddress -test.benchtime ${n}x >/dev/null
	calls=$(awk '$NF ~ /^(fsync|fdatasync)$/ { s += $4 } END { print s + 0 }' "$out/strace.txt")
	# The pool request and the state file's creation add a few; per 1000
	# allocations they round away.
	awk -v c="$calls" -v n="$n" 'BEGIN { printf "%d fsync/fdatasync calls for %d allocations: %.2f per allocation\n", c, n, c / n }'
else
	echo "## fsyncs per durable allocation: skipped (apt-get install strace)"
fi

if [ "${BENCH_ENGINE:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
	echo "## connect + disconnect: dualstack against Docker's own drivers (same engine, same run)"
	make --no-print-directory plugin >/dev/null
	go test -tags integration -count=1 -run '^$' -bench ConnectDisconnect -benchtime "${BENCH_CYCLES:-40}x" ./integration/ |
		tee "$out/connect.txt" | grep -E '^(engine|Benchmark)'
	awk '/\/docker-bridge/ { d = $(NF-1) } /\/dualstack(-[0-9]+)? / { s = $(NF-1) }
	     /\/docker-macvlan/ { dm = $(NF-1) } /\/dualstack-macvlan/ { sm = $(NF-1) }
	     END {
	       if (d > 0) printf "ratio bridge dualstack/docker: %.2f (median cycle %.1f ms against %.1f ms)\n", s / d, s, d
	       if (dm > 0) printf "ratio macvlan dualstack/docker: %.2f (median cycle %.1f ms against %.1f ms)\n", sm / dm, sm, dm
	     }' "$out/connect.txt"
else
	echo "## connect + disconnect: skipped (needs root; BENCH_ENGINE=1)"
fi
