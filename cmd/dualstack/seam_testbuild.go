//go:build testseam

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sirupsen/logrus"
)

// testSeams says whether this binary has the test seams: only the build
// of the end-to-end tests' plugin (go build -tags testseam, make
// plugin-test) does.
const testSeams = true

// crashSeam is the TEST_CRASH_AFTER seam of the test build: the request
// paths (comma-separated, such as /NetworkDriver.CreateNetwork) after
// whose first commit the plugin dies before it answers, as a crash would.
// nil when the variable is empty.
func crashSeam(getenv func(string) string, stateDir string, log logrus.FieldLogger) func(string) {
	var paths []string
	for _, p := range strings.Split(getenv("TEST_CRASH_AFTER"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		return nil
	}
	log.WithField("paths", strings.Join(paths, ",")).Warn("TEST_CRASH_AFTER: a test build, dying after the first commit of each of these requests")
	return crashOnce(stateDir, paths, log)
}

// crashOnce: after the first request to each of paths is served, the
// process dies before it answers, as a crash after the commit would. A
// file in the state directory remembers the crash, so that the restarted
// plugin answers Docker's retry.
func crashOnce(stateDir string, paths []string, log logrus.FieldLogger) func(string) {
	return func(path string) {
		if !slices.Contains(paths, path) {
			return
		}
		marker := filepath.Join(stateDir, "crashed-after-"+strings.ReplaceAll(strings.Trim(path, "/"), "/", "_"))
		if _, err := os.Stat(marker); err == nil {
			return
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			log.WithError(err).Error("TEST_CRASH_AFTER: cannot record the crash; not crashing")
			return
		}
		log.WithField("path", path).Warn("TEST_CRASH_AFTER: dying after the commit, before the answer")
		os.Exit(3)
	}
}
