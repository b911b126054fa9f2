package driver

import (
	"io"
	"math/rand"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/state"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// harness runs the driver as the plugin would, with the real IPAM, inside a
// throwaway "host" namespace, and plays Docker's part.
type harness struct {
	t    testing.TB
	host netnstest.NS
	dir  string
	db   state.Store
	// disk is db as the drivers see it, which a test may have refuse a
	// record.
	disk *refusingDisk
	book *addrbook.Book
	d    *Driver
	// config, when set, changes the driver's configuration at each open.
	config func(*Config)
}

// newHarness starts the drivers in a throwaway namespace standing for a
// host freshly booted: forwarding off in both families, whatever the
// namespace inherited from the machine's own settings (ip_forward is 1
// where Docker runs), so that the tests see what dualstack turns on.
func newHarness(t testing.TB) *harness { return newHarnessWith(t, nil) }

// newHarnessWith is newHarness with config changing the driver's
// configuration.
func newHarnessWith(t testing.TB, config func(*Config)) *harness {
	h := &harness{t: t, host: netnstest.New(t), dir: t.TempDir(), config: config}
	h.host.ForwardingOff(t)
	h.open()
	t.Cleanup(func() { h.db.Close() })
	return h
}

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// givePoolBack and giveAddrBack release a pool and an address as Docker
// does through the plugin's mux: the network driver hears of it first
// (plugin.GiveBacks), then the address book lets it go.
func (h *harness) givePoolBack(poolID string) error {
	h.d.PoolReleased(poolID)
	return h.book.ReleasePool(poolID)
}

func (h *harness) giveAddrBack(poolID, addr string) error {
	a := netip.MustParseAddr(addr)
	h.d.AddressReleased(a)
	return h.book.Release(poolID, a)
}

// open starts (or restarts) the plugin's drivers on the state directory.
func (h *harness) open() {
	h.t.Helper()
	db, err := state.Open(h.dir, time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
	h.disk = &refusingDisk{Store: db}
	h.in(func() error {
		h.book, err = addrbook.New(addrbook.Config{DB: h.disk, MachineID: "test", Log: quiet()})
		if err != nil {
			return err
		}
		cfg := Config{DB: h.disk, Book: h.book, Log: quiet(), UplinkAcceptRA: true, ForwardDrop: true, Firewall: firewall.New(firewall.BackendNFT)}
		if h.config != nil {
			h.config(&cfg)
		}
		h.d, err = New(cfg)
		return err
	})
	h.d.ResumeJoins() // as the plugin does once it serves
}

func (h *harness) restart() {
	h.t.Helper()
	h.d.Close()
	h.db.Close()
	h.open()
}

// in runs fn in the host namespace.
func (h *harness) in(fn func() error) {
	h.t.Helper()
	if err := netns.Do(h.host.Path, fn); err != nil {
		h.t.Fatal(err)
	}
}

// network creates a network as Docker would with --ipam-driver dualstack:
// pools and gateways from the IPAM, IPAM data in random order.
func (h *harness) network(id string, opts map[string]interface{}, subnets ...string) *api.CreateNetworkRequest {
	h.t.Helper()
	req := &api.CreateNetworkRequest{NetworkID: id, Options: opts}
	for _, s := range subnets {
		v6 := strings.Contains(s, ":")
		pr, err := h.book.RequestPool(addrbook.PoolRequest{Space: "local", Subnet: s, V6: v6})
		if err != nil {
			h.t.Fatal(err)
		}
		gw, err := h.book.RequestAddress(pr.ID, "", addrbook.Owner{Kind: addrbook.AutoGateway})
		if err != nil {
			h.t.Fatal(err)
		}
		data := &api.IPAMData{AddressSpace: "local", Pool: pr.Prefix.String(), Gateway: gw.String()}
		if v6 {
			req.IPv6Data = append(req.IPv6Data, data)
		} else {
			req.IPv4Data = append(req.IPv4Data, data)
		}
	}
	rand.Shuffle(len(req.IPv6Data), func(i, j int) { req.IPv6Data[i], req.IPv6Data[j] = req.IPv6Data[j], req.IPv6Data[i] })
	return req
}

// poolID finds the IPAM pool of subnet.
func (h *harness) poolID(subnet string) string {
	id, ok := h.book.PoolFor("local", netip.MustParsePrefix(subnet))
	if !ok {
		h.t.Fatalf("no pool for %s", subnet)
	}
	return id
}

// endpoint asks the IPAM for the addresses Docker would (IPv4, and IPv6
// from the first pool) and creates the endpoint.
func (h *harness) endpoint(nid, eid, mac, v4subnet, v6subnet string) *api.CreateEndpointResponse {
	h.t.Helper()
	return h.endpointWith(nil, nid, eid, mac, v4subnet, v6subnet)
}

// endpointWith is endpoint with Docker's endpoint options.
func (h *harness) endpointWith(opts map[string]interface{}, nid, eid, mac, v4subnet, v6subnet string) *api.CreateEndpointResponse {
	h.t.Helper()
	in := &api.EndpointInterface{MacAddress: mac}
	for _, s := range []string{v4subnet, v6subnet} {
		if s == "" {
			continue
		}
		r, err := h.book.RequestAddress(h.poolID(s), "", addrbook.MACOwner(mac))
		if err != nil {
			h.t.Fatal(err)
		}
		if strings.Contains(s, ":") {
			in.AddressIPv6 = r.String()
		} else {
			in.Address = r.String()
		}
	}
	var resp *api.CreateEndpointResponse
	h.in(func() (err error) {
		resp, err = h.d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: in, Options: opts})
		return err
	})
	return resp
}

