package sandboxkey

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// recheck is how often waiters look again even without a mount event: a
// safety net, should the kernel's notice ever not come.
const recheck = time.Second

// Wait returns once the namespace is mounted at ns.Path, or with ctx's
// error. Engine 20.10 mounts it while the container starts, after Join.
//
// It costs nothing while it waits: the kernel wakes a reader of a mount
// namespace's mountinfo file (poll, POLLPRI) whenever a mount in that
// namespace comes or goes, and one watcher per namespace wakes every
// waiter then.
func (ns Namespace) Wait(ctx context.Context) error {
	if netns.Check(ns.Path) == nil {
		return nil
	}
	w, err := ns.r.watches.acquire(ns.mounts)
	if err != nil {
		return fmt.Errorf("watch %s for the container's network namespace: %w", ns.mounts, err)
	}
	defer ns.r.watches.release(w)
	for {
		// Take the channel before looking, so that a mount between the
		// look and the wait is not missed.
		changed := ns.r.watches.changed(w)
		if netns.Check(ns.Path) == nil {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("the container's network namespace %s is not mounted at %s: %w", ns.Key, ns.Path, ctx.Err())
		}
	}
}

// watchSet holds one watcher per mountinfo file, while anyone waits.
type watchSet struct {
	mu      sync.Mutex
	watches map[string]*watch
	recheck time.Duration
}

func newWatchSet() *watchSet {
	return &watchSet{watches: map[string]*watch{}, recheck: recheck}
}

// watch wakes its waiters when the mount table behind file changes.
type watch struct {
	// fd is the mountinfo file, opened outside Go's poller: the poller's
	// epoll would read the kernel's notice (reading it resets it) before
	// run's poll sees it.
	fd    int
	users int
	gen   chan struct{} // closed at the next change
}

func (s *watchSet) acquire(path string) (*watch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watches[path]; w != nil {
		w.users++
		return w, nil
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	w := &watch{fd: fd, users: 1, gen: make(chan struct{})}
	s.watches[path] = w
	go s.run(path, w)
	return w, nil
}

func (s *watchSet) release(w *watch) {
	s.mu.Lock()
	w.users--
	s.mu.Unlock()
}

// changed is closed at w's next change.
func (s *watchSet) changed(w *watch) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return w.gen
}

// run polls w's mountinfo file until nobody waits. Opening the file took
// the namespace's event count; poll reports POLLPRI once it moves on, and
// takes the new count.
func (s *watchSet) run(path string, w *watch) {
	defer unix.Close(w.fd)
	for {
		fds := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLPRI}}
		_, err := unix.Poll(fds, int(s.recheck/time.Millisecond))
		if err != nil && !errors.Is(err, unix.EINTR) {
			// Fall back to looking every recheck.
			time.Sleep(s.recheck)
		}
		s.mu.Lock()
		close(w.gen)
		w.gen = make(chan struct{})
		if w.users == 0 {
			delete(s.watches, path)
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}
