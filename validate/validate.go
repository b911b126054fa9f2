// Package validate is dualstack's catalogue of what it accepts: one
// function per kind of field a request or a setting carries (interface
// names, subnets, MTUs, MAC addresses, sandbox keys), used wherever such a
// field comes in, so that one kind of field is judged by one rule.
//
// Each refusal says what is wrong and what to do. The callers check before
// they change anything, so a refused request leaves no link, rule, record
// or allocation behind.
package validate

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"unicode"
)

// MaxNameLen is the longest interface name Linux allows (IFNAMSIZ - 1).
const MaxNameLen = 15

// LinkName checks that name is usable as a Linux interface name: 1 to 15
// bytes, not "." or "..", and no '/', ':' or white space.
func LinkName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty: give a name of 1 to 15 characters")
	case len(name) > MaxNameLen:
		return fmt.Errorf("interface name %q is %d bytes long: Linux allows at most %d", name, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed by Linux", name)
	case strings.ContainsAny(name, "/:"):
		return fmt.Errorf("interface name %q contains '/' or ':', which Linux does not allow", name)
	case strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return fmt.Errorf("interface name %q contains white space, which Linux does not allow", name)
	}
	return nil
}

// InterfaceName checks an interface name given in an option (a bridge's,
// a macvlan parent's): a name Linux allows, of letters, digits, '_', '.'
// and '-' only, not starting with '-'. The names end up in firewall rules,
// where iptables reads '+' as a wildcard ("x+" is every interface whose
// name starts with x, "+" every interface) and a leading '-' as an option,
// in ip(8) and sysctl paths, where a leading '-' is an option too, and in
// new links, whose names the kernel expands where they hold "%d".
func InterfaceName(name string) error {
	if err := LinkName(name); err != nil {
		return err
	}
	if strings.HasPrefix(name, "-") {
		return fmt.Errorf("interface name %q starts with '-', which iptables and ip(8) read as an option: give a name that starts with a letter, digit, '_' or '.'", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("interface name %q may hold only letters, digits, '_', '.' and '-' (no '+' or '%%', which iptables and the kernel read as patterns)", name)
		}
	}
	return nil
}

// ClusterName checks the name of a cluster network (-o cluster) or of a
// node (CLUSTER_NODE): 1 to 63 letters, digits, '_', '.' and '-', not
// starting with '.' or '-'. It is part of the cluster store's keys.
func ClusterName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("name %q must be 1 to 63 characters long", name)
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || (c == '.' || c == '-') && i > 0
		if !ok {
			return fmt.Errorf("name %q may hold only letters, digits, '_', '.' and '-' (and start with a letter, digit or '_')", name)
		}
	}
	return nil
}

// Shortest prefixes a network may have: a shorter one would take over the
// host's routes (a gateway's prefix route for 0.0.0.0/0 is a default
// route).
const (
	MinBits4 = 8
	MinBits6 = 32
)

// Address blocks that are no network for containers (RFC 6890): IPv4's
// "this network" (0.0.0.0/8: addresses a host uses as a source only while
// it does not know its own), its reserved block (240.0.0.0/4, the limited
// broadcast 255.255.255.255 at its end), and IPv6's ::/96 (the
// unspecified address and the deprecated IPv4-compatible ones; loopback
// and IPv4-mapped addresses are refused on their own).
var (
	thisNetwork4      = netip.MustParsePrefix("0.0.0.0/8")
	reserved4         = netip.MustParsePrefix("240.0.0.0/4")
	limitedBroadcast4 = netip.MustParsePrefix("255.255.255.255/32")
	compatible6       = netip.MustParsePrefix("::/96")
)

