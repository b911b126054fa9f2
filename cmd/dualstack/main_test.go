package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// TestMain runs the plugin itself when the test starts this binary as one
// (DUALSTACK_TEST_PLUGIN=1), in a network namespace of the test's.
func TestMain(m *testing.M) {
	if os.Getenv("DUALSTACK_TEST_PLUGIN") == "1" {
		main()
		return
	}
	os.Exit(netnstest.Guard(m))
}

// process is the plugin running as a process in a throwaway namespace.
type process struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	sock string
	done chan error
}

// startPlugin starts the plugin (this test binary, as main) in ns with its
// state in state and the settings env (NAME=value) besides, and waits
// until it serves.
func startPlugin(t *testing.T, ns netnstest.NS, state string, env ...string) *process {
	t.Helper()
	p := &process{log: &bytes.Buffer{}, sock: filepath.Join(state, "dualstack.sock"), done: make(chan error, 1)}
	p.cmd = exec.Command("ip", "netns", "exec", ns.Name, os.Args[0])
	p.cmd.Env = append(os.Environ(), "DUALSTACK_TEST_PLUGIN=1", "STATE_DIR="+state, "SOCKET="+p.sock, "LOG_LEVEL=debug",
		"MACHINE_ID_FILE="+filepath.Join(state, "no-machine-id"))
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { _ = p.cmd.Process.Kill() })
	deadline := time.Now().Add(10 * time.Second)
	for p.call("/Plugin.Activate", "") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not serve within 10 s:\n%s", p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func (p *process) call(path, body string) int {
	c := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", p.sock)
	}}}
	r, err := c.Post("http://plugin"+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0
	}
	r.Body.Close()
	return r.StatusCode
}

// TestSIGTERM: docker plugin disable sends SIGTERM; the plugin stops
// taking requests, finishes those under way (see the plugin package's
// TestGracefulStop), says so, and exits at once with success, well within
// the 10 seconds Docker gives it; what it committed is there at the next
// start.
func TestSIGTERM(t *testing.T) {
	ns := netnstest.New(t)
	state := t.TempDir()
	p := startPlugin(t, ns, state)
	if code := p.call("/IpamDriver.RequestPool", `{"AddressSpace":"local","Pool":"198.51.100.0/24"}`); code != http.StatusOK {
		t.Fatalf("RequestPool: %d\n%s", code, p.log)
	}
	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after SIGTERM:\n%s", p.log)
	}
	took := time.Since(sent)
	for _, want := range []string{"shutting down: finishing the requests under way", "stopped: every request under way finished"} {
		if !strings.Contains(p.log.String(), want) {
			t.Fatalf("the log does not say %q:\n%s", want, p.log)
		}
	}
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	// The next start finds the pool: a pool inside it is an overlap.
	// (The same pool again would be answered as a retry.)
	p = startPlugin(t, ns, state)
	if code := p.call("/IpamDriver.RequestPool", `{"AddressSpace":"local","Pool":"198.51.100.0/25"}`); code == http.StatusOK {
		t.Fatalf("the pool committed before SIGTERM is gone after the restart:\n%s", p.log)
	}
}

// TestRefusedAtStart: settings the plugin cannot work with stop it at
// start, saying what is wrong and what to do, before it opens its state
// (root-free: nothing touches the network).
func TestRefusedAtStart(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"CLUSTER_STORE=http://198.51.100.1:2379,https://198.51.100.2:2379"},
			[]string{"CLUSTER_STORE mixes http:// endpoints (http://198.51.100.1:2379) and https:// endpoints (https://198.51.100.2:2379)", "one scheme", "docker plugin set"}},
		{[]string{"DEFAULT_POOLS_V4=240.0.0.0/8:24"}, []string{"DEFAULT_POOLS_V4", "240.0.0.0/4, reserved"}},
	} {
		state := t.TempDir()
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "DUALSTACK_TEST_PLUGIN=1", "STATE_DIR="+state, "SOCKET="+filepath.Join(state, "dualstack.sock"),
			"MACHINE_ID_FILE="+filepath.Join(state, "no-machine-id"), "CLUSTER_NODE=host-1")
		cmd.Env = append(cmd.Env, tc.env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%v: the plugin started:\n%s", tc.env, out)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%v: the plugin's output does not say %q:\n%s", tc.env, w, out)
			}
		}
		if left, _ := os.ReadDir(state); len(left) != 0 {
			t.Errorf("%v: the refused start left %d files in the state directory", tc.env, len(left))
		}
	}
}
