// Package bridge creates and removes the Linux bridge of a dualstack network
// and the veth pairs that connect containers to it.
//
// Every function acts on the network namespace of the calling thread: call
// them from the plugin's own namespace (the host's, for a plugin with host
// networking) or inside netns.Do. They are safe to repeat: Ensure adopts what
// already exists, the deletes treat a missing link as done.
package bridge

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/validate"
)

// MaxNameLen is the longest interface name Linux accepts (IFNAMSIZ - 1).
const MaxNameLen = unix.IFNAMSIZ - 1

// minIPv6MTU is the smallest MTU on which Linux runs IPv6 (RFC 8200).
const minIPv6MTU = 1280

// Config describes a bridge.
type Config struct {
	// Name is the bridge's interface name, 1 to 15 bytes.
	Name string
	// MTU is the bridge's MTU; 0 keeps the kernel's default (1500) for a new
	// bridge and leaves an adopted bridge's MTU as it is. An MTU other than
	// the bridge's current one is set explicitly, which pins it; an MTU
	// equal to the current one (1500 on a new bridge) is not pinned, and the
	// kernel then moves the bridge's MTU to its ports' smallest MTU, so give
	// every port (CreateVeth) the bridge's MTU.
	MTU int
	// Gateways are the addresses the bridge answers on, each with its
	// subnet's prefix length: 192.0.2.1/24, 2001:db8:1::1/64, ...
	Gateways []netip.Prefix
	// Owner marks the bridge as dualstack's (links.Mark); an existing
	// bridge is taken only if it carries that mark.
	Owner string
	// Adopt takes an existing bridge of that name that carries no mark at
	// all and marks it: once, for bridges made before dualstack marked
	// its links.
	Adopt bool
	// Portless is a bridge that never has a port (an internal macvlan
	// network's parent): its MAC address is not pinned. A fresh bridge
	// keeps its carrier until it has had a port or its MAC address is
	// set; without a carrier its macvlan children carry nothing.
	Portless bool
}

// SetRouteLocalnet lets the host route connections from 127.0.0.1 to the
// bridge name (net.ipv4.conf.NAME.route_localnet), which ports published on
// 127.0.0.1 need: the host's connection is translated to a container
// address but keeps its loopback source until it is masqueraded. Set it
// only once a rule drops packets to 127.0.0.0/8 that arrive from the
// bridge, or containers could reach the host's loopback services.
func SetRouteLocalnet(name string) error {
	if err := sysctl.Set("net/ipv4/conf/"+name+"/route_localnet", "1"); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return nil
}

// ValidateName checks that name is usable as a Linux interface name (see
// validate.LinkName).
func ValidateName(name string) error { return validate.LinkName(name) }

func (c Config) validate() error {
	if err := ValidateName(c.Name); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if c.Owner == "" {
		return fmt.Errorf("bridge %s: no owner to mark it with", c.Name)
	}
	if c.MTU < 0 {
		return fmt.Errorf("bridge %s: MTU %d is negative: use 0 for the kernel's default", c.Name, c.MTU)
	}
	for _, g := range c.Gateways {
		if !g.IsValid() || g.Addr().Is4In6() || g.Addr().IsUnspecified() || g.Addr().Zone() != "" {
			return fmt.Errorf("bridge %s: gateway %q is not a usable address/prefix-length "+
				"(write e.g. 192.0.2.1/24 or 2001:db8::1/64)", c.Name, g)
		}
		if g.Addr().Is6() && c.MTU > 0 && c.MTU < minIPv6MTU {
			return fmt.Errorf("bridge %s: MTU %d is below IPv6's minimum of %d, so the kernel disables IPv6 "+
				"on the bridge and gateway %s could not be added: use an MTU of at least %d",
				c.Name, c.MTU, minIPv6MTU, g, minIPv6MTU)
		}
	}
	return nil
}

