package delegation

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"golang.org/x/sys/unix"
)

// servers is All_DHCP_Relay_Agents_and_Servers, where a client sends all
// its messages. No zone: the socket is bound to the uplink, and the kernel
// sends through the bound device (zone names would be looked up in
// whichever namespace Go's zone cache last read).
var servers = &net.UDPAddr{IP: dhcpv6.AllDHCPRelayAgentsAndServers, Port: dhcpv6.DefaultServerPort}

// listen opens the client's UDP socket: port 546 of any address, bound to
// uplink (SO_BINDTODEVICE), in the calling thread's network namespace.
// Clients on other uplinks bind the same port on their own devices.
func listen(uplink string) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), uplink) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp6", fmt.Sprintf("[::]:%d", dhcpv6.DefaultClientPort))
	switch {
	case errors.Is(err, unix.EADDRINUSE):
		return nil, fmt.Errorf("DHCPv6 client on uplink %s: UDP port %d is taken: another DHCPv6 client "+
			"(dhclient, systemd-networkd, NetworkManager, dhcpcd) runs on %s; stop it for %s or name another uplink: %w",
			uplink, dhcpv6.DefaultClientPort, uplink, uplink, err)
	case errors.Is(err, unix.ENODEV):
		return nil, fmt.Errorf("DHCPv6 client on uplink %s: no such interface (name an existing interface of the host): %w", uplink, err)
	case err != nil:
		return nil, fmt.Errorf("DHCPv6 client on uplink %s: open UDP port %d: %w", uplink, dhcpv6.DefaultClientPort, err)
	}
	return pc.(*net.UDPConn), nil
}

// receive reads messages from conn into rx until conn is closed. What is
// not a DHCPv6 client message is dropped.
func receive(conn *net.UDPConn, rx chan<- *dhcpv6.Message, done <-chan struct{}) {
	buf := make([]byte, 65536)
	for {
		n, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(100 * time.Millisecond) // e.g. the uplink went away
			continue
		}
		m, err := dhcpv6.MessageFromBytes(buf[:n])
		if err != nil {
			continue
		}
		select {
		case rx <- m:
		case <-done:
			return
		}
	}
}
