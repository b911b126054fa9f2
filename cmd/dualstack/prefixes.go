package main

import (
	"fmt"
	"io"
	"time"

	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver"
)

// prefixesCommand prints the delegated prefixes' status file the plugin
// writes in its state directory: per uplink the lease, per network its
// /64s.
func prefixesCommand(args []string, stdout io.Writer, now time.Time) error {
	return statusFile[driver.PrefixStatus]{name: "prefixes", file: driver.PrefixStatusFile, missing: "a delegated_prefix network", print: printPrefixes}.run(args, stdout, now)
}

// printPrefixes writes each uplink's lease, then each network's /64s,
// with the times left counted from now.
func printPrefixes(w io.Writer, st *driver.PrefixStatus, now time.Time) {
	fmt.Fprintf(w, "written %s (%s ago)\n", st.Written.Format(time.RFC3339), now.Sub(st.Written).Round(time.Second))
	if len(st.Uplinks) == 0 {
		fmt.Fprintln(w, "no uplink: no delegated_prefix network")
	}
	for _, l := range st.Uplinks {
		fmt.Fprintf(w, "uplink %s: %s\n", l.Uplink, l.State)
		if l.Current != nil {
			fmt.Fprintf(w, "  prefix %s  %s\n", l.Current.Prefix, lifetimes(*l.Current, now))
			fmt.Fprintf(w, "  renew in %s, rebind in %s, server %s\n", left(l.Renew, now), left(l.Rebind, now), l.Server)
		} else {
			fmt.Fprintln(w, "  no prefix held")
		}
		for _, p := range l.Stale {
			fmt.Fprintf(w, "  deprecated %s  %s\n", p.Prefix, lifetimes(p, now))
		}
		fmt.Fprintf(w, "  DUID %s IAID %d\n", l.DUID, l.IAID)
		if l.Error != "" {
			fmt.Fprintf(w, "  last problem: %s\n", l.Error)
		}
	}
	for _, n := range st.Networks {
		id := n.Network
		if len(id) > 12 {
			id = id[:12]
		}
		fmt.Fprintf(w, "network %s (bridge %s, uplink %s, subnet ID %d)\n", id, n.Bridge, n.Uplink, n.SubnetID)
		if n.Current != nil {
			fmt.Fprintf(w, "  %s  %s\n", n.Current.Prefix, lifetimes(*n.Current, now))
		} else {
			fmt.Fprintln(w, "  no /64: no prefix held, or the subnet ID does not fit in it")
		}
		for _, p := range n.Deprecated {
			fmt.Fprintf(w, "  %s  deprecated, %s\n", p.Prefix, "valid "+left(p.Valid, now))
		}
	}
}

func lifetimes(p delegation.Prefix, now time.Time) string {
	return "preferred " + left(p.Preferred, now) + ", valid " + left(p.Valid, now)
}

// left is the time from now to t, in whole seconds ("0s" when past).
func left(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return max(t.Sub(now), 0).Round(time.Second).String()
}