// Ensure makes the bridge c.Name exist, configured as c says, and up.
//
// It creates the bridge, marked as c.Owner's, if there is no link of that
// name, and takes the bridge there if it carries that mark (or no mark at
// all, with c.Adopt); any other link is an error and is left alone. It sets the MTU
// (when c.MTU > 0), sets accept_ra=0 and accept_dad=0 on the bridge before
// bringing it up (the bridge is a router's interface: it must not configure
// itself from router advertisements, and its addresses must never be
// tentative), adds every gateway address that is missing (IPv6 ones with
// IFA_F_NODAD) and brings the bridge up. It removes nothing. Called again
// with the same Config it changes nothing.
//
// created reports whether the bridge was created by this call; if a later
// step fails, a bridge created by the call is deleted again.
func Ensure(c Config) (created bool, err error) {
	if err := c.validate(); err != nil {
		return false, err
	}
	link, err := netlink.LinkByName(c.Name)
	switch {
	case err == nil:
	case links.NotFound(err):
		link, created, err = create(c)
		if err != nil {
			return false, err
		}
	default:
		return false, fmt.Errorf("bridge %s: look up link: %w", c.Name, err)
	}
	if link.Type() != "bridge" {
		return false, fmt.Errorf("bridge %s: a link of that name exists and is a %s, not a bridge: "+
			"choose another bridge name, or remove the link (ip link del %s) if it is not in use",
			c.Name, link.Type(), c.Name)
	}
	if !created {
		if c.Adopt && links.Owner(link) == "" {
			if err := links.SetMark(link, c.Owner); err != nil {
				return false, fmt.Errorf("bridge %s: %w", c.Name, err)
			}
		} else if err := links.Check(link, "bridge", c.Owner); err != nil {
			return false, fmt.Errorf("bridge %s: %w", c.Name, err)
		}
	}
	if created {
		defer func() {
			if err != nil {
				if derr := netlink.LinkDel(link); derr != nil && !links.NotFound(derr) {
					err = errors.Join(err, fmt.Errorf("bridge %s: remove the half-configured bridge: %w", c.Name, derr))
					return
				}
				created = false
			}
		}()
	}
	if err := configure(link, c, created); err != nil {
		return created, err
	}
	return created, nil
}

func create(c Config) (netlink.Link, bool, error) {
	// No MTU here: an MTU given at creation is not "set by the user" for
	// the bridge driver, which then follows its ports' smallest MTU.
	// configure sets it afterwards, which pins it. A MAC address given
	// at creation is pinned: otherwise the bridge takes the lowest of its
	// ports' and changes it when a port with a lower one comes, and the
	// containers' neighbour entries of their gateway go stale.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: c.Name}}
	if !c.Portless {
		br.HardwareAddr = RandomMAC()
	}
	err := netlink.LinkAdd(br)
	created := err == nil
	if err != nil && !errors.Is(err, unix.EEXIST) { // EEXIST: someone else made it meanwhile.
		return nil, false, fmt.Errorf("bridge %s: create: %w (is the bridge module available? "+
			"creating links needs CAP_NET_ADMIN)", c.Name, err)
	}
	if created {
		if err := links.SetMark(br, c.Owner); err != nil {
			_ = netlink.LinkDel(br)
			return nil, false, fmt.Errorf("bridge %s: %w", c.Name, err)
		}
	}
	link, err := netlink.LinkByName(c.Name)
	if err != nil {
		if created {
			_ = netlink.LinkDel(br)
		}
		return nil, false, fmt.Errorf("bridge %s: look up the new bridge: %w", c.Name, err)
	}
	return link, created, nil
}

// RandomMAC is a random unicast, locally administered MAC address.
func RandomMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfe | 0x02
	return mac
}