// moveIn does what Docker does after Join: move the interface into the
// sandbox, rename it, add Docker's own addresses and bring it up.
func (h *harness) moveIn(sb netnstest.NS, src, dst string, addrs ...string) {
	h.t.Helper()
	h.host.IP(h.t, "link", "set", src, "netns", sb.Name)
	sb.IP(h.t, "link", "set", src, "name", dst)
	for _, a := range addrs {
		if a != "" {
			sb.IP(h.t, "addr", "add", a, "dev", dst, "nodad")
		}
	}
	sb.IP(h.t, "link", "set", dst, "up")
	sb.IP(h.t, "link", "set", "lo", "up")
}

func TestBridgeLifecycle(t *testing.T) {
	cases := []struct {
		name    string
		subnets []string // IPv4 first if any; the first IPv6 one is Docker's
		extra   []string // what dualstack adds
	}{
		{"ipv4", []string{"192.0.2.0/24"}, nil},
		{"ipv6", []string{"2001:db8:1::/64"}, nil},
		{"dual-stack", []string{"192.0.2.0/24", "2001:db8:1::/64"}, nil},
		{"dual-stack, three IPv6 subnets", []string{"192.0.2.0/24", "2001:db8:1::/64", "2001:db8:2::/64", "2001:db8:3::/64"},
			[]string{"2001:db8:2::2/64", "2001:db8:3::2/64"}},
		{"ipv6-only, two subnets", []string{"fd00:1::/64", "fd00:2::/64"}, []string{"fd00:2::2/64"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			var v4, v6 string
			var gws []string
			for _, s := range c.subnets {
				p := netip.MustParsePrefix(s)
				gws = append(gws, netip.PrefixFrom(p.Addr().Next(), p.Bits()).String())
				if p.Addr().Is4() && v4 == "" {
					v4 = s
				} else if p.Addr().Is6() && v6 == "" {
					v6 = s
				}
			}
			const nid = "aaaaaaaaaaaa1111"
			opts := map[string]interface{}{optEnableIPv6: v6 != "", optEnableIPv4: v4 != "", optGeneric: map[string]interface{}{"mtu": "1400", "hairpin": "true"}}
			req := h.network(nid, opts, c.subnets...)
			h.in(func() error { return h.d.CreateNetwork(req) })

			// The bridge holds every gateway, IPv6 ones nodad, with accept_ra=0.
			br := "ds-aaaaaaaaaaaa"
			got := map[string]netnstest.Addr{}
			for _, a := range h.host.Addrs(t, br) {
				got[a.Prefix().String()] = a
			}
			for _, g := range gws {
				a, ok := got[g]
				if !ok {
					t.Fatalf("bridge lacks gateway %s: has %v", g, got)
				}
				if strings.Contains(g, ":") && (!a.NoDAD || a.Tentative) {
					t.Fatalf("gateway %s: nodad=%v tentative=%v", g, a.NoDAD, a.Tentative)
				}
			}
			if v6 != "" {
				if ra := h.host.Sysctl(t, "net/ipv6/conf/"+br+"/accept_ra"); ra != "0" {
					t.Fatalf("bridge accept_ra=%s", ra)
				}
				if f := h.host.Sysctl(t, "net/ipv6/conf/all/forwarding"); f != "1" {
					t.Fatalf("IPv6 forwarding %s", f)
				}
			}
			if v4 != "" {
				if f := h.host.Sysctl(t, "net/ipv4/ip_forward"); f != "1" {
					t.Fatalf("IPv4 forwarding %s", f)
				}
			}

			const eid = "bbbbbbbbbbbb2222"
			const mac = "02:42:c0:00:02:02"
			h.endpoint(nid, eid, mac, v4, v6)
			sb := netnstest.New(t)
			var join *api.JoinResponse
			h.in(func() (err error) {
				join, err = h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
				return err
			})
			if join.InterfaceName.SrcName != "dscbbbbbbbbbbbb" || join.InterfaceName.DstPrefix != "eth" {
				t.Fatalf("join interface %+v", join.InterfaceName)
			}
			if v4 != "" && join.Gateway != strings.Split(gws[0], "/")[0] {
				t.Fatalf("IPv4 gateway %q", join.Gateway)
			}
			if v6 != "" && join.GatewayIPv6 != netip.MustParsePrefix(v6).Addr().Next().String() {
				t.Fatalf("IPv6 gateway %q, want the gateway of %s", join.GatewayIPv6, v6)
			}
			var primary4, primary6 string
			if v4 != "" {
				primary4 = netip.PrefixFrom(netip.MustParsePrefix(v4).Addr().Next().Next(), 24).String()
			}
			if v6 != "" {
				primary6 = netip.PrefixFrom(netip.MustParsePrefix(v6).Addr().Next().Next(), 64).String()
			}
			h.moveIn(sb, "dscbbbbbbbbbbbb", "eth0", primary4, primary6)
			h.in(func() error {
				return h.d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
			})

			// Right after the call Docker waits for, the container has every
			// address, IPv6 ones nodad, nothing tentative.
			have := map[string]netnstest.Addr{}
			for _, a := range sb.Addrs(t, "eth0") {
				have[a.Prefix().String()] = a
				if a.Tentative || a.DADFailed {
					t.Fatalf("tentative address in the container: %+v", a)
				}
			}
			for _, want := range append([]string{primary4, primary6}, c.extra...) {
				if want == "" {
					continue
				}
				a, ok := have[want]
				if !ok {
					t.Fatalf("container eth0 lacks %s: has %v", want, have)
				}
				if a.Family == "inet6" && !a.NoDAD {
					t.Fatalf("%s is not nodad", want)
				}
			}
			if v6 != "" {
				if dad := sb.Sysctl(t, "net/ipv6/conf/eth0/accept_dad"); dad != "0" {
					t.Fatalf("container accept_dad=%s", dad)
				}
				if ra := sb.Sysctl(t, "net/ipv6/conf/eth0/accept_ra"); ra != "0" {
					t.Fatalf("container accept_ra=%s", ra)
				}
			}
			// The veth carries the MTU and hairpin.
			if l, _ := sb.Link(t, "eth0"); l.MTU != 1400 {
				t.Fatalf("container MTU %d", l.MTU)
			}
			// Traffic flows to every gateway.
			for _, g := range gws {
				if err := netnstest.Ping(sb.Path, netip.MustParsePrefix(g).Addr(), 3*time.Second); err != nil {
					t.Fatalf("ping gateway %s from the container: %v", g, err)
				}
			}
			var info *api.InfoResponse
			h.in(func() (err error) {
				info, err = h.d.EndpointInfo(&api.InfoRequest{NetworkID: nid, EndpointID: eid})
				return err
			})
			for _, want := range append([]string{primary4, primary6}, c.extra...) {
				if !strings.Contains(info.Value["addresses"], want) {
					t.Fatalf("EndpointOperInfo addresses %q lack %s", info.Value["addresses"], want)
				}
			}

			// Tear down as Docker does, twice: idempotent.
			for i := 0; i < 2; i++ {
				h.in(func() error {
					if err := h.d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: eid}); err != nil {
						return err
					}
					if err := h.d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}); err != nil {
						return err
					}
					return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid})
				})
			}
			for _, l := range h.host.Links(t) {
				if strings.HasPrefix(l.Name, "ds") {
					t.Fatalf("link %s left after delete", l.Name)
				}
			}
			// The extra addresses went back to the IPAM: the next owner gets them.
			for _, x := range c.extra {
				p := netip.MustParsePrefix(x)
				sub := netip.PrefixFrom(p.Addr(), 64).Masked().String()
				if _, err := h.book.RequestAddress(h.poolID(sub), p.Addr().String(), addrbook.Owner{}); err != nil {
					t.Fatalf("extra address %s still held after delete: %v", x, err)
				}
			}
		})
	}
}

