// Package links holds what dualstack's kinds of links (bridges, veths,
// macvlans, VLANs) share: telling a missing link from other errors, and
// the mark that tells dualstack's links from everybody else's.
//
// Every link dualstack creates is marked: its alias (IFLA_IFALIAS, which
// `ip link show` prints as "alias") is "dualstack:" and its owner, such as
// "network:<network ID>" for a bridge or "endpoint:<endpoint ID>" for a
// veth pair. dualstack deletes, adopts at start and sweeps as orphans
// marked links only, so a link of the host's that happens to carry a name
// dualstack would use (a bridge created later under a recorded name, a
// "ds-" link of the administrator's) is never touched.
package links

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// markPrefix starts the alias of every link dualstack creates.
const markPrefix = "dualstack:"

// Mark is the alias of a link owner owns.
func Mark(owner string) string { return markPrefix + owner }

// SetMark marks l as owner's. The kernel ignores an alias given with the
// request that creates a link, so every creator calls this right after
// netlink.LinkAdd (and deletes the link again if it fails).
func SetMark(l netlink.Link, owner string) error {
	if err := netlink.LinkSetAlias(l, Mark(owner)); err != nil {
		return fmt.Errorf("mark link %s as dualstack's (alias %q): %w", l.Attrs().Name, Mark(owner), err)
	}
	return nil
}

// Owner is the owner l is marked with, "" for a link dualstack did not
// create.
func Owner(l netlink.Link) string {
	owner, ok := strings.CutPrefix(l.Attrs().Alias, markPrefix)
	if !ok {
		return ""
	}
	return owner
}

// NotFound tells a missing link from other errors.
func NotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return err != nil && (errors.As(err, &nf) || errors.Is(err, unix.ENODEV))
}

// ErrNotOwned is wrapped by Check's and Delete's errors for a link that is
// not the owner's: not dualstack's at all, or another owner's. On the way
// out (a network or endpoint going) it means that owner's link is gone
// already and the name is somebody else's now.
var ErrNotOwned = errors.New("not dualstack's link")

// Check fails unless l is a link of kind ("bridge", "veth", "macvlan",
// "vlan") that owner owns, naming what l is instead.
func Check(l netlink.Link, kind, owner string) error {
	name := l.Attrs().Name
	if l.Type() != kind {
		return fmt.Errorf("the link named %s is a %s, not a %s: %w", name, l.Type(), kind, ErrNotOwned)
	}
	switch got := Owner(l); {
	case got == owner:
		return nil
	case got == "":
		return fmt.Errorf("the %s named %s is %w (it has no alias %q): dualstack leaves it alone; rename or remove it if dualstack should have the name", kind, name, ErrNotOwned, Mark(owner))
	default:
		return fmt.Errorf("the %s named %s belongs to dualstack's %s, not to %s: %w", kind, name, got, owner, ErrNotOwned)
	}
}

// Delete deletes the link called name if it is a link of kind that owner
// owns. A missing link is success; any other link is left alone and
// reported.
func Delete(name, kind, owner string) error {
	l, err := netlink.LinkByName(name)
	if NotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if err := Check(l, kind, owner); err != nil {
		return fmt.Errorf("not deleting it: %w", err)
	}
	if err := netlink.LinkDel(l); err != nil && !NotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
