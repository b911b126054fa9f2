package driver

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// rules returns the host namespace's dualstack rules, both families.
func (h *harness) rules() string {
	h.t.Helper()
	var out []string
	for _, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save"} {
		b, err := exec.Command("ip", "netns", "exec", h.host.Name, cmd).CombinedOutput()
		if err != nil {
			h.t.Fatalf("%s: %v: %s", cmd, err, b)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "DUALSTACK") {
				out = append(out, l)
			}
		}
	}
	return strings.Join(out, "\n")
}

// bindable reports whether a program on the host could take a TCP port.
func (h *harness) bindable(network, addr string) bool {
	ok := false
	h.in(func() error {
		l, err := net.Listen(network, addr)
		if err == nil {
			ok = true
			l.Close()
		}
		return nil
	})
	return ok
}

// joinGateway does what Docker does for a container whose gateway is
// endpoint eid: Join, the move of the interface into the container sb,
// then ProgramExternalConnectivity, whose error it returns.
func (h *harness) joinGateway(nid, eid string, sb netnstest.NS) error {
	h.t.Helper()
	var err error
	h.in(func() error {
		_, err = h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return nil
	})
	if err != nil {
		return err
	}
	h.moveIn(sb, peerVethPrefix+short(eid), "eth0")
	return h.program(nid, eid)
}

// program is Docker's ProgramExternalConnectivity for eid.
func (h *harness) program(nid, eid string) error { return h.programWith(nid, eid, nil) }

// programWith is program with the container's options (current engines
// pass the port bindings there).
func (h *harness) programWith(nid, eid string, opts map[string]interface{}) error {
	var err error
	h.in(func() error {
		err = h.d.ProgramExternalConnectivity(&api.ProgramExternalConnectivityRequest{NetworkID: nid, EndpointID: eid, Options: opts})
		return nil
	})
	return err
}

func portmapOption(bindings ...map[string]interface{}) map[string]interface{} {
	list := make([]interface{}, len(bindings))
	for i, b := range bindings {
		list[i] = b
	}
	return map[string]interface{}{"com.docker.network.portmap": list}
}

// TestPublishedPorts follows `docker run -p` on a dual-stack network: the
// rules Docker's bindings become, the host ports held against other
// programs and containers, a clear error for a port that is taken, a
// restart that keeps it all, and nothing left when the container and the
// last network go.
func TestPublishedPorts(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "set", "lo", "up") // 127.0.0.1, as on a host
	const nid = "cccccccccccc3333"
	v4, v6 := "192.0.2.0/24", "fd00:1::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6))
	})
	const e1, e2 = "eeeeeeeeee010000", "eeeeeeeeee020000"
	h.endpointWith(portmapOption(
		map[string]interface{}{"Proto": 6, "Port": 80, "HostIP": "", "HostPort": 8080},
		map[string]interface{}{"Proto": 6, "Port": 80, "HostIP": "127.0.0.1", "HostPort": 8081},
		map[string]interface{}{"Proto": 6, "Port": 80, "HostIP": "::", "HostPort": 8082},
		map[string]interface{}{"Proto": 17, "Port": 53, "HostIP": "", "HostPort": 0},
	), nid, e1, "02:42:c0:00:02:02", v4, v6)
	sb1 := netnstest.New(t)
	join := func(eid string, sb netnstest.NS) error { return h.joinGateway(nid, eid, sb) }
	if err := join(e1, sb1); err != nil {
		t.Fatal(err)
	}
	got := h.rules()
	for _, want := range []string{
		"-A DUALSTACK-DNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 192.0.2.2:80",
		"-A DUALSTACK-DNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination [fd00:1::2]:80",
		"-A DUALSTACK-DNAT -d 127.0.0.1/32 -p tcp -m tcp --dport 8081 -j DNAT --to-destination 192.0.2.2:80",
		"-A DUALSTACK-DNAT -p tcp -m tcp --dport 8082 -j DNAT --to-destination [fd00:1::2]:80",
		"-A DUALSTACK-ALLOW -d 192.0.2.2/32 -o ds-cccccccccccc -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -j ACCEPT",
		"-A DUALSTACK-ALLOW -d fd00:1::2/128 -o ds-cccccccccccc -p udp -m udp --dport 53 -j ACCEPT",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing rule %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "8082 -j DNAT --to-destination 192.0.2.2") {
		t.Errorf("[::]:8082 published on IPv4:\n%s", got)
	}
	// -p 53/udp without a host port: one free port, the same in both families.
	udp := regexp.MustCompile(`-p udp -m udp --dport (\d+) -j DNAT`).FindAllStringSubmatch(got, -1)
	if len(udp) != 2 || udp[0][1] != udp[1][1] {
		t.Fatalf("ephemeral udp port: %v in:\n%s", udp, got)
	}
	if h.bindable("tcp4", "0.0.0.0:8080") || h.bindable("tcp6", "[::]:8080") || h.bindable("tcp4", "127.0.0.1:8081") {
		t.Error("a program on the host could take a published port")
	}
	if h.d.endpoints[e1].Sandbox != sb1.Path {
		t.Errorf("the endpoint does not record its container")
	}

	// Another container asking for 8080 gets a clear error.
	h.endpointWith(portmapOption(map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8080}), nid, e2, "02:42:c0:00:02:03", v4, v6)
	sb2 := netnstest.New(t)
	err := join(e2, sb2)
	if err == nil || !strings.Contains(err.Error(), "8080/tcp is already published by another container (endpoint eeeeeeeeee01") || !strings.Contains(err.Error(), "choose another host port") {
		t.Fatalf("second container on 8080: %v", err)
	}
	if c := strings.Count(h.rules(), "--dport 8080"); c != 2 {
		t.Errorf("the failed join changed the rules: %d rules for 8080", c)
	}
	// ... and so does a port some other program holds.
	h.in(func() error {
		l, err := net.Listen("tcp4", "0.0.0.0:9090")
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		return nil
	})
	h.in(func() error { return h.d.DeleteEndpoint(&api.DeleteEndpointRequest{NetworkID: nid, EndpointID: e2}) })
	h.endpointWith(portmapOption(map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 9090}), nid, e2, "02:42:c0:00:02:03", v4, v6)
	if err := join(e2, sb2); err == nil || !strings.Contains(err.Error(), "in use on the host") {
		t.Fatalf("port held by a program: %v", err)
	}

	// A restart keeps the ports published, held, and each rule once.
	before := h.rules()
	h.restart()
	if after := h.rules(); after != before {
		t.Errorf("rules changed over a restart:\n%s\nwant:\n%s", after, before)
	}
	if h.bindable("tcp4", "0.0.0.0:8080") {
		t.Error("host port 8080 not held again after a restart")
	}

	// Leave revokes the ports and frees the host ports.
	h.in(func() error { return h.d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: e1}) })
	if got := h.rules(); strings.Contains(got, "DNAT --to") || strings.Contains(got, "--dport 80 ") {
		t.Errorf("port rules left after Leave:\n%s", got)
	}
	if !h.bindable("tcp4", "0.0.0.0:8080") || !h.bindable("tcp6", "[::]:8082") {
		t.Error("host ports still held after Leave")
	}

	// The last network gone, no trace in the packet filter.
	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
	if got := h.rules(); got != "" {
		t.Errorf("rules left after the last network went:\n%s", got)
	}
}

