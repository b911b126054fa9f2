// Package macvlan creates the links of dualstack's macvlan networks in the
// calling thread's network namespace: 802.1q parents (IF.VID), the
// containers' macvlan children and the host's shim.
//
// Each function is idempotent where it can be, and a failed step leaves
// nothing it created behind.
package macvlan

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/kernel"
)

// Modes maps macvlan_mode values to the kernel's modes.
var Modes = map[string]netlink.MacvlanMode{
	"bridge":   netlink.MACVLAN_MODE_BRIDGE,
	"private":  netlink.MACVLAN_MODE_PRIVATE,
	"vepa":     netlink.MACVLAN_MODE_VEPA,
	"passthru": netlink.MACVLAN_MODE_PASSTHRU,
}

// VLAN splits a parent name of the form IF.VID (eth0.10) into the base
// interface and the VLAN ID; ok is false for any other name.
func VLAN(parent string) (base string, vid int, ok bool) {
	i := strings.LastIndexByte(parent, '.')
	if i <= 0 || i == len(parent)-1 {
		return "", 0, false
	}
	vid, err := strconv.Atoi(parent[i+1:])
	if err != nil || vid < 1 || vid > 4094 {
		return "", 0, false
	}
	return parent[:i], vid, true
}

// Exists reports whether a link named name exists.
func Exists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	switch {
	case err == nil:
		return true, nil
	case links.NotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("look up %s: %w", name, err)
}

// CreateVLAN creates the 802.1q sub-interface parent (IF.VID) on IF,
// marked as owner's, and brings it up. The kernel needs the 8021q module.
func CreateVLAN(parent, owner string) error {
	base, vid, ok := VLAN(parent)
	if !ok {
		return fmt.Errorf("parent %s: not of the form IF.VID (VLAN ID 1-4094)", parent)
	}
	b, err := netlink.LinkByName(base)
	if err != nil {
		return fmt.Errorf("parent %s: interface %s: %w: give an existing interface", parent, base, err)
	}
	link := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: parent, ParentIndex: b.Attrs().Index}, VlanId: vid}
	if err := netlink.LinkAdd(link); err != nil {
		hint := ""
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
			hint = " (is the 8021q kernel module loaded? modprobe 8021q on the host)"
		}
		return fmt.Errorf("parent %s: create VLAN %d on %s: %w%s", parent, vid, base, err, hint)
	}
	if err := links.SetMark(link, owner); err != nil {
		_ = netlink.LinkDel(link)
		return fmt.Errorf("parent %s: %w", parent, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		_ = netlink.LinkDel(link)
		return fmt.Errorf("parent %s: bring up: %w", parent, err)
	}
	return nil
}

// DeleteVLAN deletes owner's 802.1q link name; a missing link is success,
// any other link is left alone and reported.
func DeleteVLAN(name, owner string) error { return links.Delete(name, "vlan", owner) }

// ChildConfig describes a macvlan child for a container.
type ChildConfig struct {
	Name   string // in this namespace, before Docker moves it
	Parent string
	Mode   string // a key of Modes
	MTU    int    // 0: the parent's
	MAC    net.HardwareAddr
	Owner  string // marks the child as dualstack's (links.Mark)
}

// CreateChild creates a macvlan child of c.Parent, marked as c.Owner's,
// down, ready to be moved into a container. c.Owner's child left by a crash
// with the same name is replaced; any other link is an error.
func CreateChild(c ChildConfig) error {
	mode, ok := Modes[c.Mode]
	if !ok {
		return fmt.Errorf("macvlan %s: unknown mode %q", c.Name, c.Mode)
	}
	parent, err := netlink.LinkByName(c.Parent)
	if err != nil {
		return fmt.Errorf("macvlan %s: parent %s: %w: give an existing interface", c.Name, c.Parent, err)
	}
	if err := links.Delete(c.Name, "macvlan", c.Owner); err != nil {
		return fmt.Errorf("macvlan %s: replace a link left by an earlier attempt: %w", c.Name, err)
	}
	link := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: c.Name, ParentIndex: parent.Attrs().Index, MTU: c.MTU, HardwareAddr: c.MAC},
		Mode:      mode,
	}
	if err := netlink.LinkAdd(link); err != nil {
		hint := ""
		if errors.Is(err, unix.EBUSY) && c.Mode == "passthru" {
			hint = ": in passthru mode a parent takes one macvlan interface, and " + c.Parent + " has one already"
		} else if errors.Is(err, unix.EINVAL) && c.Mode != "passthru" {
			hint = ": the parent may be in passthru use by another network, or the MTU too large for it"
		}
		return fmt.Errorf("macvlan %s: create on %s (mode %s): %w%s", c.Name, c.Parent, c.Mode, err, hint)
	}
	if err := links.SetMark(link, c.Owner); err != nil {
		_ = netlink.LinkDel(link)
		return fmt.Errorf("macvlan %s: %w", c.Name, err)
	}
	return nil
}

