// Package portmap reads the ports Docker asks a network driver to publish
// (docker run -p) and reserves their host ports.
//
// Docker hands a remote driver the container's port bindings in the
// endpoint options under "com.docker.network.portmap": libnetwork's
// PortBinding values, JSON-encoded, with the protocol as its IP protocol
// number. A binding's host port may be 0 (pick one, as -p 80 or -P ask) or
// a range (-p 8000-8010:80).
//
// A reserved host port is a socket bound to it and kept open, as Docker's
// own bridge driver does: the kernel then refuses the port to every other
// program and to Docker's own port mappings, and refuses it to dualstack
// when someone else holds it, so conflicts are found whoever came first.
// The socket never sees traffic: the DNAT rules translate connections
// before they would reach it.
package portmap

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Option is the endpoint option that holds the port bindings.
const Option = "com.docker.network.portmap"

// Binding is one port binding of a container.
type Binding struct {
	Proto string `json:"proto"` // tcp, udp or sctp
	// HostIP is the host address to publish on; invalid means every
	// address of every family the container has.
	HostIP      netip.Addr `json:"hostIP,omitzero"`
	HostPort    uint16     `json:"hostPort"` // 0: any free port
	HostPortEnd uint16     `json:"hostPortEnd,omitempty"`
	Port        uint16     `json:"port"` // the container's port
}

func (b Binding) String() string {
	host := ""
	if b.HostIP.IsValid() {
		host = b.HostIP.String() + ":"
		if b.HostIP.Is6() {
			host = "[" + b.HostIP.String() + "]:"
		}
	}
	hp := strconv.Itoa(int(b.HostPort))
	if b.HostPortEnd > b.HostPort {
		hp += "-" + strconv.Itoa(int(b.HostPortEnd))
	}
	return fmt.Sprintf("%s%s:%d/%s", host, hp, b.Port, b.Proto)
}

// dockerBinding is libnetwork's types.PortBinding as JSON.
type dockerBinding struct {
	Proto       int
	IP          string
	Port        int
	HostIP      string
	HostPort    int
	HostPortEnd int
}

var protocols = map[int]string{6: "tcp", 17: "udp", 132: "sctp"}

// Parse reads the bindings from endpoint options; none is no error.
func Parse(options map[string]interface{}) ([]Binding, error) {
	v, ok := options[Option]
	if !ok || v == nil {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Option, err)
	}
	var in []dockerBinding
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("%s: want a list of port bindings: %w", Option, err)
	}
	var out []Binding
	for _, d := range in {
		b := Binding{Proto: protocols[d.Proto]}
		if b.Proto == "" {
			return nil, fmt.Errorf("port binding to container port %d: IP protocol %d: dualstack publishes tcp, udp and sctp ports", d.Port, d.Proto)
		}
		if d.Port < 1 || d.Port > 65535 || d.HostPort < 0 || d.HostPort > 65535 || d.HostPortEnd < 0 || d.HostPortEnd > 65535 {
			return nil, fmt.Errorf("port binding %d:%d/%s: ports must be between 1 and 65535", d.HostPort, d.Port, b.Proto)
		}
		b.Port, b.HostPort, b.HostPortEnd = uint16(d.Port), uint16(d.HostPort), uint16(d.HostPortEnd)
		if d.HostIP != "" {
			if b.HostIP, err = netip.ParseAddr(d.HostIP); err != nil {
				return nil, fmt.Errorf("port binding to container port %d/%s: bad host IP %q", d.Port, b.Proto, d.HostIP)
			}
			b.HostIP = b.HostIP.Unmap()
			if b.HostIP.Is6() && b.HostIP.IsLoopback() {
				return nil, fmt.Errorf("port binding %s: the kernel does not translate IPv6 loopback connections to a container: publish on [::] or one of the host's IPv6 addresses, or on 127.0.0.1", b)
			}
		}
		if b.HostPortEnd != 0 && b.HostPortEnd < b.HostPort {
			return nil, fmt.Errorf("port binding %s: the host port range ends before it starts", b)
		}
		if b.HostPortEnd == b.HostPort {
			b.HostPortEnd = 0
		}
		out = append(out, b)
	}
	return out, nil
}

// Candidates returns the host ports to try for b, in order: its port, its
// range, or the kernel's ephemeral port range when it names none.
func Candidates(b Binding) (first, last uint16) {
	switch {
	case b.HostPort == 0:
		return ephemeralRange()
	case b.HostPortEnd > b.HostPort:
		return b.HostPort, b.HostPortEnd
	}
	return b.HostPort, b.HostPort
}

// ephemeralRange reads net.ipv4.ip_local_port_range, as Docker does for
// ports it picks.
func ephemeralRange() (uint16, uint16) {
	lo, hi := uint16(32768), uint16(60999)
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		a, err1 := strconv.Atoi(f[0])
		z, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && a > 0 && a <= z && z <= 65535 {
			return uint16(a), uint16(z)
		}
	}
	return lo, hi
}

// Reservation holds a host port.
type Reservation struct{ fd int }

// Close gives the port back.
func (r *Reservation) Close() error {
	if r == nil || r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// ErrInUse is returned by Reserve when something else holds the port.
var ErrInUse = errors.New("address already in use")

// Reserve binds a socket to ip:port for proto in the calling thread's
// network namespace and keeps it. An invalid or unspecified ip means every
// address of family v6 (IPv6 only) or IPv4. TCP sockets are bound but not
// listening, so they hold the port without accepting anything. SCTP ports
// are not reserved (the rules alone publish them).
func Reserve(proto string, v6 bool, ip netip.Addr, port uint16) (*Reservation, error) {
	var typ int
	switch proto {
	case "tcp":
		typ = unix.SOCK_STREAM
	case "udp":
		typ = unix.SOCK_DGRAM
	default:
		return &Reservation{fd: -1}, nil
	}
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	var sa unix.Sockaddr
	if v6 {
		// Only IPv6: the IPv4 side of a port is reserved on its own.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
		a := &unix.SockaddrInet6{Port: int(port)}
		if ip.IsValid() {
			a.Addr = ip.As16()
		}
		sa = a
	} else {
		a := &unix.SockaddrInet4{Port: int(port)}
		if ip.IsValid() {
			a.Addr = ip.As4()
		}
		sa = a
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, ErrInUse
		}
		return nil, err
	}
	return &Reservation{fd: fd}, nil
}
