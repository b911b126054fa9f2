// Package clustertest runs a throwaway single-member etcd for tests of the
// cluster store.
//
// By default etcd runs in-process (go.etcd.io/etcd/server/v3/embed). When
// the environment variable DUALSTACK_ETCD_BINARY names an etcd binary (for
// example Debian's /usr/bin/etcd, 3.4), that binary runs as a subprocess
// instead, so the same tests run against that version.
package clustertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// BinaryEnv is the environment variable naming an etcd binary to run
// instead of the in-process server.
const BinaryEnv = "DUALSTACK_ETCD_BINARY"

// Etcd starts a single-member etcd on 127.0.0.1 with its data in a
// t.TempDir and returns its client URL. stop stops it for real (listeners
// closed, in-process server shut down or subprocess ended), so that tests
// can see the store down; restart starts it again on the same URL with the
// same data. Both are safe to call in any order and more than once; the
// server is stopped at the end of the test.
func Etcd(t testing.TB) (endpoints []string, stop func(), restart func()) {
	t.Helper()
	srv := &server{t: t, dir: t.TempDir(), binary: os.Getenv(BinaryEnv)}
	// Ports come from binding :0 and closing, which another process may
	// take in between: try a few times with new ports.
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		srv.client, srv.peer = freeURL(t), freeURL(t)
		if err = srv.start(); err == nil {
			break
		}
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	if err != nil {
		t.Fatalf("clustertest: cannot start etcd: %v", err)
	}
	t.Cleanup(srv.stop)
	return []string{srv.client.String()}, srv.stop, func() {
		t.Helper()
		srv.stop()
		if err := srv.start(); err != nil {
			t.Fatalf("clustertest: cannot restart etcd on %s: %v", srv.client.String(), err)
		}
	}
}

var errAddrInUse = errors.New("address already in use")

// EtcdCluster starts an etcd cluster of n members in-process, each on its
// own ports and data directory, with fsync on and etcd's default timing
// (100 ms heartbeats, 1 s elections): what a production store does for
// each write, for benchmarks. It returns the members' client URLs; the
// cluster stops when tb ends.
func EtcdCluster(tb testing.TB, n int) []string {
	tb.Helper()
	cfgs := make([]*embed.Config, n)
	var initial []string
	for i := range cfgs {
		client, peer := freeURL(tb), freeURL(tb)
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = tb.TempDir()
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfgs[i] = cfg
		initial = append(initial, cfg.Name+"="+peer.String())
	}
	var endpoints []string
	started := make([]*embed.Etcd, n)
	errs := make(chan error, n)
	for i, cfg := range cfgs {
		cfg.InitialCluster = strings.Join(initial, ",")
		endpoints = append(endpoints, cfg.AdvertiseClientUrls[0].String())
		go func() {
			e, err := embed.StartEtcd(cfg)
			started[i] = e
			errs <- err
		}()
	}
	for range cfgs {
		if err := <-errs; err != nil {
			tb.Fatalf("clustertest: start an etcd member: %v", err)
		}
	}
	tb.Cleanup(func() {
		for _, e := range started {
			e.Close()
		}
	})
	for _, e := range started {
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(30 * time.Second):
			tb.Fatal("clustertest: the etcd cluster did not become ready within 30s")
		}
	}
	return endpoints
}

type server struct {
	t      testing.TB
	dir    string
	binary string
	client url.URL
	peer   url.URL

	mu      sync.Mutex
	running bool
	e       *embed.Etcd
	cmd     *exec.Cmd
	exited  chan struct{}
	log     *bytes.Buffer
}

func freeURL(t testing.TB) url.URL {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clustertest: no free port on 127.0.0.1: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return url.URL{Scheme: "http", Host: addr}
}

func (s *server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	var err error
	if s.binary != "" {
		err = s.startBinary()
	} else {
		err = s.startEmbed()
	}
	s.running = err == nil
	return err
}

func (s *server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.running = false
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
}

func (s *server) startEmbed() error {
	cfg := embed.NewConfig()
	cfg.Name = "clustertest"
	cfg.Dir = s.dir
	cfg.ListenClientUrls = []url.URL{s.client}
	cfg.AdvertiseClientUrls = []url.URL{s.client}
	cfg.ListenPeerUrls = []url.URL{s.peer}
	cfg.AdvertisePeerUrls = []url.URL{s.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Fast elections and no fsync: a test server starts in well under a
	// second and writes at memory speed.
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("%w: %v", errAddrInUse, err)
		}
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
		s.e = e
		return nil
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd failed while starting: %v", err)
	case <-time.After(15 * time.Second):
		e.Close()
		return fmt.Errorf("etcd did not become ready within 15s")
	}
}

func (s *server) startBinary() error {
	c, p := s.client.String(), s.peer.String()
	s.log = &bytes.Buffer{}
	cmd := exec.Command(s.binary,
		"--name", "clustertest",
		"--data-dir", filepath.Join(s.dir, "data"),
		"--listen-client-urls", c, "--advertise-client-urls", c,
		"--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
		"--initial-cluster", "clustertest="+p,
		"--heartbeat-interval", "10", "--election-timeout", "100",
		"--logger", "zap", "--log-outputs", "stderr", "--log-level", "error",
	)
	// The test's environment must not configure this etcd (ETCD_* variables
	// are read as flags).
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout = io.Discard
	cmd.Stderr = &lockedWriter{w: s.log}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot run %s (%s): %v", s.binary, BinaryEnv, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			out := cmd.Stderr.(*lockedWriter).String()
			if strings.Contains(out, "address already in use") {
				return fmt.Errorf("%w: %s", errAddrInUse, lastLines(out))
			}
			return fmt.Errorf("%s exited while starting: %s", s.binary, lastLines(out))
		default:
		}
		if healthy(c) {
			s.cmd, s.exited = cmd, exited
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	<-exited
	return fmt.Errorf("%s did not become healthy within 15s: %s", s.binary, lastLines(cmd.Stderr.(*lockedWriter).String()))
}

// healthy asks etcd's /health, which says true once it has a leader.
func healthy(clientURL string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}
