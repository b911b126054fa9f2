package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
)

// Results are figures of make bench by source: the figures the docs show
// (bench/results.json), or one run's (build/bench/results.json).
type Results struct {
	Sources map[string]*Source `json:"sources"`
}

// Source is what one output file of bench/run.sh holds (engine-moby.txt
// is source engine-moby): the figures of one go test run, with when and
// where they were measured.
type Source struct {
	Date string `json:"date"` // YYYY-MM-DD, UTC
	Go   string `json:"go,omitempty"`
	CPUs int    `json:"cpus,omitempty"`
	CPU  string `json:"cpu,omitempty"`
	// Engine describes the Docker engine the run used, if any.
	Engine string `json:"engine,omitempty"`
	// Metrics are the benchmarks' figures: benchmark name (without its
	// -GOMAXPROCS suffix), unit, then one value per line the benchmark
	// printed (go test -count N prints N).
	Metrics map[string]map[string][]float64 `json:"metrics,omitempty"`
	// Series are the scale benchmark's medians: driver, then the
	// containers on the network, then the median in ms.
	Series map[string]map[int]float64 `json:"series,omitempty"`
}

// Load reads a results file; one that does not exist holds nothing.
func Load(file string) (*Results, error) {
	r := &Results{Sources: map[string]*Source{}}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if r.Sources == nil {
		r.Sources = map[string]*Source{}
	}
	return r, nil
}

// Save writes r to file, indented, keys sorted.
func (r *Results) Save(file string) error {
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// Merge takes run's sources into r, each replacing the one of the same
// name unless that one was measured later, and returns the names taken.
func (r *Results) Merge(run *Results) []string {
	var taken []string
	for name, s := range run.Sources {
		if old, ok := r.Sources[name]; ok && old.Date > s.Date {
			continue
		}
		r.Sources[name] = s
		taken = append(taken, name)
	}
	sort.Strings(taken)
	return taken
}

// values are the figures of bench in unit from source, nil when it has
// none.
func (r *Results) values(source, bench, unit string) []float64 {
	s := r.Sources[source]
	if s == nil {
		return nil
	}
	return s.Metrics[bench][unit]
}

// add records one figure.
func (s *Source) add(bench, unit string, v float64) {
	if s.Metrics == nil {
		s.Metrics = map[string]map[string][]float64{}
	}
	if s.Metrics[bench] == nil {
		s.Metrics[bench] = map[string][]float64{}
	}
	s.Metrics[bench][unit] = append(s.Metrics[bench][unit], v)
}

// median is the median of vs (the mean of the two middle ones for an even
// count); vs must not be empty.
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
