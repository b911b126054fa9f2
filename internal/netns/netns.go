// Package netns runs code inside another network namespace.
//
// Linux network namespaces belong to threads, not to processes, while Go
// moves goroutines between threads freely. Do therefore runs the caller's
// function on a fresh goroutine locked to its OS thread, switches only that
// thread, and switches it back afterwards. A thread that cannot be switched
// back is never handed back to the Go scheduler: its goroutine exits while
// still locked, and the runtime terminates the thread.
package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// ErrNotNamespace is wrapped by Do's error when path exists but is not a
// network namespace file (for example the bind mount behind a Docker
// SandboxKey has already been removed, leaving an empty file). Callers that
// tear down may treat it, like fs.ErrNotExist, as "the namespace is gone".
var ErrNotNamespace = errors.New("not a network namespace")

// Filesystem magic numbers (statfs f_type) of the files a network namespace
// can be opened through: nsfs for bind mounts and /proc/PID/ns/net on
// current kernels, procfs on old ones.
const (
	nsfsMagic = 0x6e736673
	procMagic = 0x9fa0
)

// Do runs fn on a locked OS thread switched into the network namespace at
// path, then switches the thread back to the namespace it was in.
//
// path is a network namespace file: a bind-mounted nsfs file such as the
// SandboxKey Docker passes to Join (/var/run/docker/netns/…), a file under
// /var/run/netns, or /proc/PID/ns/net (/proc/PID/task/TID/ns/net).
//
// Everything fn does on its own goroutine happens in that namespace: netlink
// calls, sockets it opens (they stay bound to the namespace after Do
// returns), reads and writes of /proc/sys/net. Goroutines that fn starts run
// on other threads, in other namespaces: do not rely on them.
//
// Do returns fn's error unchanged. Errors of its own name path and wrap the
// cause, so errors.Is(err, fs.ErrNotExist) tells a namespace that no longer
// exists, and errors.Is(err, ErrNotNamespace) a path that is not one. A
// panic in fn is re-raised in the caller's goroutine once the thread has
// been switched back.
func Do(path string, fn func() error) error {
	if fn == nil {
		return fmt.Errorf("netns: nothing to run in network namespace %q (nil function)", path)
	}
	target, err := openNetns(path)
	if err != nil {
		return err
	}
	defer target.Close()

	type result struct {
		err      error
		panicked bool
		panicVal any
		goexit   bool // fn called runtime.Goexit
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// Deliberately no deferred UnlockOSThread: the thread is unlocked
		// only once it is known to be back in its own namespace.

		origin, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns: cannot open the current thread's network namespace "+
				"(/proc/thread-self/ns/net) before entering %q: %w; is /proc mounted?", path, err)}
			return
		}
		defer origin.Close()

		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			// setns(2) is all-or-nothing: the thread is still at home.
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("netns: cannot enter network namespace %q: %w "+
				"(entering a namespace needs CAP_SYS_ADMIN in it and CAP_SYS_ADMIN in the caller's user namespace)",
				path, err)}
			return
		}

		// Deferred, so that it runs however fn ends: returning, panicking
		// or calling runtime.Goexit (t.Fatal in a test), which unwinds
		// this goroutine with recover() returning nil.
		res := result{goexit: true}
		defer func() {
			if r := recover(); r != nil {
				res = result{panicked: true, panicVal: r}
			}
			if err := unix.Setns(int(origin.Fd()), unix.CLONE_NEWNET); err != nil {
				// The thread is stuck in the wrong namespace. Leave it
				// locked: when this goroutine returns, the Go runtime kills
				// the thread instead of reusing it for unrelated goroutines.
				if !res.panicked && !res.goexit {
					res.err = errors.Join(res.err, fmt.Errorf("netns: cannot switch the thread back from network namespace %q: %w "+
						"(the thread has been discarded; the process is otherwise unaffected)", path, err))
				}
				done <- res
				return
			}
			runtime.UnlockOSThread()
			done <- res
		}()
		res.err = fn()
		res.goexit = false
	}()

	res := <-done
	switch {
	case res.panicked:
		panic(res.panicVal)
	case res.goexit:
		runtime.Goexit() // as fn did: a t.Fatal inside fn ends the test
	}
	return res.err
}

// openNetns opens path and checks that it is a network namespace.
func openNetns(path string) (*os.File, error) {
	if path == "" {
		return nil, fmt.Errorf("netns: empty network namespace path: " +
			"pass a namespace file such as Docker's SandboxKey or /proc/PID/ns/net")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netns: cannot open network namespace %q: %w", path, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, fmt.Errorf("netns: cannot stat network namespace %q: %w", path, err)
	}
	if st.Type != nsfsMagic && st.Type != procMagic {
		f.Close()
		return nil, fmt.Errorf("netns: %q is %w (filesystem type %#x; expected a bind-mounted nsfs file "+
			"or /proc/PID/ns/net; the namespace may have been removed already)", path, ErrNotNamespace, st.Type)
	}
	return f, nil
}

// Check reports whether path can be opened as a network namespace, with the
// same errors as Do but without switching any thread.
func Check(path string) error {
	f, err := openNetns(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Go runs fn on a goroutine of its own in the network namespace of the
// calling thread. A goroutine started with the go statement runs on any
// thread, in the process's own namespace: from inside Do (a test's
// namespace standing for the host), not in Do's. In the process's own
// namespace Go costs an open and two setns more than go; if the calling
// thread's namespace cannot be opened, fn runs as with go.
func Go(fn func()) {
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		go fn()
		return
	}
	go func() {
		defer f.Close()
		err := Do(fmt.Sprintf("/proc/self/fd/%d", f.Fd()), func() error { fn(); return nil })
		if err != nil {
			fn()
		}
	}()
}
