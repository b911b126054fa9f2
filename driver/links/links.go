// Package links holds what dualstack's kinds of links (bridges, veths,
// macvlans, VLANs) share: telling a missing link from other errors, and
// deleting a link only when it is of the kind dualstack made, so that a
// name clash never costs the host an interface.
package links

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NotFound tells a missing link from other errors.
func NotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return err != nil && (errors.As(err, &nf) || errors.Is(err, unix.ENODEV))
}

// DeleteKind deletes the link called name if it is of kind ("bridge",
// "veth", "macvlan", "vlan"). A missing link is success; a link of another
// kind is left alone and reported.
func DeleteKind(name, kind string) error {
	l, err := netlink.LinkByName(name)
	if NotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up link %s: %w", name, err)
	}
	if l.Type() != kind {
		return fmt.Errorf("the link named %s is a %s, not a %s: not deleting it", name, l.Type(), kind)
	}
	if err := netlink.LinkDel(l); err != nil && !NotFound(err) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}
