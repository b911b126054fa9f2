//go:build integration

package harness

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/sysctl"
)

// The NDP proxy tests (issue 23) put the engine's host on an on-link /64,
// as a VPS is: its interface dsnd0 sits on a link with the provider's
// "upstream router" and a "neighbour" (another customer's machine). The
// link is a bridge in the router's namespace, with a veth to the engine's
// namespace (dsnd0) and one to the neighbour's:
//
//	engine: dsnd0 2001:db8:6e::2/64 ── dsnd1 ┐
//	router: dsndbr 2001:db8:6e::1/64  (bridge)
//	neighbour: dsnd3 2001:db8:6e:0:d0::5/64 ── dsnd2 ┘
//
// The router holds the /64 on-link and has no route to any sub-prefix of
// it: it reaches every address of the /64 by neighbour solicitation, as a
// provider's router does. The neighbour holds an address inside
// OnLinkSubnet, the first network's subnet, that the sequential allocator
// would reach early. Router and neighbour answer solicitations at once
// (no DAD, their addresses are never tentative).
const (
	OnLinkIF        = "dsnd0"
	OnLinkPrefix    = "2001:db8:6e::/64"
	OnLinkRouter    = "2001:db8:6e::1"
	OnLinkHost      = "2001:db8:6e::2"
	OnLinkSubnet    = "2001:db8:6e:0:d0::/80"
	OnLinkNeighbour = "2001:db8:6e:0:d0::5"
	// OnLinkRouterPort is where the router answers HTTP with the source
	// address it sees (ServeSource).
	OnLinkRouterPort = "9000"
	// OnLinkProxyDelay is net.ipv6.neigh.dsnd0.proxy_delay as the bed
	// leaves it, as an administrator might have tuned it: not the kernel's
	// default (80), so that a restore to the default shows.
	OnLinkProxyDelay = "40"

	onLinkRouterNSPrefix    = "dsndr-"
	onLinkNeighbourNSPrefix = "dsndn-"
	onLinkBridge            = "dsndbr"
	onLinkRouterPort        = "dsnd1"
	onLinkNeighbourPort     = "dsnd2"
	onLinkNeighbourLink     = "dsnd3"
)

// OnLink is the on-link test bed: the router's and the neighbour's
// namespaces, and the MAC addresses the link sees.
type OnLink struct {
	Router, Neighbour PeerNS
	// HostMAC is dsnd0's, the engine host's on the link; NeighbourMAC the
	// neighbour's.
	HostMAC, NeighbourMAC string
}

