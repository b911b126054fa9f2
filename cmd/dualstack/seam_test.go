package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// The TEST_CRASH_AFTER seam is the end-to-end tests' alone: the production
// plugin (make plugin: config.json, a binary built without the testseam
// tag) neither declares nor honours it; the tests' plugin (make
// plugin-test) does both. These tests run in both builds: go test, and go
// test -tags testseam (make test runs both).

// pluginConfig is the part of a plugin's config.json read here.
type pluginConfig struct {
	Description string `json:"description"`
	Env         []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"env"`
}

func readConfig(t *testing.T, data []byte) (pluginConfig, []string) {
	t.Helper()
	var c pluginConfig
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("parse config.json: %v", err)
	}
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return c, names
}

// TestProductionConfigHasNoTestSeam: config.json declares no TEST_
// setting, and the tests' config (packaging/test-config.sh) is the same
// with TEST_CRASH_AFTER added, empty.
func TestProductionConfigHasNoTestSeam(t *testing.T) {
	data, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	_, names := readConfig(t, data)
	for _, n := range names {
		if strings.HasPrefix(n, "TEST_") {
			t.Errorf("config.json declares the test setting %s: docker plugin set could turn it on in production", n)
		}
	}
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("packaging/test-config.sh needs jq (apt-get install jq)")
	}
	out, err := exec.Command("../../packaging/test-config.sh", "../../config.json").Output()
	if err != nil {
		t.Fatalf("packaging/test-config.sh: %v", err)
	}
	_, testNames := readConfig(t, out)
	if want := append(slices.Clone(names), "TEST_CRASH_AFTER"); !slices.Equal(testNames, want) {
		t.Fatalf("the tests' config declares %v, want %v", testNames, want)
	}
}

// TestCrashSeamOnlyInTestBuild: with TEST_CRASH_AFTER set, only the test
// build has a seam to install.
func TestCrashSeamOnlyInTestBuild(t *testing.T) {
	env := func(k string) string {
		if k == "TEST_CRASH_AFTER" {
			return "/IpamDriver.RequestPool"
		}
		return ""
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	got := crashSeam(env, t.TempDir(), log)
	if testSeams && got == nil {
		t.Fatal("the test build ignores TEST_CRASH_AFTER")
	}
	if !testSeams && got != nil {
		t.Fatal("the production build honours TEST_CRASH_AFTER")
	}
	if crashSeam(func(string) string { return "" }, t.TempDir(), log) != nil {
		t.Fatal("a seam without TEST_CRASH_AFTER")
	}
}

// TestCrashAfterEndToEnd: the plugin started with
// TEST_CRASH_AFTER=/IpamDriver.RequestPool answers the pool and keeps
// serving in the production build; the test build dies before answering,
// once.
func TestCrashAfterEndToEnd(t *testing.T) {
	ns := netnstest.New(t)
	state := t.TempDir()
	p := startPlugin(t, ns, state, "TEST_CRASH_AFTER=/IpamDriver.RequestPool")
	code := p.call("/IpamDriver.RequestPool", `{"AddressSpace":"local","Pool":"198.51.100.0/24"}`)
	if !testSeams {
		if code != http.StatusOK || p.call("/Plugin.Activate", "") != http.StatusOK {
			t.Fatalf("the production build with TEST_CRASH_AFTER: RequestPool answered %d, then the plugin is gone:\n%s", code, p.log)
		}
		// Stopped, so that its log is read only once written.
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the plugin did not stop within 10 s of SIGTERM")
		}
		if strings.Contains(p.log.String(), "TEST_CRASH_AFTER") {
			t.Fatalf("the production build speaks of TEST_CRASH_AFTER:\n%s", p.log)
		}
		return
	}
	if code == http.StatusOK {
		t.Fatalf("the test build answered the request it should die after:\n%s", p.log)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("the test build did not die after the commit:\n%s", p.log)
	}
	if _, err := os.Stat(filepath.Join(state, "crashed-after-IpamDriver.RequestPool")); err != nil {
		t.Fatalf("no record of the crash: %v", err)
	}
	// Restarted, it answers Docker's retry.
	p = startPlugin(t, ns, state, "TEST_CRASH_AFTER=/IpamDriver.RequestPool")
	if code := p.call("/IpamDriver.RequestPool", `{"AddressSpace":"local","Pool":"198.51.100.0/24"}`); code != http.StatusOK {
		t.Fatalf("after the crash the retry was answered %d:\n%s", code, p.log)
	}
}
