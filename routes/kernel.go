package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	// kern: this package's own kernel is the interface below.
	kern "github.com/dualstack-net/dualstack/kernel"
)

// kernel is the host's routing table as the Table uses it: netlink, or a
// fake in the root-free tests.
type kernel interface {
	// list returns proto's routes in the main table.
	list(proto Protocol) ([]kroute, error)
	// lookup returns the route the kernel would use for a (its prefix,
	// as `ip route get fibmatch`), and whether there is one.
	lookup(a netip.Addr) (kroute, bool, error)
	// add adds a route of proto in the main table, failing with EEXIST
	// when the kernel holds one that the new one would replace.
	add(proto Protocol, p netip.Prefix, h Hop, link int) error
	// del removes proto's route to p via via: never another's. One that
	// is gone already is no error.
	del(proto Protocol, p netip.Prefix, via netip.Addr) error
	// addrs returns the host's addresses, and its links' indexes by name.
	addrs() ([]kern.HostAddr, map[string]int, error)
}

// kroute is a route in the kernel.
type kroute struct {
	Prefix netip.Prefix
	Via    netip.Addr
	link   int
	dev    string
	proto  int
	table  int
	typ    int
	local  bool
}

func (r kroute) String() string {
	s := fmt.Sprintf("route %s", r.Prefix)
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.dev != "" {
		s += " dev " + r.dev
	}
	switch r.typ {
	case unix.RTN_UNICAST:
	case unix.RTN_LOCAL:
		s = "local " + s
	default:
		s += fmt.Sprintf(" type %d", r.typ)
	}
	switch r.table {
	case unix.RT_TABLE_MAIN:
	case unix.RT_TABLE_LOCAL:
		s += " table local"
	default:
		s += fmt.Sprintf(" table %d", r.table)
	}
	return s + " proto " + protoName(r.proto)
}

// protoName names a route's protocol as ip-route(8) does, and
// dualstack's own by what they are.
func protoName(p int) string {
	switch p {
	case int(HostGW):
		return "213 (dualstack host-gw)"
	case int(Learned):
		return "214 (dualstack bgp-learned)"
	}
	return kern.ProtoName(p)
}

// netlinkKernel is the kernel of the calling thread's network namespace.
type netlinkKernel struct{}

func (netlinkKernel) list(proto Protocol) ([]kroute, error) {
	filter := &netlink.Route{Protocol: netlink.RouteProtocol(proto), Table: unix.RT_TABLE_MAIN}
	list, err := kern.Routes(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	out := make([]kroute, 0, len(list))
	for _, r := range list {
		k := fromNetlink(r)
		if _, ok := names[k.link]; !ok && k.link != 0 {
			if l, err := netlink.LinkByIndex(k.link); err == nil {
				names[k.link] = l.Attrs().Name
			}
		}
		k.dev = names[k.link]
		out = append(out, k)
	}
	return out, nil
}

func fromNetlink(r netlink.Route) kroute {
	k := kroute{link: r.LinkIndex, proto: int(r.Protocol), table: r.Table, typ: r.Type, local: r.Type == unix.RTN_LOCAL}
	if p, ok := kern.Prefix(r.Dst); ok {
		k.Prefix = p.Masked()
	} else if r.Family == netlink.FAMILY_V6 {
		k.Prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		k.Prefix = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if gw, ok := netip.AddrFromSlice(r.Gw); ok {
		k.Via = gw.Unmap()
	}
	for _, nh := range r.MultiPath {
		if gw, ok := netip.AddrFromSlice(nh.Gw); ok && !k.Via.IsValid() {
			k.Via = gw.Unmap()
		}
	}
	return k
}

func (netlinkKernel) lookup(a netip.Addr) (kroute, bool, error) {
	list, err := netlink.RouteGetWithOptions(a.AsSlice(), &netlink.RouteGetOptions{FIBMatch: true})
	if errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) || errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return kroute{}, false, nil
	}
	if err != nil {
		return kroute{}, false, err
	}
	if len(list) == 0 {
		return kroute{}, false, nil
	}
	r := list[0]
	if r.Family == 0 {
		r.Family = netlink.FAMILY_V4
		if a.Is6() {
			r.Family = netlink.FAMILY_V6
		}
	}
	k := fromNetlink(r)
	if l, err := netlink.LinkByIndex(k.link); err == nil {
		k.dev = l.Attrs().Name
	}
	return k, true, nil
}

func (netlinkKernel) add(proto Protocol, p netip.Prefix, h Hop, link int) error {
	return netlink.RouteAdd(&netlink.Route{Dst: kern.IPNet(p), Gw: h.Via.AsSlice(), LinkIndex: link, Protocol: netlink.RouteProtocol(proto), Table: unix.RT_TABLE_MAIN})
}

func (netlinkKernel) del(proto Protocol, p netip.Prefix, via netip.Addr) error {
	r := &netlink.Route{Dst: kern.IPNet(p), Protocol: netlink.RouteProtocol(proto), Table: unix.RT_TABLE_MAIN}
	if via.IsValid() {
		r.Gw = net.IP(via.AsSlice())
	}
	err := netlink.RouteDel(r)
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

func (netlinkKernel) addrs() ([]kern.HostAddr, map[string]int, error) {
	return kern.AllAddrs()
}
