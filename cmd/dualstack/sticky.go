package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/addrbook"
)

// stickyCommand prints the sticky networks' status file the plugin
// writes in its state directory: per network, each container name's
// addresses, in use or kept until when.
func stickyCommand(args []string, stdout io.Writer, now time.Time) error {
	return statusFile[addrbook.StickyStatus]{name: "sticky", file: addrbook.StickyStatusFile, missing: "a network with -o sticky_addresses=true", print: printSticky}.run(args, stdout, now)
}

// printSticky writes each sticky network's reservations, with the time
// left counted from now.
func printSticky(w io.Writer, st *addrbook.StickyStatus, now time.Time) {
	fmt.Fprintf(w, "written %s (%s ago)\n", st.Written.Format(time.RFC3339), now.Sub(st.Written).Round(time.Second))
	if len(st.Networks) == 0 {
		fmt.Fprintln(w, "no sticky network")
	}
	for _, n := range st.Networks {
		id := n.Network
		if len(id) > 12 {
			id = id[:12]
		}
		if id == "" {
			id = "(no network yet)"
		}
		fmt.Fprintf(w, "network %s (hold %s; pools %s)\n", id, n.Hold, strings.Join(n.Pools, ", "))
		if len(n.Reservations) == 0 {
			fmt.Fprintln(w, "  no reservation")
		}
		for _, r := range n.Reservations {
			var addrs []string
			var until *time.Time // the earliest end of the addresses kept
			inUse := false
			for _, a := range r.Addresses {
				addrs = append(addrs, a.Address.String())
				switch {
				case a.Until == nil:
					inUse = true
				case until == nil || a.Until.Before(*until):
					until = a.Until
				}
			}
			state := "in use"
			if !inUse && until != nil {
				state = fmt.Sprintf("kept until %s (%s left)", until.Format(time.RFC3339), left(*until, now))
			}
			fmt.Fprintf(w, "  %s  %s  %s\n", r.Name, strings.Join(addrs, ", "), state)
		}
	}
}
