package firewall

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// TestForgedSources: a cluster network accepts its other hosts'
// containers by source address, so a source in its subnets must come from
// where the routing table says it lives. On a host with the cluster
// network's bridge (its own block), a host-gw route to another host's
// block over the LAN, and a second dualstack network, a container is
// reached by a packet from the other host's block over the LAN, and not
// by one forged with a source of its own block from the LAN, nor by one
// forged with the other host's block from the second network, in both
// families and with both backends.
func TestForgedSources(t *testing.T) {
	for _, b := range backends {
		t.Run(string(b), func(t *testing.T) {
			host, ctr, lan, other := netnstest.New(t), netnstest.New(t), netnstest.New(t), netnstest.New(t)
			for _, ns := range []netnstest.NS{host, ctr, lan, other} {
				// No duplicate address detection on the links to come: a
				// tentative link-local address holds neighbour discovery
				// back for a second.
				nsSysctl(t, ns, "net/ipv6/conf/all/accept_dad", "0")
				nsSysctl(t, ns, "net/ipv6/conf/default/accept_dad", "0")
			}
			wire := func(peer netnstest.NS, hostEnd, peerEnd, master string) {
				host.IP(t, "link", "add", hostEnd, "type", "veth", "peer", "name", peerEnd, "netns", peer.Name)
				if master != "" {
					host.IP(t, "link", "set", hostEnd, "master", master)
				}
				host.IP(t, "link", "set", hostEnd, "up")
				peer.IP(t, "link", "set", peerEnd, "up")
			}
			addr := func(ns netnstest.NS, dev string, prefixes ...string) {
				for _, p := range prefixes {
					ns.IP(t, "addr", "add", p, "dev", dev, "nodad")
				}
			}
			for _, br := range []string{"ds-a", "ds-b"} {
				host.IP(t, "link", "add", br, "type", "bridge")
				host.IP(t, "link", "set", br, "up")
			}
			// The cluster network: this host's blocks on ds-a, the other
			// host's reached over the LAN (host-gw).
			addr(host, "ds-a", "198.51.100.1/26", "2001:db8:aa::1/80")
			wire(ctr, "vc", "eth0", "ds-a")
			addr(ctr, "eth0", "198.51.100.2/26", "2001:db8:aa::2/80")
			ctr.IP(t, "route", "add", "default", "via", "198.51.100.1")
			ctr.IP(t, "-6", "route", "add", "default", "via", "2001:db8:aa::1")
			wire(lan, "vl", "eth0", "")
			addr(host, "vl", "203.0.113.1/24", "2001:db8:ff::1/64")
			addr(lan, "eth0", "203.0.113.2/24", "2001:db8:ff::2/64",
				"198.51.100.70/32", "2001:db8:aa:0:1::70/128", // the other host's containers
				"198.51.100.9/32", "2001:db8:aa::9/128") // forged: this host's block
			lan.IP(t, "route", "add", "198.51.100.0/24", "via", "203.0.113.1")
			lan.IP(t, "-6", "route", "add", "2001:db8:aa::/64", "via", "2001:db8:ff::1")
			host.IP(t, "route", "add", "198.51.100.64/26", "via", "203.0.113.2")
			host.IP(t, "-6", "route", "add", "2001:db8:aa:0:1::/80", "via", "2001:db8:ff::2")
			// A second dualstack network whose container forges the other
			// host's addresses.
			addr(host, "ds-b", "192.0.2.1/24", "2001:db8:bb::1/64")
			wire(other, "vo", "eth0", "ds-b")
			addr(other, "eth0", "192.0.2.2/24", "2001:db8:bb::2/64", "198.51.100.71/32", "2001:db8:aa:0:1::71/128")
			other.IP(t, "route", "add", "default", "via", "192.0.2.1")
			other.IP(t, "-6", "route", "add", "default", "via", "2001:db8:bb::1")
			for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
				nsSysctl(t, host, k, "1")
			}
			// rp_filter off: the rules, not the sysctl, must do it (and
			// IPv6 has none).
			for _, k := range []string{"net/ipv4/conf/all/rp_filter", "net/ipv4/conf/default/rp_filter", "net/ipv4/conf/vl/rp_filter", "net/ipv4/conf/vo/rp_filter", "net/ipv4/conf/ds-b/rp_filter"} {
				nsSysctl(t, host, k, "0")
			}
			s := State{Networks: []Network{
				{Bridge: "ds-a", Subnets: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:aa::/64")}, ICC: true, Cluster: true, Masquerade4: true},
				{Bridge: "ds-b", Subnets: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:bb::/64")}, ICC: true, Masquerade4: true},
			}}
			in(t, host, b, func(fw *Firewall) error { return fw.Apply(s) })

			for _, c := range []struct {
				what      string
				from      netnstest.NS
				src, dst  string
				reachable bool
			}{
				{"the other host's container over the LAN", lan, "198.51.100.70", "198.51.100.2", true},
				{"the other host's container over the LAN, IPv6", lan, "2001:db8:aa:0:1::70", "2001:db8:aa::2", true},
				{"a source of this host's block forged on the LAN", lan, "198.51.100.9", "198.51.100.2", false},
				{"the same, IPv6", lan, "2001:db8:aa::9", "2001:db8:aa::2", false},
				{"the other host's source forged in another network", other, "198.51.100.71", "198.51.100.2", false},
				{"the same, IPv6", other, "2001:db8:aa:0:1::71", "2001:db8:aa::2", false},
			} {
				got := udpReaches(t, c.from, ctr, c.src, c.dst)
				if got != c.reachable {
					t.Errorf("%s (%s to %s): reached %t, want %t", c.what, c.src, c.dst, got, c.reachable)
				}
			}
		})
	}
}

func nsSysctl(t *testing.T, ns netnstest.NS, key, value string) {
	t.Helper()
	sh(t, ns, "sh", "-c", "echo "+value+" > /proc/sys/"+key)
}

// udpReaches sends datagrams from src (an address of from's) to dst (an
// address of to's), one every 100 ms, and reports whether one arrives
// within 1.5 s (the first may wait for neighbour discovery).
func udpReaches(t *testing.T, from, to netnstest.NS, src, dst string) bool {
	t.Helper()
	d := netip.MustParseAddr(dst)
	var conn *net.UDPConn
	if err := netns.Do(to.Path, func() (err error) {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: d.AsSlice()})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	if err := netns.Do(from.Path, func() error {
		c, err := net.DialUDP("udp", &net.UDPAddr{IP: netip.MustParseAddr(src).AsSlice()}, &net.UDPAddr{IP: d.AsSlice(), Port: port})
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			for range 15 {
				if _, err := c.Write([]byte("hello")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
	buf := make([]byte, 16)
	_, err := conn.Read(buf)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
