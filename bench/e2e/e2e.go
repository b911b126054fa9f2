//go:build integration

// Package e2e holds what the end-to-end benchmarks share. The benchmarks
// themselves are in one package per test bed, each a test binary whose
// TestMain starts its engines through integration/harness (as the
// integration suites do): engine (one private engine: docker run, connect
// and disconnect, published ports, scale and plugin restart), cluster
// (the cluster test bed) and bgp (the routed test bed). bench/run.sh
// (make bench) runs them.
package e2e

import (
	"sort"
	"time"
)

// Median sorts lat and returns its median, in milliseconds.
func Median(lat []time.Duration) float64 {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return float64(lat[len(lat)/2].Microseconds()) / 1000
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
