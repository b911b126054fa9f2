// Package sandbox configures a container's end of a dualstack endpoint
// inside the container's network namespace (Docker's SandboxKey).
//
// Each function takes the namespace's path and works through netns.Do; the
// caller's thread never changes namespace. Writing the namespace's sysctls
// needs a writable /proc/sys: inside a Docker managed plugin, call
// sysctl.EnsureWritable once at start-up.
package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/kernel"
)

// InterfaceMatch names the container's interface. Docker renames the
// interface after moving it into the container (to eth0, eth1, ...), so the
// MAC address, which the driver chose, is the reliable key. Every field that
// is set must match; at least one must be set.
type InterfaceMatch struct {
	// MAC, if set, is the interface's MAC address.
	MAC net.HardwareAddr
	// Name, if set, is the interface's name.
	Name string
}

// String describes the match for error messages, e.g.
// "interface with MAC 0a:58:c6:33:64:0a and name eth0".
func (m InterfaceMatch) String() string {
	var parts []string
	if m.MAC != nil {
		parts = append(parts, "MAC "+m.MAC.String())
	}
	if m.Name != "" {
		parts = append(parts, "name "+m.Name)
	}
	if len(parts) == 0 {
		return "interface (no MAC or name given)"
	}
	return "interface with " + strings.Join(parts, " and ")
}

func (m InterfaceMatch) validate() error {
	if m.MAC == nil && m.Name == "" {
		return errors.New("sandbox: no interface to look for: set the MAC address or the name in InterfaceMatch")
	}
	return nil
}

// matches reports whether link is the interface m describes.
func (m InterfaceMatch) matches(link netlink.Link) bool {
	a := link.Attrs()
	if m.MAC != nil && !bytes.Equal(a.HardwareAddr, m.MAC) {
		return false
	}
	return m.Name == "" || a.Name == m.Name
}

// errNoInterface is wrapped when no link in the namespace matches.
var errNoInterface = errors.New("no such interface")

