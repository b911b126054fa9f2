package kernel

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// fakeDump returns ErrDumpInterrupted with a partial list the first
// interrupted times, then the whole list.
func fakeDump(interrupted int, calls *int) func() ([]string, error) {
	return func() ([]string, error) {
		*calls++
		if *calls <= interrupted {
			return []string{"partial"}, fmt.Errorf("netlink: %w", netlink.ErrDumpInterrupted)
		}
		return []string{"a", "b"}, nil
	}
}

func TestRetry(t *testing.T) {
	other := errors.New("operation not permitted")
	for _, tc := range []struct {
		name        string
		interrupted int
		dump        func(calls *int) func() ([]string, error)
		want        []string
		wantErr     error
		wantCalls   int
	}{
		{name: "whole at once", interrupted: 0, want: []string{"a", "b"}, wantCalls: 1},
		{name: "interrupted twice", interrupted: 2, want: []string{"a", "b"}, wantCalls: 3},
		{name: "interrupted every time", interrupted: attempts, wantErr: netlink.ErrDumpInterrupted, wantCalls: attempts},
		{name: "other error", dump: func(calls *int) func() ([]string, error) {
			return func() ([]string, error) { *calls++; return nil, other }
		}, wantErr: other, wantCalls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			dump := fakeDump(tc.interrupted, &calls)
			if tc.dump != nil {
				dump = tc.dump(&calls)
			}
			got, err := retry("things", dump)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %q, want %q (a partial list must never be returned)", got, tc.want)
			}
			if calls != tc.wantCalls {
				t.Errorf("%d reads, want %d", calls, tc.wantCalls)
			}
		})
	}
}

// While links, addresses and routes come and go in a namespace, as they do
// on a Docker host starting containers, every dump still succeeds and
// lists at least the links that stay. Plain netlink dumps fail here with
// ErrDumpInterrupted (the count is logged).
func TestDumpsDuringChanges(t *testing.T) {
	ns := netnstest.New(t)
	nsh, err := vnetns.GetFromPath(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	// Enough links that a dump takes several messages: the kernel flags a
	// dump interrupted only between two of them.
	const stay = 150
	for i := range stay {
		if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("%sst%d", netnstest.LinkPrefix, i)}}); err != nil {
			t.Fatal(err)
		}
	}

	// The churn stops before the handle closes, whatever ends the test: a
	// closed handle would create its links in the host's namespace.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("%sch%d", netnstest.LinkPrefix, i%4)}}
			if err := h.LinkAdd(br); err == nil {
				_ = h.LinkDel(br)
			}
		}
	}()

	rawInterrupted := 0
	err = netns.Do(ns.Path, func() error {
		for range 300 {
			if _, err := netlink.LinkList(); errors.Is(err, netlink.ErrDumpInterrupted) {
				rawInterrupted++
			}
			list, err := Links()
			if err != nil {
				return err
			}
			if len(list) < stay {
				return fmt.Errorf("Links listed %d links, want at least the %d that stay", len(list), stay)
			}
			if _, err := Addrs(nil, netlink.FAMILY_ALL); err != nil {
				return err
			}
			if _, err := Routes(netlink.FAMILY_ALL, nil, 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("plain netlink.LinkList was interrupted %d times in 300 dumps", rawInterrupted)
}
