package sandboxkey

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// privateEngine stands for dockerd on a host whose mounts are private: a
// process in a mount namespace of its own, in which nothing propagates to
// or from the test's. dir is a directory both see; mounts made below it in
// the engine's namespace are invisible to the test's.
type privateEngine struct {
	pid int
	dir string
}

func newPrivateEngine(t *testing.T) privateEngine {
	t.Helper()
	netnstest.Skip(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs util-linux's unshare")
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	own, _ := os.Readlink("/proc/self/ns/mnt")
	deadline := time.Now().Add(5 * time.Second)
	for {
		theirs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if theirs != "" && theirs != own && strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("unshare did not enter a mount namespace of its own")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return privateEngine{pid: cmd.Process.Pid, dir: t.TempDir()}
}

// sh runs a shell script in the engine's mount namespace.
func (e privateEngine) sh(t *testing.T, script string) {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", fmt.Sprint(e.pid), "-m", "sh", "-eu", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("in the engine's mount namespace: %s: %v: %s", script, err, out)
	}
}

// TestProcReachesPrivateMounts: a namespace the engine mounts after the
// plugin started is invisible at its path to the plugin on a private host,
// and reached through the engine's mount namespace. An absolute symlink on
// the way (as /var/run) resolves inside the engine's root: followed from
// the plugin's root it would lead to a directory without the mount.
func TestProcReachesPrivateMounts(t *testing.T) {
	sb := netnstest.New(t) // before the engine, whose mounts then hold it
	e := newPrivateEngine(t)
	real := filepath.Join(e.dir, "real")
	if err := os.MkdirAll(filepath.Join(real, "netns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(e.dir, "alias")); err != nil {
		t.Fatal(err)
	}
	// In the engine's namespace alone, real/ is a tmpfs with the sandbox's
	// namespace mounted on real/netns/c1, as dockerd does.
	e.sh(t, fmt.Sprintf("mount -t tmpfs tmpfs %[1]s && mkdir %[1]s/netns && touch %[1]s/netns/c1 && mount --bind %[2]s %[1]s/netns/c1", real, sb.Path))
	key := filepath.Join(e.dir, "alias/netns/c1")
	if err := netns.Check(key); err == nil {
		t.Fatal("the test's own mount namespace sees the engine's mount: the host is not private, the test proves nothing")
	}

	r := &Resolver{cfg: Config{Proc: "/proc", Parent: e.pid}, mech: Proc, watches: newWatchSet()}
	ns, err := r.Resolve(key, 0) // a key recorded earlier: the parent's namespace
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Check(ns.Path); err != nil {
		t.Fatalf("through the engine's mount namespace: %v", err)
	}
	if again, err := r.Resolve(key, e.pid); err != nil || again.Path != ns.Path {
		t.Fatalf("from the engine itself: %+v, %v", again, err)
	}
	if want := fmt.Sprintf("/proc/%d/root%s/netns/c1", e.pid, real); ns.Path != want {
		t.Errorf("path %s, want %s", ns.Path, want)
	}
	// The same network namespace: a link made in it shows through the path.
	sb.IP(t, "link", "add", "dstsk0", "type", "veth", "peer", "name", "dstsk1")
	out, err := exec.Command("ip", "-n", sb.Name, "link", "show", "dstsk0").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	err = netns.Do(ns.Path, func() error {
		_, err := netlink.LinkByName("dstsk0")
		return err
	})
	if err != nil {
		t.Fatalf("the namespace reached is not the sandbox's: %v", err)
	}

	// The key of a request from another process is looked up in that
	// process's mount namespace: from the test's own, it is not there.
	if ns, err := r.Resolve(key, os.Getpid()); err != nil || netns.Check(ns.Path) == nil {
		t.Fatalf("through the test's own mount namespace the key must not be reachable: %+v, %v", ns, err)
	}
}

// TestWaitWakesOnMount: Wait returns when the engine mounts the namespace,
// woken by the mount itself: the periodic recheck is set far beyond the
// test's limit, so a wait that only polled would fail.
func TestWaitWakesOnMount(t *testing.T) {
	sb := netnstest.New(t)
	e := newPrivateEngine(t)
	file := filepath.Join(e.dir, "c2")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{cfg: Config{Proc: "/proc", Parent: e.pid}, mech: Proc, watches: newWatchSet()}
	r.watches.recheck = time.Minute
	ns, err := r.Resolve(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	var returned time.Time
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { err := ns.Wait(ctx); returned = time.Now(); waited <- err }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-waited:
		t.Fatalf("Wait returned before the mount: %v", err)
	default:
	}
	e.sh(t, fmt.Sprintf("mount --bind %s %s", sb.Path, file))
	mounted := time.Now()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	if d := returned.Sub(mounted); d > 500*time.Millisecond {
		t.Fatalf("Wait returned %s after the mount: not woken by it", d)
	}
	// The watcher goes with its last waiter.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.watches.mu.Lock()
		n := len(r.watches.watches)
		r.watches.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the mount watcher outlived its waiters")
		}
		// It notices at its next wake-up: make one.
		e.sh(t, "mount -t tmpfs tmpfs "+e.dir+" && umount "+e.dir)
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWaitEndsWithContext: a namespace that never comes ends the wait with
// an error naming the key, when the caller gives up.
func TestWaitEndsWithContext(t *testing.T) {
	e := newPrivateEngine(t)
	file := filepath.Join(e.dir, "never")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := &Resolver{cfg: Config{Proc: "/proc", Parent: e.pid}, mech: Proc, watches: newWatchSet()}
	ns, err := r.Resolve(file, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = ns.Wait(ctx)
	if err == nil || !strings.Contains(err.Error(), file) || time.Since(start) > 2*time.Second {
		t.Fatalf("Wait for a namespace that never comes: %v after %s", err, time.Since(start))
	}
}

// TestNewProbesThisProcess: run outside a plugin rootfs, keys are host
// paths; inside one (a run mount that exists), the test's parent can be
// followed, so Proc is chosen.
func TestNewProbesThisProcess(t *testing.T) {
	netnstest.Skip(t)
	if r := New(Config{}); r.Mechanism() != Host || r.Problem() != nil {
		t.Fatalf("outside a rootfs: %s, %v", r.Mechanism(), r.Problem())
	}
	r := New(Config{HostRun: "/run", RunMount: t.TempDir(), Parent: os.Getppid()})
	if r.Mechanism() != Proc || r.Problem() != nil {
		t.Fatalf("with a followable parent: %s, %v", r.Mechanism(), r.Problem())
	}
	// Without a parent in sight, and a run mount that is no mount point.
	r = New(Config{HostRun: "/run", RunMount: t.TempDir()})
	if r.Mechanism() != Mount || r.Problem() == nil || !strings.Contains(r.Problem().Error(), "not a mount point") {
		t.Fatalf("without a parent: %s, %v", r.Mechanism(), r.Problem())
	}
}