func configure(link netlink.Link, c Config, created bool) error {
	attrs := link.Attrs()
	if !created && !c.Portless && len(attrs.HardwareAddr) == 6 {
		// A bridge made by an earlier version follows its ports' MAC
		// addresses: setting the one it has pins it.
		if err := netlink.LinkSetHardwareAddr(link, attrs.HardwareAddr); err != nil {
			return fmt.Errorf("bridge %s: pin its MAC address %s: %w", c.Name, attrs.HardwareAddr, err)
		}
	}
	if c.MTU > 0 && attrs.MTU != c.MTU {
		if err := netlink.LinkSetMTU(link, c.MTU); err != nil {
			return fmt.Errorf("bridge %s: set MTU %d: %w", c.Name, c.MTU, err)
		}
	}
	if err := ipv6Sysctls(c); err != nil {
		return err
	}
	if err := addAddrs(link, c); err != nil {
		return err
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bridge %s: bring up: %w", c.Name, err)
		}
	}
	return nil
}

// ipv6Sysctls turns off router-advertisement processing and DAD on the
// bridge, and makes sure IPv6 is enabled on it when it has IPv6 gateways.
// Values already right are not rewritten.
func ipv6Sysctls(c Config) error {
	has6 := false
	for _, g := range c.Gateways {
		has6 = has6 || g.Addr().Is6()
	}
	dir := "net/ipv6/conf/" + c.Name + "/"
	want := [][2]string{{"accept_ra", "0"}, {"accept_dad", "0"}}
	if has6 {
		want = append(want, [2]string{"disable_ipv6", "0"})
	}
	for _, kv := range want {
		cur, err := sysctl.Get(dir + kv[0])
		if err != nil {
			if !has6 && errors.Is(err, unix.ENOENT) {
				return nil // IPv6 is off in this kernel and not needed.
			}
			return fmt.Errorf("bridge %s: %w", c.Name, err)
		}
		if cur == kv[1] {
			continue
		}
		if err := sysctl.Set(dir+kv[0], kv[1]); err != nil {
			return fmt.Errorf("bridge %s: %w", c.Name, err)
		}
	}
	return nil
}

func addAddrs(link netlink.Link, c Config) error {
	have, err := kernel.Addrs(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("bridge %s: list addresses: %w", c.Name, err)
	}
	for _, g := range c.Gateways {
		a := kernel.NetlinkAddr(g)
		var found *netlink.Addr
		for i := range have {
			if kernel.SameAddr(have[i], g) {
				found = &have[i]
				break
			}
		}
		switch {
		case found == nil:
			if err := netlink.AddrAdd(link, a); err != nil {
				return fmt.Errorf("bridge %s: add gateway address %s: %w%s", c.Name, g, err, addrHint(err))
			}
		case g.Addr().Is6() && found.Flags&unix.IFA_F_NODAD == 0:
			// Adopted from an earlier, differently configured run: mark it
			// nodad too, without removing it.
			if err := netlink.AddrReplace(link, a); err != nil {
				return fmt.Errorf("bridge %s: set nodad on gateway address %s: %w", c.Name, g, err)
			}
		}
	}
	return nil
}

func addrHint(err error) string {
	switch {
	case errors.Is(err, unix.EEXIST):
		return " (the address is already on this link with another prefix length: remove it or fix the subnet)"
	case errors.Is(err, unix.EACCES):
		return " (IPv6 is disabled on this link: net.ipv6.conf.<link>.disable_ipv6=1)"
	}
	return ""
}

// Delete removes the bridge name that owner owns. A bridge that does not
// exist is success; any other link of that name (not a bridge, or not
// owner's) is left alone and reported. Ports still attached are detached by
// the kernel, not deleted.
func Delete(name, owner string) error {
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("bridge: %w", err)
	}
	if err := links.Delete(name, "bridge", owner); err != nil {
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	return nil
}

// Addresses lists the IPv4 and IPv6 addresses of link name, with the flags
// (IFA_F_*) the kernel reports for each.
func Addresses(name string) ([]netlink.Addr, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("link %s: look up: %w", name, err)
	}
	addrs, err := kernel.Addrs(link, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("link %s: list addresses: %w", name, err)
	}
	return addrs, nil
}