func TestRestartReconciles(t *testing.T) {
	h := newHarness(t)
	const nid = "cccccccccccc3333"
	req := h.network(nid, map[string]interface{}{optEnableIPv6: true}, "198.51.100.0/24", "2001:db8:7::/64", "2001:db8:8::/64")
	h.in(func() error { return h.d.CreateNetwork(req) })
	h.endpoint(nid, "dddddddddddd4444", "02:42:c6:33:64:02", "198.51.100.0/24", "2001:db8:7::/64")
	// A second network whose bridge survives, with a port someone set down.
	const nid2 = "abcdabcdabcd5555"
	h.in(func() error { return h.d.CreateNetwork(h.network(nid2, nil, "192.0.2.0/24")) })
	h.endpoint(nid2, "fafafafafafa6666", "02:42:c0:00:02:02", "192.0.2.0/24", "")
	h.host.IP(t, "link", "set", "dsvfafafafafafa", "down")

	// A record that cannot be read is skipped, not fatal.
	if err := h.db.Update(func(tx state.Tx) error {
		return put(tx, bucketEndpoints, "junk", "not an endpoint")
	}); err != nil {
		t.Fatal(err)
	}
	// A reboot takes the bridge and the veths; a crash may leave orphans,
	// marked as dualstack's; the host has links of its own with names
	// like dualstack's, which are not.
	h.host.IP(t, "link", "del", "ds-cccccccccccc")
	h.host.IP(t, "link", "add", "ds-orphan", "type", "bridge")
	h.host.IP(t, "link", "set", "ds-orphan", "alias", "dualstack:network:0000000000gone")
	h.host.IP(t, "link", "add", "dsvorphan", "type", "veth", "peer", "name", "dscorphan")
	h.host.IP(t, "link", "set", "dsvorphan", "alias", "dualstack:endpoint:0000000000gone")
	h.host.IP(t, "link", "set", "dscorphan", "alias", "dualstack:endpoint:0000000000gone")
	h.host.IP(t, "link", "add", "ds-hostbr", "type", "bridge")
	h.host.IP(t, "link", "add", "dsvhost", "type", "veth", "peer", "name", "dschost")
	h.restart()

	have := map[string]bool{}
	for _, a := range h.host.Addrs(t, "ds-cccccccccccc") {
		have[a.Prefix().String()] = true
	}
	for _, g := range []string{"198.51.100.1/24", "2001:db8:7::1/64", "2001:db8:8::1/64"} {
		if !have[g] {
			t.Fatalf("restored bridge lacks %s: %v", g, have)
		}
	}
	for _, name := range []string{"ds-orphan", "dsvorphan", "dscorphan"} {
		if _, ok := h.host.Link(t, name); ok {
			t.Fatalf("orphan %s survived the restart", name)
		}
	}
	for _, name := range []string{"ds-hostbr", "dsvhost", "dschost"} {
		if _, ok := h.host.Link(t, name); !ok {
			t.Fatalf("the host's own link %s, named like dualstack's but not marked, was deleted", name)
		}
	}
	veth, ok := h.host.Link(t, "dsvdddddddddddd")
	if !ok {
		t.Fatal("the recorded endpoint's veth was removed")
	}
	if veth.Master != "ds-cccccccccccc" {
		t.Fatalf("the endpoint's veth is not back on the recreated bridge: master %q", veth.Master)
	}
	if port, _ := h.host.Link(t, "dsvfafafafafafa"); !port.Up() || port.Master != "ds-"+nid2[:12] {
		t.Fatalf("the endpoint's veth on the surviving bridge: up %t, master %q; want up on ds-%s", port.Up(), port.Master, nid2[:12])
	}
	// The endpoint is still known, with its extra address.
	var info *api.InfoResponse
	h.in(func() (err error) {
		info, err = h.d.EndpointInfo(&api.InfoRequest{NetworkID: nid, EndpointID: "dddddddddddd4444"})
		return err
	})
	if !strings.Contains(info.Value["addresses"], "2001:db8:8::2/64") {
		t.Fatalf("endpoint after restart: %v", info.Value)
	}
}

