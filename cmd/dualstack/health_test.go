package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/metrics"
)

// serveHealth serves h on a unix socket and returns its path.
func serveHealth(t *testing.T, h http.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dualstack.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return path
}

// TestHealthCommand: dualstack health prints each check and succeeds
// when the plugin is ready; when it is not, it prints why and says not
// ready (exit 1).
func TestHealthCommand(t *testing.T) {
	h := metrics.NewHealth()
	sock := serveHealth(t, h)
	var out bytes.Buffer
	err := healthCommand([]string{"--socket", sock}, &out)
	if !errors.Is(err, errNotReady) || !strings.Contains(out.String(), "NOT READY") || !strings.Contains(out.String(), "state") {
		t.Fatalf("starting plugin: %v, printed %q", err, out.String())
	}
	h.Loaded(func() error { return errors.New("firewall: IPv6 rules: iptables-restore failed") }, nil)
	out.Reset()
	err = healthCommand([]string{"--socket", sock}, &out)
	if !errors.Is(err, errNotReady) || !strings.Contains(out.String(), "firewall       FAILS: firewall: IPv6 rules") {
		t.Fatalf("firewall failing: %v, printed %q", err, out.String())
	}
	h.Loaded(func() error { return nil }, nil)
	out.Reset()
	if err := healthCommand([]string{"--socket", sock}, &out); err != nil || !strings.HasPrefix(out.String(), "ready\n") {
		t.Fatalf("ready plugin: %v, printed %q", err, out.String())
	}
	err = healthCommand([]string{"--socket", filepath.Join(t.TempDir(), "none.sock")}, &out)
	if err == nil || errors.Is(err, errNotReady) || !strings.Contains(err.Error(), "cannot reach the plugin") {
		t.Fatalf("no plugin: %v", err)
	}
}