// TestPortsFollowGateway: the ports are published by the container's
// gateway endpoint only. Join alone publishes nothing; Docker's
// ProgramExternalConnectivity (the endpoint became the gateway) publishes,
// a retry of it changes nothing; RevokeExternalConnectivity (another
// network's endpoint took over, gw_priority) unpublishes and frees the host
// ports while the container stays joined; each state survives a restart.
func TestPortsFollowGateway(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "cccccccccccc5555", "eeeeeeeeee050000"
	v4, v6 := "198.51.100.0/24", "2001:db8:5::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6))
	})
	h.endpointWith(portmapOption(map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8085}), nid, eid, "02:42:c6:33:64:02", v4, v6)
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	h.moveIn(sb, peerVethPrefix+short(eid), "eth0")
	published := func(want bool, when string) {
		t.Helper()
		rules := h.rules()
		n := strings.Count(rules, "--dport 8085 -j DNAT")
		switch {
		case want && n != 2:
			t.Fatalf("%s: want the port published once per family, got %d DNAT rules:\n%s", when, n, rules)
		case !want && n != 0:
			t.Fatalf("%s: the port is published:\n%s", when, rules)
		case want == h.bindable("tcp4", "0.0.0.0:8085"):
			t.Fatalf("%s: host port 8085 held: %v, want %v", when, !want, want)
		}
	}
	published(false, "after Join, before the endpoint is the gateway")

	for i := 0; i < 2; i++ { // the second call is Docker's retry
		if err := h.program(nid, eid); err != nil {
			t.Fatal(err)
		}
	}
	published(true, "the endpoint is the gateway")

	revoke := func() {
		t.Helper()
		h.in(func() error {
			return h.d.RevokeExternalConnectivity(&api.RevokeExternalConnectivityRequest{NetworkID: nid, EndpointID: eid})
		})
	}
	revoke()
	revoke()
	published(false, "another endpoint is the gateway")
	if h.d.endpoints[eid].Sandbox != sb.Path {
		t.Fatal("revoking the ports forgot the endpoint's container")
	}
	h.restart()
	published(false, "restart after the revoke")

	if err := h.program(nid, eid); err != nil {
		t.Fatal(err)
	}
	published(true, "the gateway is back")
	h.restart()
	published(true, "restart as the gateway")

	h.in(func() error { return h.d.Leave(&api.LeaveRequest{NetworkID: nid, EndpointID: eid}) })
	published(false, "after Leave")
}