func TestCreateNetworkRefusesAndLeavesNothing(t *testing.T) {
	h := newHarness(t)
	ok := h.network("eeeeeeeeeeee5555", map[string]interface{}{optGeneric: map[string]interface{}{"bridge": "br-taken"}}, "192.0.2.0/24")
	h.in(func() error { return h.d.CreateNetwork(ok) })
	cases := []struct {
		name string
		opts map[string]interface{}
		want string
	}{
		{"bridge used by another network", map[string]interface{}{optGeneric: map[string]interface{}{"bridge": "br-taken"}}, "already used by network eeeeeeeeeeee"},
		{"16-character name", map[string]interface{}{optGeneric: map[string]interface{}{"bridge": "0123456789abcdef"}}, "at most 15"},
		{"MTU 10", map[string]interface{}{optGeneric: map[string]interface{}{"mtu": "10"}}, "between 68 and 65535"},
		{"unknown option", map[string]interface{}{optGeneric: map[string]interface{}{"frobnicate": "yes"}}, "unknown option(s) frobnicate"},
		{"sticky, another IPAM's subnet", map[string]interface{}{optGeneric: map[string]interface{}{"sticky_addresses": "true"}}, "sticky_addresses=true: dualstack's IPAM keeps the addresses, and another IPAM driver holds the network's subnets"},
	}
	h.host.IP(t, "link", "add", "br-foreign", "type", "bridge")
	cases = append(cases, struct {
		name string
		opts map[string]interface{}
		want string
	}{"link exists on the host", map[string]interface{}{optGeneric: map[string]interface{}{"bridge": "br-foreign"}}, "already exists on the host"})
	before := len(h.host.Links(t))
	for _, c := range cases {
		err := netns.Do(h.host.Path, func() error {
			return h.d.CreateNetwork(&api.CreateNetworkRequest{NetworkID: "ffffffffffff6666", Options: c.opts,
				IPv4Data: []*api.IPAMData{{AddressSpace: "local", Pool: "198.51.100.0/24", Gateway: "198.51.100.1/24"}}})
		})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
	if after := len(h.host.Links(t)); after != before {
		t.Fatalf("failed creates left links: %d before, %d after", before, after)
	}
	if len(h.d.networks) != 1 {
		t.Fatalf("failed creates left %d networks recorded", len(h.d.networks)-1)
	}
}

func TestUplinkAcceptRA(t *testing.T) {
	for _, allowed := range []bool{true, false} {
		h := newHarness(t)
		h.d.cfg.UplinkAcceptRA = allowed
		h.host.IP(t, "link", "add", "dstup0", "type", "veth", "peer", "name", "dstup1")
		h.in(func() error {
			for _, k := range []string{"net/ipv6/conf/dstup0/accept_ra", "net/ipv6/conf/dstup1/accept_ra"} {
				if err := os.WriteFile("/proc/sys/"+k, []byte("1"), 0o644); err != nil {
					return err
				}
			}
			return os.WriteFile("/proc/sys/net/ipv6/conf/dstup1/accept_ra", []byte("0"), 0o644)
		})
		req := h.network("abababababab7777", map[string]interface{}{optEnableIPv6: true}, "2001:db8:9::/64")
		h.in(func() error { return h.d.CreateNetwork(req) })
		want := "1"
		if allowed {
			want = "2"
		}
		if got := h.host.Sysctl(t, "net/ipv6/conf/dstup0/accept_ra"); got != want {
			t.Fatalf("UPLINK_ACCEPT_RA=%v: uplink accept_ra=%s, want %s", allowed, got, want)
		}
		if got := h.host.Sysctl(t, "net/ipv6/conf/dstup1/accept_ra"); got != "0" {
			t.Fatalf("an interface with accept_ra=0 was changed to %s", got)
		}
	}
}

// joinWithHook plays one join of a container on a network with two IPv6
// subnets, with hook standing in for the interface configuration, and
// reports whether the extra address was on eth0 when the call Docker waits
// for (ProgramExternalConnectivity) returned.
func joinWithHook(t *testing.T, hook func(real configureFunc) configureFunc) bool {
	h := newHarness(t)
	const nid, eid, mac = "121212121212aaaa", "343434343434bbbb", "02:42:00:00:00:09"
	req := h.network(nid, map[string]interface{}{optEnableIPv6: true}, "2001:db8:a::/64", "2001:db8:b::/64")
	h.in(func() error { return h.d.CreateNetwork(req) })
	h.endpoint(nid, eid, mac, "", "2001:db8:a::/64")
	h.d.joins.configure = hook(h.d.joins.configure)
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	h.moveIn(sb, "dsc343434343434", "eth0", "2001:db8:a::2/64")
	h.in(func() error {
		return h.d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
	})
	for _, a := range sb.Addrs(t, "eth0") {
		if a.Prefix().String() == "2001:db8:b::2/64" {
			return true
		}
	}
	return false
}

// TestExternalConnectivityWaitsForJoin: Docker starts the container's
// process after ProgramExternalConnectivity returns, so it must not return
// before the container side of the join is done, however slow that is.
func TestExternalConnectivityWaitsForJoin(t *testing.T) {
	slow := func(real configureFunc) configureFunc {
		return func(ns string, m sandbox.InterfaceMatch, a []netip.Prefix, ra sandbox.RA) error {
			time.Sleep(500 * time.Millisecond)
			return real(ns, m, a, ra)
		}
	}
	if !joinWithHook(t, slow) {
		t.Fatal("ProgramExternalConnectivity returned before the extra address was on the interface")
	}
}

// TestJoinRetriesConfiguration: a configuration step that fails (Docker
// renamed the interface under it) is tried again.
func TestJoinRetriesConfiguration(t *testing.T) {
	failures := 2
	flaky := func(real configureFunc) configureFunc {
		return func(ns string, m sandbox.InterfaceMatch, a []netip.Prefix, ra sandbox.RA) error {
			if failures > 0 {
				failures--
				return os.ErrNotExist
			}
			return real(ns, m, a, ra)
		}
	}
	if found := joinWithHook(t, flaky); !found || failures != 0 {
		t.Fatalf("extra address after two failed attempts: found=%v, failures left %d", found, failures)
	}
}
