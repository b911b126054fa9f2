//go:build integration

package harness

import (
	"strings"
	"testing"
)

// The firewall tests (issue 4) and the gateway modes' (issue 25) need an
// "outside host": a network namespace joined to the engine's by a veth,
// with documentation prefixes on the link and routes to the container
// subnets through the engine's host. No traffic goes anywhere else.
const (
	OutsideHost4 = "198.51.100.1" // the Docker host's end
	Outside4     = "198.51.100.2"
	OutsideHost6 = "2001:db8:ff::1"
	Outside6     = "2001:db8:ff::2"
	OutsidePort  = "9000"
)

// Outside is an outside host: a PeerNS with an address per family on its
// link, the Docker host's end (HostEnd, Host4, Host6) and its own (Addr4,
// Addr6).
type Outside struct {
	PeerNS
	HostEnd      string
	Host4, Host6 string
	Addr4, Addr6 string
}

// NewOutside creates the outside host (dsout0-dsout1, 198.51.100.0/24,
// 2001:db8:ff::/64) with routes to subnets via the Docker host.
func NewOutside(t *testing.T, subnets ...string) Outside {
	t.Helper()
	return NewOutsideOn(t, Outside{HostEnd: "dsout0", Host4: OutsideHost4, Addr4: Outside4, Host6: OutsideHost6, Addr6: Outside6}, "dsout-", "dsout1", subnets...)
}

// NewOutsideOn creates the outside host o describes, its namespace
// PREFIXPID, its end of the link peerEnd, with /24 and /64 on the link and
// routes to subnets via the Docker host: a second outside host, on
// another of the host's interfaces.
func NewOutsideOn(t *testing.T, o Outside, prefix, peerEnd string, subnets ...string) Outside {
	t.Helper()
	o.PeerNS = NewPeerNS(t, prefix, o.HostEnd, peerEnd)
	IPRun(t, "-n", Eng.Netns, "addr", "add", o.Host4+"/24", "dev", o.HostEnd)
	IPRun(t, "-n", Eng.Netns, "addr", "add", o.Host6+"/64", "dev", o.HostEnd, "nodad")
	IPRun(t, "-n", Eng.Netns, "link", "set", o.HostEnd, "up")
	IPRun(t, "-n", o.Name, "addr", "add", o.Addr4+"/24", "dev", peerEnd)
	IPRun(t, "-n", o.Name, "addr", "add", o.Addr6+"/64", "dev", peerEnd, "nodad")
	IPRun(t, "-n", o.Name, "link", "set", peerEnd, "up")
	for _, s := range subnets {
		via := o.Host4
		if strings.Contains(s, ":") {
			via = o.Host6
		}
		IPRun(t, "-n", o.Name, "route", "add", s, "via", via)
	}
	return o
}

// ServeSource runs an HTTP server on the outside host (OutsidePort, both
// families) that answers with the source address it sees.
func (o Outside) ServeSource(t *testing.T) {
	t.Helper()
	ServeSource(t, o.Path, "tcp", ":"+OutsidePort)
}