// find returns the link that m matches in the calling thread's namespace.
func find(m InterfaceMatch) (netlink.Link, error) {
	links, err := kernel.Links()
	if err != nil {
		return nil, fmt.Errorf("list links: %w", err)
	}
	var found []netlink.Link
	for _, l := range links {
		if m.matches(l) {
			found = append(found, l)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%s: %w", m, errNoInterface)
	case 1:
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, l := range found {
		names[i] = l.Attrs().Name
	}
	return nil, fmt.Errorf("%s is ambiguous: it matches %s; match by name as well",
		m, strings.Join(names, ", "))
}

// RA says how a container's interfaces handle IPv6 router advertisements.
type RA struct {
	// Accept is accept_ra: 0 ignores advertisements, 1 accepts them unless
	// forwarding, 2 even when forwarding.
	Accept int
	// SLAAC (autoconf) lets advertised prefixes add addresses; without it
	// an accepted advertisement gives routes only.
	SLAAC bool
}

func (ra RA) check() error {
	if ra.Accept < 0 || ra.Accept > 2 {
		return fmt.Errorf("sandbox: accept_ra %d is not 0 (ignore router advertisements), "+
			"1 (accept them unless forwarding) or 2 (accept them even when forwarding)", ra.Accept)
	}
	return nil
}

// RADefaultMetric is the metric of the default routes an interface that
// accepts router advertisements takes from them (ra_defrtr_metric; the
// kernel's default is 1024, the metric of the default route Docker adds
// for the gateway Join names): the kernel refuses an IPv6 default route
// when one of the same metric exists, so Docker's route and the
// advertised one would each fail if the other came first. Above 1024,
// both stay and Docker's is used.
const RADefaultMetric = 2048

// sysctls are ra's values of accept_ra and autoconf, and of
// ra_defrtr_metric if it accepts advertisements.
func (ra RA) sysctls() [][2]string {
	autoconf := "0"
	if ra.SLAAC && ra.Accept > 0 {
		autoconf = "1"
	}
	kv := [][2]string{{"accept_ra", strconv.Itoa(ra.Accept)}, {"autoconf", autoconf}}
	if ra.Accept > 0 {
		kv = append(kv, [2]string{"ra_defrtr_metric", strconv.Itoa(RADefaultMetric)})
	}
	return kv
}

// setSysctls sets each of kv under dir (net/ipv6/conf/IF/); a kernel
// older than 5.12, without ra_defrtr_metric, keeps its metric.
func setSysctls(dir string, kv [][2]string) error {
	for _, x := range kv {
		err := sysctl.Set(dir+x[0], x[1])
		if err != nil && !(x[0] == "ra_defrtr_metric" && errors.Is(err, fs.ErrNotExist)) {
			return err
		}
	}
	return nil
}

// PrepareNamespace sets, in the namespace at nsPath,
// net.ipv6.conf.{default,all}.accept_dad=0 and accept_ra, autoconf and
// ra_defrtr_metric as ra says.
//
// An interface moved into the namespace afterwards gets a fresh IPv6
// configuration copied from "default", so it starts with DAD off (its
// link-local address is never tentative) and with the wanted handling of
// router advertisements, before anyone brings it up. "all" is set as well
// because the kernel skips DAD only when both "all" and the interface say so.
func PrepareNamespace(nsPath string, ra RA) error {
	if err := ra.check(); err != nil {
		return err
	}
	err := netns.Do(nsPath, func() error {
		for _, dir := range []string{"net/ipv6/conf/default/", "net/ipv6/conf/all/"} {
			if err := setSysctls(dir, append([][2]string{{"accept_dad", "0"}}, ra.sysctls()...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sandbox %s: prepare namespace: %w", nsPath, err)
	}
	return nil
}

// ConfigureInterface finds the interface match describes in the namespace at
// nsPath, sets its accept_dad=0, accept_ra and autoconf as ra says, and adds every
// address in addrs (IPv6 ones with IFA_F_NODAD, so they are never
// tentative). An address already present with the same prefix length is
// left as it is; the same address with another prefix length is an error.
// It neither brings the interface up nor removes anything.
func ConfigureInterface(nsPath string, match InterfaceMatch, addrs []netip.Prefix, ra RA) error {
	if err := match.validate(); err != nil {
		return err
	}
	if err := ra.check(); err != nil {
		return err
	}
	for _, p := range addrs {
		if !p.IsValid() || p.Addr().Is4In6() || p.Addr().IsUnspecified() || p.Addr().Zone() != "" {
			return fmt.Errorf("sandbox %s: address %q is not a usable address/prefix-length "+
				"(write e.g. 192.0.2.10/24 or 2001:db8::10/64)", nsPath, p)
		}
	}
	err := netns.Do(nsPath, func() error {
		link, err := find(match)
		if err != nil {
			return err
		}
		name := link.Attrs().Name
		dir := "net/ipv6/conf/" + name + "/"
		if err := setSysctls(dir, append([][2]string{{"accept_dad", "0"}}, ra.sysctls()...)); err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		have, err := kernel.Addrs(link, netlink.FAMILY_ALL)
		if err != nil {
			return fmt.Errorf("interface %s: list addresses: %w", name, err)
		}
	next:
		for _, p := range addrs {
			for _, h := range have {
				if kernel.SameAddr(h, p) {
					continue next
				}
			}
			if err := netlink.AddrAdd(link, kernel.NetlinkAddr(p)); err != nil {
				hint := ""
				if errors.Is(err, unix.EEXIST) {
					hint = " (the address is already on the interface with another prefix length)"
				}
				return fmt.Errorf("interface %s: add address %s: %w%s", name, p, err, hint)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sandbox %s: configure %s: %w", nsPath, match, err)
	}
	return nil
}

// RemoveAddresses removes addrs from the interface match describes in the
// namespace at nsPath. It is idempotent: a namespace, interface or address
// that is already gone is success.
func RemoveAddresses(nsPath string, match InterfaceMatch, addrs []netip.Prefix) error {
	err := onInterface(nsPath, match, func(link netlink.Link) error {
		for _, p := range addrs {
			if !p.IsValid() {
				continue
			}
			err := netlink.AddrDel(link, kernel.NetlinkAddr(p))
			if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) &&
				!errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("interface %s: remove address %s: %w", link.Attrs().Name, p, err)
			}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, netns.ErrNotNamespace) || errors.Is(err, errNoInterface) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox %s: remove addresses from %s: %w", nsPath, match, err)
	}
	return nil
}

// Timed is an address with lifetimes (see SetTimed).
type Timed struct {
	Prefix           netip.Prefix
	Preferred, Valid time.Duration
}

// SetTimed puts addrs on the interface match describes in the namespace
// at nsPath, each with its lifetimes (kernel.ReplaceTimed): added where
// missing, lifetimes replaced where present. A preferred lifetime of 0
// deprecates an address; the kernel removes it when its valid lifetime
// ends.
func SetTimed(nsPath string, match InterfaceMatch, addrs []Timed) error {
	err := onInterface(nsPath, match, func(link netlink.Link) error {
		for _, a := range addrs {
			if err := kernel.ReplaceTimed(link, a.Prefix, a.Preferred, a.Valid); err != nil {
				return fmt.Errorf("interface %s: put address %s: %w", link.Attrs().Name, a.Prefix, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sandbox %s: set addresses of %s: %w", nsPath, match, err)
	}
	return nil
}

// onInterface runs fn on the interface match describes, in the namespace
// at nsPath.
func onInterface(nsPath string, match InterfaceMatch, fn func(netlink.Link) error) error {
	if err := match.validate(); err != nil {
		return err
	}
	return netns.Do(nsPath, func() error {
		link, err := find(match)
		if err != nil {
			return err
		}
		return fn(link)
	})
}