// TestPortsFromGatewayOptions: current engines pass the port bindings in
// the container's options (Join's and ProgramExternalConnectivity's), not
// always in CreateEndpoint's; those are published. An endpoint that is
// the gateway of one family only publishes in that family, leaving the
// other's host ports to the other gateway network: the IPv4 gateway only
// as Docker says (no_proxy_6to4), the IPv6 gateway only as the container's
// IPv4 default route, through another interface, shows. A change of
// families publishes again; a retry changes nothing.
func TestPortsFromGatewayOptions(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "cccccccccccc6666", "eeeeeeeeee060000"
	v4, v6 := "198.51.100.0/24", "2001:db8:6::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6))
	})
	h.endpoint(nid, eid, "02:42:c6:33:64:06", v4, v6)
	sb := netnstest.New(t)
	h.in(func() error {
		_, err := h.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	h.moveIn(sb, peerVethPrefix+short(eid), "eth0")
	opts := portmapOption(map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8086})
	published := func(v4, v6 bool, when string) {
		t.Helper()
		r := h.rules()
		has4 := strings.Contains(r, "--dport 8086 -j DNAT --to-destination 198.51.100.")
		has6 := strings.Contains(r, "--dport 8086 -j DNAT --to-destination [2001:db8:6::")
		if has4 != v4 || has6 != v6 || h.bindable("tcp4", "0.0.0.0:8086") == v4 || h.bindable("tcp6", "[::]:8086") == v6 {
			t.Fatalf("%s: want port 8086 published in IPv4 %v, IPv6 %v:\n%s", when, v4, v6, r)
		}
	}
	program := func() {
		t.Helper()
		if err := h.programWith(nid, eid, opts); err != nil {
			t.Fatal(err)
		}
	}
	opts[optNoProxy6To4] = true
	program()
	published(true, false, "the IPv4 gateway only (no_proxy_6to4)")
	delete(opts, optNoProxy6To4)
	program()
	published(true, true, "the gateway of both families (no IPv4 default route elsewhere)")
	before := h.rules()
	program()
	if after := h.rules(); after != before {
		t.Fatalf("a retried call changed the rules:\n%s\nwant:\n%s", after, before)
	}
	// Another network's interface takes the IPv4 default route.
	sb.IP(t, "link", "add", "eth1", "type", "veth", "peer", "name", "eth1p")
	sb.IP(t, "addr", "add", "203.0.113.2/24", "dev", "eth1")
	sb.IP(t, "link", "set", "eth1", "up")
	sb.IP(t, "link", "set", "eth1p", "up")
	sb.IP(t, "route", "add", "default", "via", "203.0.113.1")
	program()
	published(false, true, "the IPv6 gateway only (IPv4 default route through another interface)")
	sb.IP(t, "route", "replace", "default", "dev", "eth0")
	program()
	published(true, true, "the IPv4 default route back on the endpoint's interface")
}

// TestPortsSplitGateways: a container with its IPv4 gateway on one
// dualstack network and its IPv6 gateway on another publishes each family
// through its gateway's endpoint.
func TestPortsSplitGateways(t *testing.T) {
	h := newHarness(t)
	const nidA, nidB = "aaaaaaaaaaaa7777", "bbbbbbbbbbbb8888"
	const eidA, eidB = "eeeeeeeeee070000", "eeeeeeeeee080000"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nidA, map[string]interface{}{optEnableIPv6: true}, "198.51.100.0/24", "2001:db8:7::/64"))
	})
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nidB, map[string]interface{}{optEnableIPv6: true}, "203.0.113.0/24", "2001:db8:8::/64"))
	})
	h.endpoint(nidA, eidA, "02:42:c6:33:64:07", "198.51.100.0/24", "2001:db8:7::/64")
	h.endpoint(nidB, eidB, "02:42:cb:00:71:08", "203.0.113.0/24", "2001:db8:8::/64")
	sb := netnstest.New(t)
	for i, e := range []struct{ nid, eid string }{{nidA, eidA}, {nidB, eidB}} {
		h.in(func() error {
			_, err := h.d.Join(&api.JoinRequest{NetworkID: e.nid, EndpointID: e.eid, SandboxKey: sb.Path})
			return err
		})
		h.moveIn(sb, peerVethPrefix+short(e.eid), fmt.Sprintf("eth%d", i))
	}
	sb.IP(t, "route", "add", "default", "dev", "eth0") // A is the IPv4 gateway
	opts := portmapOption(map[string]interface{}{"Proto": 6, "Port": 80, "HostPort": 8087})
	opts[optNoProxy6To4] = true
	if err := h.programWith(nidA, eidA, opts); err != nil {
		t.Fatal(err)
	}
	delete(opts, optNoProxy6To4)
	if err := h.programWith(nidB, eidB, opts); err != nil {
		t.Fatal(err)
	}
	r := h.rules()
	if !strings.Contains(r, "--dport 8087 -j DNAT --to-destination 198.51.100.") || !strings.Contains(r, "--dport 8087 -j DNAT --to-destination [2001:db8:8::") ||
		strings.Count(r, "--dport 8087 -j DNAT") != 2 {
		t.Fatalf("want 8087 published in IPv4 through A and in IPv6 through B:\n%s", r)
	}
}
