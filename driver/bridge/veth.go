package bridge

import (
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/internal/links"
)

// VethConfig describes a veth pair that connects a container to a bridge.
type VethConfig struct {
	// HostName is the end that stays in this namespace, attached to Bridge.
	HostName string
	// PeerName is the container's end; Docker moves it into the container's
	// namespace and renames it (eth0, eth1, ...).
	PeerName string
	// Bridge is the name of the bridge to attach HostName to.
	Bridge string
	// MTU is applied to both ends; 0 keeps the kernel's default (1500).
	MTU int
	// Hairpin lets the bridge send a frame back out of the port it came in
	// on, so that a container can reach itself through a published port.
	Hairpin bool
	// Isolated makes the host end an isolated bridge port: it exchanges no
	// frames with other isolated ports, only with the bridge itself and
	// ports that are not isolated. That is icc=false at layer 2, which
	// holds even where bridged traffic bypasses the packet filter (no
	// br_netfilter).
	Isolated bool
	// MAC, if set, is the container end's MAC address; otherwise the kernel
	// picks a random one.
	MAC net.HardwareAddr
	// Owner marks both ends as dualstack's (links.Mark).
	Owner string
}

func (c VethConfig) validate() error {
	for _, n := range []struct{ what, name string }{{"host end", c.HostName}, {"container end", c.PeerName}, {"bridge", c.Bridge}} {
		if err := ValidateName(n.name); err != nil {
			return fmt.Errorf("veth %s: %s: %w", c.HostName, n.what, err)
		}
	}
	if c.Owner == "" {
		return fmt.Errorf("veth %s: no owner to mark it with", c.HostName)
	}
	if c.HostName == c.PeerName {
		return fmt.Errorf("veth %s: both ends have the same name: give the container end another one", c.HostName)
	}
	if c.MTU < 0 {
		return fmt.Errorf("veth %s: MTU %d is negative: use 0 for the kernel's default", c.HostName, c.MTU)
	}
	if c.MAC != nil {
		if len(c.MAC) != 6 || c.MAC[0]&1 != 0 || isZero(c.MAC) {
			return fmt.Errorf("veth %s: MAC %q is not a unicast Ethernet address (6 bytes, lowest bit of the "+
				"first byte clear, not all zero)", c.HostName, c.MAC)
		}
	}
	return nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// CreateVeth creates a veth pair in this namespace: the host end attached to
// c.Bridge with hairpin mode as c.Hairpin says, and up; the container end
// with c.MAC (if given) and down, ready to be moved into a container. c.MTU
// applies to both ends.
//
// Both ends are marked as c.Owner's. Veths of c.Owner's left with either
// name by an earlier crash are deleted first; any other link with one of
// the names is an error. If any step fails, the pair is deleted again, so
// an error leaves no link behind.
func CreateVeth(c VethConfig) (err error) {
	if err := c.validate(); err != nil {
		return err
	}
	for _, name := range []string{c.HostName, c.PeerName} {
		// A veth left by an earlier crash is replaced; anything else is not.
		if err := links.Delete(name, "veth", c.Owner); err != nil {
			return fmt.Errorf("veth %s: replace a link left by an earlier attempt: %w", c.HostName, err)
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: c.HostName, MTU: c.MTU},
		PeerName:         c.PeerName,
		PeerHardwareAddr: c.MAC,
		PeerMTU:          uint32(c.MTU),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("veth %s: create pair %s/%s: %w (is the veth module available? "+
			"creating links needs CAP_NET_ADMIN)", c.HostName, c.HostName, c.PeerName, err)
	}
	defer func() {
		if err == nil {
			return
		}
		if derr := netlink.LinkDel(veth); derr != nil && !links.NotFound(derr) {
			err = errors.Join(err, fmt.Errorf("veth %s: roll back: delete the pair: %w; "+
				"remove it by hand: ip link del %s", c.HostName, derr, c.HostName))
		}
	}()

	host, err := netlink.LinkByName(c.HostName)
	if err != nil {
		return fmt.Errorf("veth %s: look up the new host end: %w", c.HostName, err)
	}
	peer, err := netlink.LinkByName(c.PeerName)
	if err != nil {
		return fmt.Errorf("veth %s: look up the new container end: %w", c.HostName, err)
	}
	for _, end := range []netlink.Link{host, peer} {
		if err := links.SetMark(end, c.Owner); err != nil {
			return fmt.Errorf("veth %s: %w", c.HostName, err)
		}
	}
	br, err := netlink.LinkByName(c.Bridge)
	switch {
	case links.NotFound(err):
		return fmt.Errorf("veth %s: bridge %s does not exist in this network namespace: create it first",
			c.HostName, c.Bridge)
	case err != nil:
		return fmt.Errorf("veth %s: look up bridge %s: %w", c.HostName, c.Bridge, err)
	case br.Type() != "bridge":
		return fmt.Errorf("veth %s: %s is a %s, not a bridge: cannot attach to it", c.HostName, c.Bridge, br.Type())
	}
	if err := netlink.LinkSetMaster(host, br); err != nil {
		return fmt.Errorf("veth %s: attach to bridge %s: %w", c.HostName, c.Bridge, err)
	}
	if err := netlink.LinkSetHairpin(host, c.Hairpin); err != nil {
		return fmt.Errorf("veth %s: set hairpin mode %t on bridge %s: %w", c.HostName, c.Hairpin, c.Bridge, err)
	}
	if c.Isolated {
		if err := netlink.LinkSetIsolated(host, true); err != nil {
			return fmt.Errorf("veth %s: make it an isolated port of bridge %s: %w", c.HostName, c.Bridge, err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("veth %s: bring up: %w", c.HostName, err)
	}
	return nil
}

// DeleteVeth deletes owner's veth pair whose host end is hostName
// (deleting one end deletes both). A missing link is success; any other
// link with that name is left alone and reported.
func DeleteVeth(hostName, owner string) error {
	if err := ValidateName(hostName); err != nil {
		return fmt.Errorf("veth: %w", err)
	}
	if err := links.Delete(hostName, "veth", owner); err != nil {
		return fmt.Errorf("veth %s: %w", hostName, err)
	}
	return nil
}