// DeleteChild deletes owner's macvlan child still in this namespace; a
// missing link is success (Docker moved it into a container, whose end
// deletes it).
func DeleteChild(name, owner string) error {
	if err := links.Delete(name, "macvlan", owner); err != nil {
		return fmt.Errorf("macvlan %s: %w", name, err)
	}
	return nil
}

// Shim is the host's own macvlan interface on a network's LAN, through
// which the host reaches its macvlan containers and they reach the host
// (a parent cannot talk to its own macvlan children).
type Shim struct {
	Name   string
	Parent string
	// Addrs are the shim's addresses, one per family, each with its
	// subnet's length; they are set as host routes (/32, /128) so that
	// they add no route of their own.
	Addrs []netip.Prefix
	// Routes are the network's subnets, routed through the shim.
	Routes []netip.Prefix
	// Owner marks the shim as dualstack's (links.Mark); an existing link
	// is taken only if it carries that mark (or none at all, with Adopt,
	// for shims made before dualstack marked its links).
	Owner string
	Adopt bool
}

// EnsureShim creates the shim (macvlan, bridge mode) if missing and gives
// it its addresses and routes; present ones are kept.
func EnsureShim(s Shim) (err error) {
	link, err := netlink.LinkByName(s.Name)
	created := false
	if links.NotFound(err) {
		parent, perr := netlink.LinkByName(s.Parent)
		if perr != nil {
			return fmt.Errorf("host link %s: parent %s: %w", s.Name, s.Parent, perr)
		}
		link = &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: s.Name, ParentIndex: parent.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
		if err = netlink.LinkAdd(link); err != nil {
			return fmt.Errorf("host link %s: create on %s: %w", s.Name, s.Parent, err)
		}
		if err = links.SetMark(link, s.Owner); err != nil {
			_ = netlink.LinkDel(link)
			return fmt.Errorf("host link %s: %w", s.Name, err)
		}
		created = true
		if link, err = netlink.LinkByName(s.Name); err != nil {
			return fmt.Errorf("host link %s: %w", s.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("host link %s: %w", s.Name, err)
	} else if s.Adopt && link.Type() == "macvlan" && links.Owner(link) == "" {
		if err := links.SetMark(link, s.Owner); err != nil {
			return fmt.Errorf("host link %s: %w", s.Name, err)
		}
	} else if err := links.Check(link, "macvlan", s.Owner); err != nil {
		return fmt.Errorf("host link %s: %w", s.Name, err)
	}
	defer func() {
		if err != nil && created {
			_ = netlink.LinkDel(link)
		}
	}()
	for _, kv := range [][2]string{{"accept_ra", "0"}, {"accept_dad", "0"}} {
		if err := sysctl.Set("net/ipv6/conf/"+s.Name+"/"+kv[0], kv[1]); err != nil {
			return fmt.Errorf("host link %s: %w", s.Name, err)
		}
	}
	have, err := kernel.Addrs(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("host link %s: %w", s.Name, err)
	}
next:
	for _, a := range s.Addrs {
		host := netip.PrefixFrom(a.Addr(), a.Addr().BitLen())
		for _, h := range have {
			if kernel.SameAddr(h, host) {
				continue next
			}
		}
		if err := netlink.AddrAdd(link, kernel.NetlinkAddr(host)); err != nil {
			return fmt.Errorf("host link %s: add %s: %w", s.Name, host, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("host link %s: bring up: %w", s.Name, err)
	}
	for _, r := range s.Routes {
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: prefixNet(r.Masked()), Scope: netlink.SCOPE_LINK}
		if err := netlink.RouteReplace(route); err != nil {
			return fmt.Errorf("host link %s: route %s: %w", s.Name, r, err)
		}
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// DeleteShim deletes owner's shim (its addresses and routes go with it).
func DeleteShim(name, owner string) error {
	if err := links.Delete(name, "macvlan", owner); err != nil {
		return fmt.Errorf("host link %s: %w", name, err)
	}
	return nil
}