// NewOnLink makes the on-link test bed and removes it when the test ends
// (after the networks the test creates later, which go first).
func NewOnLink(t *testing.T) *OnLink {
	t.Helper()
	b := &OnLink{Router: NewPeerNS(t, onLinkRouterNSPrefix, OnLinkIF, onLinkRouterPort)}
	b.Neighbour = PeerNS{Name: fmt.Sprintf("%s%d", onLinkNeighbourNSPrefix, os.Getpid())}
	b.Neighbour.Path = "/run/netns/" + b.Neighbour.Name
	IPRun(t, "netns", "add", b.Neighbour.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", b.Neighbour.Name).Run() })
	IPRun(t, "-n", b.Neighbour.Name, "link", "set", "lo", "up")

	r, n := b.Router.Name, b.Neighbour.Name
	// A plain switch: multicast snooping off, so that solicitations reach
	// every port whatever MLD reports were (or were not) seen.
	IPRun(t, "-n", r, "link", "add", onLinkBridge, "type", "bridge", "mcast_snooping", "0")
	IPRun(t, "-n", r, "link", "add", onLinkNeighbourPort, "type", "veth", "peer", "name", onLinkNeighbourLink, "netns", n)
	for _, port := range []string{onLinkRouterPort, onLinkNeighbourPort} {
		IPRun(t, "-n", r, "link", "set", port, "master", onLinkBridge)
		IPRun(t, "-n", r, "link", "set", port, "up")
	}
	noDAD(t, b.Router.Path, onLinkBridge)
	noDAD(t, b.Neighbour.Path, onLinkNeighbourLink)
	noDAD(t, EngineNetns(), OnLinkIF)
	IPRun(t, "-n", r, "addr", "add", OnLinkRouter+"/64", "dev", onLinkBridge, "nodad")
	IPRun(t, "-n", n, "addr", "add", OnLinkNeighbour+"/64", "dev", onLinkNeighbourLink, "nodad")
	IPRun(t, "-n", Eng.Netns, "addr", "add", OnLinkHost+"/64", "dev", OnLinkIF, "nodad")
	SetSysctlIn(t, "net/ipv6/neigh/"+OnLinkIF+"/proxy_delay", OnLinkProxyDelay)
	IPRun(t, "-n", r, "link", "set", onLinkBridge, "up")
	IPRun(t, "-n", n, "link", "set", onLinkNeighbourLink, "up")
	IPRun(t, "-n", Eng.Netns, "link", "set", OnLinkIF, "up")
	b.HostMAC = linkMAC(t, Eng.Netns, OnLinkIF)
	b.NeighbourMAC = linkMAC(t, n, onLinkNeighbourLink)
	return b
}

// noDAD turns duplicate address detection off on dev in the namespace at
// nsPath, before the link is up, so that its link-local address is never
// tentative either.
func noDAD(t testing.TB, nsPath, dev string) {
	t.Helper()
	if err := netns.Do(nsPath, func() error { return sysctl.Set("net/ipv6/conf/"+dev+"/accept_dad", "0") }); err != nil {
		t.Fatalf("accept_dad=0 on %s in %s: %v", dev, nsPath, err)
	}
}

// linkMAC is the MAC address of dev in namespace ns.
func linkMAC(t *testing.T, ns, dev string) string {
	t.Helper()
	var links []struct {
		Address string `json:"address"`
	}
	out, err := exec.Command("ip", "-n", ns, "-j", "link", "show", "dev", dev).Output()
	if err == nil {
		err = json.Unmarshal(out, &links)
	}
	if err != nil || len(links) != 1 {
		t.Fatalf("MAC address of %s in %s: %v: %s", dev, ns, err, out)
	}
	return links[0].Address
}

// AddNeighbourAddr gives the neighbour one more address on the link.
func (b *OnLink) AddNeighbourAddr(t *testing.T, prefix string) {
	t.Helper()
	IPRun(t, "-n", b.Neighbour.Name, "addr", "add", prefix, "dev", onLinkNeighbourLink, "nodad")
}

// NeighbourAddrs lists the neighbour's global addresses on the link; it
// fails the test if one is tentative or failed DAD.
func (b *OnLink) NeighbourAddrs(t *testing.T) []string {
	t.Helper()
	var out []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Scope     string `json:"scope"`
			Tentative bool   `json:"tentative"`
			DADFailed bool   `json:"dadfailed"`
		} `json:"addr_info"`
	}
	raw, err := exec.Command("ip", "-n", b.Neighbour.Name, "-j", "-6", "addr", "show", "dev", onLinkNeighbourLink).Output()
	if err == nil {
		err = json.Unmarshal(raw, &out)
	}
	if err != nil {
		t.Fatalf("the neighbour's addresses: %v: %s", err, raw)
	}
	var addrs []string
	for _, o := range out {
		for _, a := range o.AddrInfo {
			if a.Tentative || a.DADFailed {
				t.Fatalf("the neighbour's address %s is tentative or failed DAD", a.Local)
			}
			if a.Scope == "global" {
				addrs = append(addrs, a.Local)
			}
		}
	}
	return addrs
}