// Subnet checks a network's subnet: a unicast IPv4 or IPv6 network, no
// shorter than /8 (IPv4) or /32 (IPv6), outside the blocks that are no
// network for containers (loopback, link-local, multicast, 0.0.0.0/8,
// 240.0.0.0/4, ::/96).
func Subnet(p netip.Prefix) error {
	if !p.IsValid() {
		return errors.New("no subnet: give one such as 192.0.2.0/24 or 2001:db8::/64")
	}
	a := p.Addr()
	switch {
	case a.Zone() != "":
		return fmt.Errorf("subnet %s has a zone: leave it out", p)
	case a.Is4In6():
		return fmt.Errorf("subnet %s: write IPv4 subnets in dotted form", p)
	case a.Is4() && p.Bits() < MinBits4, a.Is6() && p.Bits() < MinBits6:
		min := MinBits4
		if a.Is6() {
			min = MinBits6
		}
		return fmt.Errorf("subnet %s is shorter than /%d: its gateway's route could take over the host's own (0.0.0.0/0 or ::/0 would be a default route); give a subnet of /%d or longer", p, min, min)
	case a.IsLoopback(), a.IsMulticast(), a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return fmt.Errorf("subnet %s is not a unicast network a container can use (loopback, link-local or multicast): give another", p)
	case a.IsUnspecified() && p.Bits() < a.BitLen():
		return fmt.Errorf("subnet %s is not a network a container can use: give another", p)
	}
	return reservedSubnet(p)
}

// reservedSubnet refuses a subnet that overlaps a block reserved for
// other uses, naming the block. (An IPv4 subnet of /8 or longer lies inside
// the IPv4 blocks it overlaps.)
func reservedSubnet(p netip.Prefix) error {
	const another = "give another subnet, such as one inside 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 (IPv4) or fd00::/8 (IPv6)"
	switch {
	case p.Overlaps(limitedBroadcast4):
		if p.Bits() == 32 {
			return fmt.Errorf("subnet %s is the limited broadcast address, which reaches every host of a LAN and no container: %s", p, another)
		}
		return fmt.Errorf("subnet %s is in %s, reserved for future use (RFC 1112), and holds the limited broadcast address 255.255.255.255: most hosts and routers drop its traffic; %s", p, reserved4, another)
	case p.Overlaps(reserved4):
		return fmt.Errorf("subnet %s is in %s, reserved for future use (RFC 1112): most hosts and routers drop its traffic; %s", p, reserved4, another)
	case p.Overlaps(thisNetwork4):
		return fmt.Errorf("subnet %s is in %s, \"this network\" (RFC 1122), whose addresses are only the sources of hosts that do not know their own yet: most hosts and routers drop traffic to them; %s", p, thisNetwork4, another)
	case p.Overlaps(compatible6):
		return fmt.Errorf("subnet %s overlaps %s, the unspecified address and the deprecated IPv4-compatible addresses (RFC 4291), which no host may use: %s", p, compatible6, another)
	}
	return nil
}

// MTU checks an MTU: 68 to 65535, and 1280 or more where the network
// carries IPv6 (Linux disables IPv6 on a smaller link).
func MTU(mtu int, ipv6 bool) error {
	if mtu < 68 || mtu > 65535 {
		return fmt.Errorf("MTU %d: want 68 to 65535", mtu)
	}
	if ipv6 && mtu < 1280 {
		return fmt.Errorf("MTU %d: IPv6 needs an MTU of at least 1280", mtu)
	}
	return nil
}

// MAC parses an endpoint's MAC address: a unicast Ethernet address of 6
// bytes, not all zero.
func MAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil:
		return nil, fmt.Errorf("MAC address %q: %v: write six bytes such as 02:42:c0:00:02:02", s, err)
	case len(mac) != 6:
		return nil, fmt.Errorf("MAC address %q is not an Ethernet address of 6 bytes", s)
	case mac[0]&1 != 0:
		return nil, fmt.Errorf("MAC address %q is a multicast address: give a unicast one (the lowest bit of the first byte clear)", s)
	case mac.String() == "00:00:00:00:00:00":
		return nil, fmt.Errorf("MAC address %q is all zero", s)
	}
	return mac, nil
}

// SandboxKey checks the path of a container's network namespace that
// Docker gives with a Join: an absolute, clean path of sensible length.
func SandboxKey(key string) error {
	switch {
	case key == "":
		return errors.New("no sandbox key: Docker named no network namespace for the container")
	case !filepath.IsAbs(key):
		return fmt.Errorf("sandbox key %q is not an absolute path", key)
	case len(key) > 4096 || strings.ContainsRune(key, 0):
		return fmt.Errorf("sandbox key %q is not a usable path", key)
	case filepath.Clean(key) != key:
		return fmt.Errorf("sandbox key %q is not a clean path (it has '..', '.' or repeated slashes)", key)
	}
	return nil
}
