//go:build !testseam

package main

import "github.com/sirupsen/logrus"

// testSeams says whether this binary has the test seams: the production
// build (make build, make plugin) has none.
const testSeams = false

// crashSeam: the production build neither declares (config.json) nor
// reads TEST_CRASH_AFTER, the seam of the end-to-end tests that has the
// plugin die before it answers; see seam_testbuild.go.
func crashSeam(func(string) string, string, logrus.FieldLogger) func(string) { return nil }
