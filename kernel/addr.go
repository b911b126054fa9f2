package kernel

import (
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Converting between net/netip prefixes and netlink addresses: the one
// place where dualstack decides how an address goes on a link.

// NetlinkAddr converts p to a netlink address. IPv6 addresses get
// IFA_F_NODAD, so that the kernel never marks them tentative.
func NetlinkAddr(p netip.Prefix) *netlink.Addr {
	bits := 32
	if p.Addr().Is6() {
		bits = 128
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), bits)}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

// SameAddr reports whether a is the address p, prefix length included.
func SameAddr(a netlink.Addr, p netip.Prefix) bool {
	if a.IPNet == nil {
		return false
	}
	ip, ok := netip.AddrFromSlice(a.IP)
	if !ok {
		return false
	}
	ones, _ := a.Mask.Size()
	return ip.Unmap() == p.Addr() && ones == p.Bits()
}

// IPNet converts p to the net.IPNet of a route's destination.
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Prefix converts a route's destination to a prefix; false for none.
func Prefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones).Masked(), true
}

// ReplaceTimed puts p on link with the given lifetimes, added or with
// those lifetimes replaced (IPv6: without duplicate address detection): a
// preferred lifetime of 0 deprecates it, and the kernel removes it when
// valid ends. Lifetimes are rounded up to whole seconds; Forever (or
// more) never ends.
func ReplaceTimed(link netlink.Link, p netip.Prefix, preferred, valid time.Duration) error {
	a := NetlinkAddr(p)
	a.PreferedLft = seconds(preferred)
	a.ValidLft = max(seconds(valid), 1)
	return netlink.AddrReplace(link, a)
}

func seconds(d time.Duration) int {
	switch {
	case d <= 0:
		return 0
	case d >= Forever:
		return foreverSeconds
	}
	return int((d + time.Second - 1) / time.Second)
}

// foreverSeconds is the kernel's infinite lifetime; Forever, a lifetime
// that never ends.
const (
	foreverSeconds = 0xffffffff
	Forever        = time.Duration(foreverSeconds) * time.Second
)