// Neigh is one entry of a neighbour cache.
type Neigh struct {
	Dst    string   `json:"dst"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// RouterNeigh is the router's neighbour entry for addr (Dst "" when it
// has none).
func (b *OnLink) RouterNeigh(t testing.TB, addr string) Neigh {
	t.Helper()
	var out []Neigh
	raw, err := exec.Command("ip", "-n", b.Router.Name, "-j", "-6", "neigh", "show", addr, "dev", onLinkBridge).Output()
	if err == nil {
		err = json.Unmarshal(raw, &out)
	}
	if err != nil {
		t.Fatalf("the router's neighbour entry for %s: %v: %s", addr, err, raw)
	}
	if len(out) == 0 {
		return Neigh{}
	}
	return out[0]
}

// FlushRouterNeigh removes the router's neighbour entry for addr, so that
// its next packet to addr starts with a fresh solicitation.
func (b *OnLink) FlushRouterNeigh(t testing.TB, addr string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", b.Router.Name, "-6", "neigh", "flush", "to", addr, "dev", onLinkBridge).CombinedOutput(); err != nil {
		t.Fatalf("flush the router's neighbour entry for %s: %v: %s", addr, err, out)
	}
}

// SetRouterNeigh makes the router's cache hold a stale entry for addr
// with link-layer address mac, as one left from an earlier holder.
func (b *OnLink) SetRouterNeigh(t testing.TB, addr, mac string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", b.Router.Name, "-6", "neigh", "replace", addr, "lladdr", mac, "dev", onLinkBridge, "nud", "stale").CombinedOutput(); err != nil {
		t.Fatalf("the router's neighbour entry for %s: %v: %s", addr, err, out)
	}
}

// ServeSource makes the router answer HTTP on OnLinkRouterPort with the
// source address it sees, until the test ends.
func (b *OnLink) ServeSource(t *testing.T) {
	t.Helper()
	ServeSource(t, b.Router.Path, "tcp6", "[::]:"+OnLinkRouterPort)
}

// ServeSource runs an HTTP server on addr ("tcp" or "tcp6") in the
// namespace at nsPath that answers with the source address it sees, until
// the test ends: what a host outside sees of a container.
func ServeSource(t *testing.T, nsPath, network, addr string) {
	t.Helper()
	var l net.Listener
	if err := netns.Do(nsPath, func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprint(w, host)
	}))
}

// Dial connects over TCP from the namespace at nsPath to addr within
// timeout, and closes the connection.
func Dial(nsPath, addr string, timeout time.Duration) error {
	return netns.Do(nsPath, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// ProxyEntries lists the engine namespace's proxy neighbour entries, as
// `ip -6 neigh show proxy` prints them ("ADDR dev IF" lines), sorted.
func ProxyEntries(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("ip", "-n", Eng.Netns, "-6", "neigh", "show", "proxy").Output()
	if err != nil {
		t.Fatalf("ip -6 neigh show proxy in the engine's namespace: %v", err)
	}
	var entries []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			entries = append(entries, strings.TrimSuffix(l, " proxy"))
		}
	}
	slices.Sort(entries)
	return entries
}

// ProxiedOn lists the addresses the engine's host answers solicitations
// for on dev (its proxy entries there).
func ProxiedOn(t testing.TB, dev string) []netip.Addr {
	t.Helper()
	var addrs []netip.Addr
	for _, e := range ProxyEntries(t) {
		f := strings.Fields(e)
		if len(f) >= 3 && f[1] == "dev" && f[2] == dev {
			if a, err := netip.ParseAddr(f[0]); err == nil {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

// NDPSysctls are the engine namespace's sysctls of dev that the NDP proxy
// turns (net.ipv6.conf.DEV.proxy_ndp, net.ipv6.neigh.DEV.proxy_delay),
// as "key=value" strings.
func NDPSysctls(t testing.TB, dev string) []string {
	t.Helper()
	var out []string
	for _, k := range []string{"net/ipv6/conf/" + dev + "/proxy_ndp", "net/ipv6/neigh/" + dev + "/proxy_delay"} {
		out = append(out, strings.ReplaceAll(k, "/", ".")+"="+SysctlIn(t, k))
	}
	return out
}

// AcceptForwarding sets the engine namespace's FORWARD policy to ACCEPT,
// in both families, until the test ends: both engines set it to DROP when
// they enable forwarding themselves, which would hide whether dualstack's
// own filter keeps what must not come in out (on a host where forwarding
// was on before Docker started, the policy stays ACCEPT).
func AcceptForwarding(t *testing.T) {
	t.Helper()
	for _, cmd := range []string{"iptables", "ip6tables"} {
		policy := "ACCEPT"
		if b, _ := exec.Command("ip", "netns", "exec", Eng.Netns, cmd, "-S", "FORWARD").Output(); strings.Contains(string(b), "-P FORWARD DROP") {
			policy = "DROP"
		}
		if b, err := exec.Command("ip", "netns", "exec", Eng.Netns, cmd, "-P", "FORWARD", "ACCEPT").CombinedOutput(); err != nil {
			t.Fatalf("%s -P FORWARD ACCEPT: %v: %s", cmd, err, b)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "exec", Eng.Netns, cmd, "-P", "FORWARD", policy).Run() })
	}
}

// NetworkGone fails the test if Docker knows a network named name.
func NetworkGone(t testing.TB, name string) {
	t.Helper()
	if out, err := DockerCmd("network", "inspect", "-f", "{{.Id}}", name); err == nil {
		t.Fatalf("network %s exists (%s) after its creation was refused", name, strings.TrimSpace(out))
	}
}
