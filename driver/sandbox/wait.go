package sandbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// pollInterval paces WaitInterface's fallback to listing links when the
// kernel's event stream breaks (e.g. its socket buffer overflowed).
const pollInterval = 100 * time.Millisecond

// WaitInterface returns the interface match describes as soon as it exists
// in the namespace at nsPath (for example once Docker has moved it in and
// renamed it), or ctx's error once ctx is done.
//
// It subscribes to the namespace's link events before it lists the links
// (on the same netlink socket), so a link that appears between the two is
// not missed. Should the event stream fail, it falls back to listing the
// links every 100 ms.
func WaitInterface(ctx context.Context, nsPath string, match InterfaceMatch) (netlink.Link, error) {
	if err := match.validate(); err != nil {
		return nil, err
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	err := netns.Do(nsPath, func() error {
		// The socket is opened here, in the namespace, and stays bound to
		// it; ListExisting dumps the current links after subscribing.
		return netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{ListExisting: true})
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: watch for %s: subscribe to link events: %w", nsPath, match, err)
	}
	defer func(updates <-chan netlink.LinkUpdate) {
		close(done) // Closes the socket; the receiver then closes updates.
		go func() {
			for range updates {
			}
		}()
	}(updates)

	var poll <-chan time.Time
	stream := updates
	for {
		select {
		case u, ok := <-stream:
			if !ok {
				// The event stream broke (e.g. the socket's buffer
				// overflowed): fall back to listing the links.
				stream = nil
				t := time.NewTicker(pollInterval)
				defer t.Stop()
				poll = t.C
				continue
			}
			if u.Header.Type == unix.RTM_NEWLINK && u.Link != nil && match.matches(u.Link) {
				return u.Link, nil
			}
		case <-poll:
			link, err := findIn(nsPath, match)
			if err == nil {
				return link, nil
			}
			if !errors.Is(err, errNoInterface) {
				return nil, fmt.Errorf("sandbox %s: watch for %s: %w", nsPath, match, err)
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("sandbox %s: %s did not appear: %w", nsPath, match, ctx.Err())
		}
	}
}

// findIn looks for match in the namespace; an error wrapping errNoInterface
// means it is not there (yet).
func findIn(nsPath string, match InterfaceMatch) (netlink.Link, error) {
	var link netlink.Link
	err := netns.Do(nsPath, func() error {
		l, err := find(match)
		link = l
		return err
	})
	return link, err
}
