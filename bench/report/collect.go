package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
)

// Collect reads what bench/run.sh left in dir: each NAME.txt is source
// NAME, and so is NAME.log (scale-moby.txt, the scale benchmark's series,
// and scale-moby.log, its output, are both scale-moby). A source's date is
// that of its newest file; run.txt says which Go the run used and how many
// CPUs it had, and go test which CPU. Files without figures (strace.txt)
// are no source.
func Collect(dir string) (*Results, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	env := Source{Go: runtime.Version(), CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile(filepath.Join(dir, "run.txt")); err == nil {
		parseEnv(string(b), &env)
	}
	r := &Results{Sources: map[string]*Source{}}
	for _, e := range entries {
		name, ext := e.Name(), filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".txt" && ext != ".log") || name == "run.txt" {
			continue
		}
		stem := strings.TrimSuffix(name, ext)
		s := r.Sources[stem]
		if s == nil {
			s = &Source{Go: env.Go, CPUs: env.CPUs}
			r.Sources[stem] = s
		}
		if err := collectFile(filepath.Join(dir, name), s, strings.HasPrefix(stem, "scale-") && ext == ".txt"); err != nil {
			return nil, err
		}
	}
	// go test names the CPU; a file that does not (fsync.txt) was
	// measured on the same.
	cpu := ""
	for name, s := range r.Sources {
		if len(s.Metrics) == 0 && len(s.Series) == 0 {
			delete(r.Sources, name)
		} else if s.CPU != "" {
			cpu = s.CPU
		}
	}
	for _, s := range r.Sources {
		if s.CPU == "" {
			s.CPU = cpu
		}
	}
	return r, nil
}

// collectFile adds what file holds to s; series: it is the scale
// benchmark's series.
func collectFile(file string, s *Source, series bool) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if date := info.ModTime().UTC().Format("2006-01-02"); date > s.Date {
		s.Date = date
	}
	if err := Parse(f, s, series); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// parseEnv reads run.txt's "go: go1.26.8" and "cpus: 2".
func parseEnv(text string, env *Source) {
	for _, line := range strings.Split(text, "\n") {
		key, value, ok := strings.Cut(line, ":")
		value = strings.TrimSpace(value)
		switch {
		case !ok || value == "":
		case key == "go":
			env.Go = value
		case key == "cpus":
			if n, err := strconv.Atoi(value); err == nil {
				env.CPUs = n
			}
		}
	}
}

var (
	// benchRE is a result line of go test -bench: the name (its
	// -GOMAXPROCS suffix apart), the iterations, then value-unit pairs.
	benchRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.+)$`)
	// engineRE and mobyRE are the engine lines integration/harness
	// prints at the start of a suite.
	engineRE = regexp.MustCompile(`^engine: client \S+, engine (\S+) \(API ([0-9.]+)\)`)
	mobyRE   = regexp.MustCompile(`^engine moby: dockerd \S+ (\S+) .*; runc version (\S+)`)
	// seriesRE is a line of the scale benchmark's series: driver,
	// containers, median ms.
	seriesRE = regexp.MustCompile(`^(\S+) (\d+) ([0-9.]+)$`)
)

// Parse adds to s the figures of go test output (go test -bench, -v or
// not): its result lines, its cpu line, and the engine the suite's
// harness started; series: the lines are the scale benchmark's series.
func Parse(r io.Reader, s *Source, series bool) error {
	var version, api, moby, runc string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if series {
			if m := seriesRE.FindStringSubmatch(line); m != nil {
				n, _ := strconv.Atoi(m[2])
				v, _ := strconv.ParseFloat(m[3], 64)
				if s.Series == nil {
					s.Series = map[string]map[int]float64{}
				}
				if s.Series[m[1]] == nil {
					s.Series[m[1]] = map[int]float64{}
				}
				s.Series[m[1]][n] = v
			}
			continue
		}
		if m := benchRE.FindStringSubmatch(line); m != nil {
			f := strings.Fields(m[2])
			for i := 0; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					s.add(m[1], f[i+1], v)
				}
			}
		} else if cpu, ok := strings.CutPrefix(line, "cpu: "); ok {
			s.CPU = strings.TrimSpace(cpu)
		} else if m := engineRE.FindStringSubmatch(line); m != nil {
			version, api = m[1], m[2]
		} else if m := mobyRE.FindStringSubmatch(line); m != nil {
			moby, runc = m[1], m[2]
		}
	}
	switch {
	case moby != "":
		s.Engine = fmt.Sprintf("Moby %s (API %s), runc %s", moby, api, runc)
	case version != "":
		s.Engine = fmt.Sprintf("Engine %s (API %s)", version, api)
	}
	return sc.Err()
}
