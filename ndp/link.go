package ndp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/mdlayher/ndp"
	"golang.org/x/net/ipv6"
)

// listen opens an NDP socket on link from its link-local address,
// receiving only what filter lets through.
func listen(link string, accept ...ipv6.ICMPType) (*ndp.Conn, *net.Interface, error) {
	return open(link, []ndp.Addr{ndp.LinkLocal}, accept, " (it needs a link-local IPv6 address that is not tentative)")
}

// open opens an NDP socket on link from the first of from that works,
// receiving only the ICMPv6 types in accept; why ends the error of a
// socket that cannot be opened.
func open(link string, from []ndp.Addr, accept []ipv6.ICMPType, why string) (*ndp.Conn, *net.Interface, error) {
	ifi, err := net.InterfaceByName(link)
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: %w", link, err)
	}
	// The socket names the interface by its index: Go resolves a zone
	// given by name through a cache of the process's interfaces, which
	// may be stale, or another namespace's.
	byIndex := *ifi
	byIndex.Name = strconv.Itoa(ifi.Index)
	var c *ndp.Conn
	for _, a := range from {
		if c, _, err = ndp.Listen(&byIndex, a); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open an NDP socket on %s%s: %w", link, why, err)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	for _, t := range accept {
		f.Accept(t)
	}
	if err := c.SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("filter the NDP socket on %s: %w", link, err)
	}
	return c, ifi, nil
}

// Advertise sends an unsolicited neighbour advertisement on link for each
// of addrs, to all nodes, with the override flag and link's MAC address:
// a node that already has an entry for the address (the router, a stale
// one) points it at the host at once, before its first packet.
func Advertise(link string, addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	c, ifi, err := listen(link)
	if err != nil {
		return err
	}
	defer c.Close()
	for _, a := range addrs {
		na := &ndp.NeighborAdvertisement{
			Override:      true,
			TargetAddress: a,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
		}
		if err := c.WriteTo(na, nil, netip.IPv6LinkLocalAllNodes()); err != nil {
			return fmt.Errorf("advertise %s on %s: %w", a, link, err)
		}
	}
	return nil
}

// Probe asks link's nodes who holds each of targets, with one neighbour
// solicitation each, sent together, and collects the answers that come
// within wait: the addresses held, with the MAC address that answered.
func Probe(link string, targets []netip.Addr, wait time.Duration) (map[netip.Addr]net.HardwareAddr, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	c, ifi, err := listen(link, ipv6.ICMPTypeNeighborAdvertisement)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	asked := make(map[netip.Addr]bool, len(targets))
	for _, t := range targets {
		asked[t] = true
		snm, err := ndp.SolicitedNodeMulticast(t)
		if err != nil {
			return nil, fmt.Errorf("probe %s on %s: %w", t, link, err)
		}
		ns := &ndp.NeighborSolicitation{
			TargetAddress: t,
			Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: ifi.HardwareAddr}},
		}
		if err := c.WriteTo(ns, nil, snm); err != nil {
			return nil, fmt.Errorf("probe %s on %s: %w", t, link, err)
		}
	}
	held := map[netip.Addr]net.HardwareAddr{}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	for {
		m, _, _, err := c.ReadFrom()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return held, nil
		}
		var netErr net.Error
		if errors.As(err, &netErr) {
			return held, fmt.Errorf("read the answers to probes on %s: %w", link, err)
		}
		if err != nil {
			continue // a message that does not parse
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || !asked[na.TargetAddress] {
			continue
		}
		mac := targetMAC(na)
		if bytes.Equal(mac, ifi.HardwareAddr) {
			continue // the host's own answer, for an address it proxies
		}
		held[na.TargetAddress] = mac
	}
}

// targetMAC is the MAC address an advertisement gives for its target.
func targetMAC(na *ndp.NeighborAdvertisement) net.HardwareAddr {
	for _, o := range na.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
			return l.Addr
		}
	}
	return nil
}
