package netns_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// inode returns the namespace identity of a namespace file.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// threadNetns is the inode of the calling thread's network namespace.
func threadNetns() (uint64, error) {
	var st syscall.Stat_t
	err := syscall.Stat("/proc/thread-self/ns/net", &st)
	return st.Ino, err
}

// allThreadsIn fails t unless every thread of the process is in the
// namespace with inode want.
func allThreadsIn(t *testing.T, want uint64) {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("list threads: %v", err)
	}
	for _, p := range tasks {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			continue // The thread exited meanwhile.
		}
		if st.Ino != want {
			t.Errorf("thread %s is left in network namespace %d, want %d (the host's)", p, st.Ino, want)
		}
	}
}

func TestDoEntersNamespaceAndSwitchesBack(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	root := inode(t, "/proc/self/ns/net")
	want := map[string]uint64{a.Path: inode(t, a.Path), b.Path: inode(t, b.Path)}
	// A link that exists only in a: netlink must see it inside Do only.
	a.IP(t, "link", "add", "dstva", "type", "veth", "peer", "name", "dstvb")

	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		ns := a
		if i%2 == 1 {
			ns = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := netns.Do(ns.Path, func() error {
				got, err := threadNetns()
				if err != nil {
					return err
				}
				if got != want[ns.Path] {
					t.Errorf("inside Do(%s): thread in namespace %d, want %d", ns.Name, got, want[ns.Path])
				}
				_, err = netlink.LinkByName("dstva")
				if ns == a && err != nil {
					t.Errorf("inside Do(%s): link dstva not visible: %v", ns.Name, err)
				}
				if ns == b && err == nil {
					t.Errorf("inside Do(%s): link dstva of %s visible", ns.Name, a.Name)
				}
				return nil
			})
			if err != nil {
				t.Errorf("Do(%s): %v", ns.Path, err)
			}
		}()
	}
	wg.Wait()
	if _, err := netlink.LinkByName("dstva"); err == nil {
		t.Error("link dstva visible outside Do: it was created in the host namespace")
	}
	allThreadsIn(t, root)
}

func TestDoNested(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	ia, ib := inode(t, a.Path), inode(t, b.Path)
	err := netns.Do(a.Path, func() error {
		if err := netns.Do(b.Path, func() error {
			got, _ := threadNetns()
			if got != ib {
				t.Errorf("inner Do: thread in namespace %d, want %s's", got, b.Name)
			}
			return nil
		}); err != nil {
			return err
		}
		got, _ := threadNetns()
		if got != ia {
			t.Errorf("outer Do after inner Do: thread in namespace %d, want %s's", got, a.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	allThreadsIn(t, inode(t, "/proc/self/ns/net"))
}

func TestDoReturnsFnErrorUnchanged(t *testing.T) {
	ns := netnstest.New(t)
	sentinel := errors.New("boom")
	if err := netns.Do(ns.Path, func() error { return sentinel }); err != sentinel {
		t.Fatalf("Do returned %v, want fn's own error", err)
	}
}

func TestDoPanicIsReraisedAfterSwitchingBack(t *testing.T) {
	ns := netnstest.New(t)
	root := inode(t, "/proc/self/ns/net")
	func() {
		defer func() {
			if r := recover(); r != "kaboom" {
				t.Errorf("recovered %v, want the panic value of fn", r)
			}
		}()
		_ = netns.Do(ns.Path, func() error { panic("kaboom") })
		t.Error("Do returned normally after fn panicked")
	}()
	allThreadsIn(t, root)
}

// TestDoGoexitEndsTheCaller: fn calling runtime.Goexit (as t.Fatal does)
// ends the caller's goroutine as well, after the thread has been switched
// back, instead of leaving the caller waiting forever.
func TestDoGoexitEndsTheCaller(t *testing.T) {
	ns := netnstest.New(t)
	root := inode(t, "/proc/self/ns/net")
	ended := make(chan bool, 1)
	go func() {
		goexited := true
		defer func() { ended <- goexited }()
		_ = netns.Do(ns.Path, func() error { runtime.Goexit(); return nil })
		goexited = false
	}()
	select {
	case goexited := <-ended:
		if !goexited {
			t.Error("Do returned normally after fn called runtime.Goexit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Do still waits 5 s after fn called runtime.Goexit")
	}
	allThreadsIn(t, root)
}

func TestDoErrors(t *testing.T) {
	netnstest.Skip(t)
	regular := filepath.Join(t.TempDir(), "not-a-netns")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	for _, tc := range []struct {
		name, path string
		is         error
	}{
		{"missing", missing, fs.ErrNotExist},
		{"regular file", regular, netns.ErrNotNamespace},
		{"empty", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := false
			err := netns.Do(tc.path, func() error { ran = true; return nil })
			if err == nil {
				t.Fatal("Do succeeded")
			}
			if ran {
				t.Error("fn ran although the namespace could not be entered")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %v", err, tc.is)
			}
			if tc.path != "" && !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the path %s", err, tc.path)
			}
			if tc.path != "" && errors.Is(netns.Check(tc.path), tc.is) != true {
				t.Errorf("Check(%s) = %v, want an error wrapping %v", tc.path, netns.Check(tc.path), tc.is)
			}
		})
	}
	if err := netns.Do("/proc/self/ns/net", func() error { return nil }); err != nil {
		t.Errorf("Do(/proc/self/ns/net): %v", err)
	}
}

// TestGoKeepsTheNamespace: a goroutine started with Go from inside Do
// runs in Do's namespace, not in the process's.
func TestGoKeepsTheNamespace(t *testing.T) {
	a := netnstest.New(t)
	want := inode(t, a.Path)
	got := make(chan uint64, 1)
	if err := netns.Do(a.Path, func() error {
		netns.Go(func() {
			n, err := threadNetns()
			if err != nil {
				t.Error(err)
			}
			got <- n
		})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != want {
		t.Errorf("goroutine started with Go inside Do(%s) runs in namespace %d, want %d", a.Name, n, want)
	}
}
