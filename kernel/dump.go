// Package kernel is dualstack's ground floor for the kernel: listing its
// links, addresses and routes, converting between net/netip prefixes and
// netlink addresses, and the host's own networks as those listings show
// them. Every layer may import it; it imports no package of dualstack's
// but internal helpers.
//
// The listings are dumps that a concurrent change can interrupt. The
// kernel marks a netlink dump interrupted (NLM_F_DUMP_INTR) when the
// table changed while it was being read: a link, address or route came or
// went, as Docker and dualstack itself do all the time while containers
// start and stop. netlink then returns what it read with
// netlink.ErrDumpInterrupted, and the list may miss entries or hold stale
// ones. Every dump dualstack takes goes through this package, which reads
// again until a dump comes through whole.
package kernel

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
)

// attempts is how many times a dump is read before giving up: an
// interruption needs a change during the few microseconds of the read, so
// a second read nearly always comes through.
const attempts = 10

// retry calls dump until it is not interrupted, at most attempts times.
func retry[T any](what string, dump func() ([]T, error)) ([]T, error) {
	var err error
	for range attempts {
		var list []T
		list, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return nil, fmt.Errorf("the kernel's %s changed while being listed, %d times in a row; try again: %w", what, attempts, err)
}

// Links lists every link, as netlink.LinkList.
func Links() ([]netlink.Link, error) {
	return retry("links", netlink.LinkList)
}

// Addrs lists the addresses of family on link (every link if nil), as
// netlink.AddrList.
func Addrs(link netlink.Link, family int) ([]netlink.Addr, error) {
	return retry("addresses", func() ([]netlink.Addr, error) { return netlink.AddrList(link, family) })
}

// Routes lists the routes of family that match filter on the fields in
// mask, as netlink.RouteListFiltered; with a nil filter, those of the main
// table.
func Routes(family int, filter *netlink.Route, mask uint64) ([]netlink.Route, error) {
	if filter == nil {
		filter = &netlink.Route{} // netlink reads the filter's fields even with mask 0
	}
	return retry("routes", func() ([]netlink.Route, error) { return netlink.RouteListFiltered(family, filter, mask) })
}
