//go:build integration

package harness

import (
	"encoding/binary"
	"encoding/json"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/sysctl"
)

// The macvlan tests (issue 5) put containers on a "LAN": a veth pair whose
// end dsmv0 is the parent on the Docker host and whose other end sits in a
// "router" namespace with 192.0.2.254, 2001:db8:1::fe and 2001:db8:2::fe.
const (
	LANParent  = "dsmv0"
	routerLink = "dsrtr0"
	Router4    = "192.0.2.254"
	Router6a   = "2001:db8:1::fe"
	Router6b   = "2001:db8:2::fe"
)

// LAN is the macvlan tests' LAN: its router's namespace.
type LAN struct{ PeerNS }

// NewLAN makes the LAN, its parent link up in the engine's namespace, and
// removes it when the test ends.
func NewLAN(t *testing.T) LAN {
	t.Helper()
	l := LAN{NewPeerNS(t, "dsrtr-", LANParent, routerLink)}
	// The router's link-local address must not be tentative when it
	// advertises.
	if err := netns.Do(l.Path, func() error { return sysctl.Set("net/ipv6/conf/"+routerLink+"/accept_dad", "0") }); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{Router4 + "/24", Router6a + "/64", Router6b + "/64"} {
		IPRun(t, "-n", l.Name, "addr", "add", a, "dev", routerLink, "nodad")
	}
	IPRun(t, "-n", l.Name, "link", "set", routerLink, "up")
	IPRun(t, "-n", Eng.Netns, "link", "set", LANParent, "up")
	return l
}

// Advertise makes the router send router advertisements for prefix
// (on-link, autonomous) every 300 ms until the test ends: a small sender
// instead of radvd.
func (l LAN) Advertise(t *testing.T, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	var fd int
	var ifindex int
	var mac net.HardwareAddr
	if err := netns.Do(l.Path, func() error {
		ifi, err := net.InterfaceByName(routerLink)
		if err != nil {
			return err
		}
		ifindex, mac = ifi.Index, ifi.HardwareAddr
		if fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_ICMPV6); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifindex)
	}); err != nil {
		t.Fatal(err)
	}
	// RFC 4861 4.2: the router advertisement, with a prefix information
	// and a source link-layer address option; the kernel fills in the
	// checksum of an ICMPv6 raw socket.
	ra := make([]byte, 16, 16+32+8)
	ra[0] = 134                                             // type
	ra[4] = 64                                              // current hop limit
	binary.BigEndian.PutUint16(ra[6:], 1800)                // router lifetime
	pi := make([]byte, 32)                                  // prefix information
	pi[0], pi[1], pi[2], pi[3] = 3, 4, byte(p.Bits()), 0xc0 // on-link, autonomous
	binary.BigEndian.PutUint32(pi[4:], 86400)               // valid lifetime
	binary.BigEndian.PutUint32(pi[8:], 14400)               // preferred lifetime
	a16 := p.Addr().As16()
	copy(pi[16:], a16[:])
	sll := append([]byte{1, 1}, mac...)
	ra = append(append(ra, pi...), sll...)
	dst := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(ifindex)}

	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done; unix.Close(fd) })
	go func() {
		defer close(done)
		tick := time.NewTicker(300 * time.Millisecond)
		defer tick.Stop()
		for {
			_ = unix.Sendto(fd, ra, 0, dst)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
}

// RouterBehind6 is an address of the router's own beyond the LAN (on its
// loopback, see Behind): reached only through a route to the router.
const RouterBehind6 = "2001:db8:ff::1"

// Behind gives the router RouterBehind6.
func (l LAN) Behind(t *testing.T) {
	t.Helper()
	IPRun(t, "-n", l.Name, "addr", "add", RouterBehind6+"/128", "dev", "lo")
}

// LinkLocal is the router's link-local address on the LAN: what its
// advertisements come from.
func (l LAN) LinkLocal(t *testing.T) string {
	t.Helper()
	var out []struct {
		AddrInfo []struct {
			Local string `json:"local"`
		} `json:"addr_info"`
	}
	raw, err := exec.Command("ip", "-n", l.Name, "-j", "-6", "addr", "show", "dev", routerLink, "scope", "link").Output()
	if err == nil {
		err = json.Unmarshal(raw, &out)
	}
	if err != nil {
		t.Fatalf("the router's link-local address: %v: %s", err, raw)
	}
	for _, o := range out {
		for _, a := range o.AddrInfo {
			if a.Local != "" { // ip lists the addresses it filtered out as {}
				return a.Local
			}
		}
	}
	t.Fatalf("the router has no link-local address: %s", raw)
	return ""
}

// MacvlanNet creates a dualstack macvlan network on the LAN.
func MacvlanNet(t *testing.T, name string, args ...string) {
	t.Helper()
	DSNet(t, name, append([]string{"-o", "mode=macvlan", "-o", "parent=" + LANParent}, args...)...)
}

// LANSubnets are the subnets of the LAN, with the router as gateway.
var LANSubnets = []string{"--ipv6", "--subnet", "192.0.2.0/24", "--gateway", Router4,
	"--subnet", "2001:db8:1::/64", "--gateway", Router6a, "--subnet", "2001:db8:2::/64", "--gateway", Router6b}
