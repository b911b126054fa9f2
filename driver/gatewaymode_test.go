package driver

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/dualstack-net/dualstack/firewall"
)

// gwRaw is CreateNetwork's (and GwAllocCheck's) options: -o kv, with
// IPv6, and --internal when internal.
func gwRaw(internal bool, kv ...string) map[string]interface{} {
	g := map[string]interface{}{}
	for i := 0; i+1 < len(kv); i += 2 {
		g[kv[i]] = kv[i+1]
	}
	raw := map[string]interface{}{optGeneric: g, optEnableIPv6: true}
	if internal {
		raw[optInternal] = true
	}
	return raw
}

// TestGatewayModes: Docker's gateway modes, under either name, become
// dualstack's masquerading, IPv6 mode and firewall flags; what the user
// would see of the network (its rules' inputs) follows.
func TestGatewayModes(t *testing.T) {
	const id = "0123456789abcdef0123"
	for _, c := range []struct {
		name     string
		raw      map[string]interface{}
		noMasq   bool
		ipv6Mode string
		fw       firewall.Network
	}{
		{"none given: today's defaults", gwRaw(false), false, IPv6ModeRouted, firewall.Network{Masquerade4: true}},
		{"nat both", gwRaw(false, optGwMode4, "nat", optGwMode6Docker, "nat"), false, IPv6ModeNAT, firewall.Network{Masquerade4: true, NAT6: true}},
		{"routed both, Docker's names", gwRaw(false, optGwMode4Docker, "routed", optGwMode6Docker, "routed"), true, IPv6ModeRouted, firewall.Network{Routed4: true}},
		{"routed v4 with ip_masquerade=false", gwRaw(false, optGwMode4, "routed", optMasq, "false"), true, IPv6ModeRouted, firewall.Network{Routed4: true}},
		{"nat-unprotected both", gwRaw(false, optGwMode4, "nat-unprotected", optGwMode6, "NAT-Unprotected"), false, IPv6ModeNAT,
			firewall.Network{Masquerade4: true, NAT6: true, Unprotected4: true, Unprotected6: true}},
		{"nat-unprotected v4, ip_masquerade=false", gwRaw(false, optGwMode4, "nat-unprotected", optMasqDocker, "false"), true, IPv6ModeRouted,
			firewall.Network{Unprotected4: true}},
		{"v6 nat agreeing with ipv6_mode", gwRaw(false, optGwMode6, "nat", optIPv6Mode, "nat"), false, IPv6ModeNAT, firewall.Network{Masquerade4: true, NAT6: true}},
		{"isolated both, internal", gwRaw(true, optGwMode4, "isolated", optGwMode6, "isolated"), false, IPv6ModeRouted, firewall.Network{Masquerade4: true, Internal: true, Isolated4: true, Isolated6: true}},
		{"trusted", gwRaw(false, optTrustedDocker, "eth0:eth1.10"), false, IPv6ModeRouted, firewall.Network{Masquerade4: true, Trusted: []string{"eth0", "eth1.10"}}},
	} {
		o, err := parseOptions(id, c.raw)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if o.NoMasquerade != c.noMasq || o.IPv6Mode != c.ipv6Mode {
			t.Errorf("%s: masquerade off %t, ipv6_mode %s; want %t, %s", c.name, o.NoMasquerade, o.IPv6Mode, c.noMasq, c.ipv6Mode)
		}
		fn, _ := bridgePlane{}.filter(&network{Options: o})
		c.fw.Bridge, c.fw.ICC = o.Bridge, true
		if fn.Routed4 != c.fw.Routed4 || fn.Unprotected4 != c.fw.Unprotected4 || fn.Unprotected6 != c.fw.Unprotected6 ||
			fn.Masquerade4 != c.fw.Masquerade4 || fn.NAT6 != c.fw.NAT6 || fn.Internal != c.fw.Internal || !slices.Equal(fn.Trusted, c.fw.Trusted) ||
			fn.Isolated4 != c.fw.Isolated4 || fn.Isolated6 != c.fw.Isolated6 {
			t.Errorf("%s: firewall sees %+v, want %+v", c.name, fn, c.fw)
		}
	}
}

// TestGatewayModeRefusals: contradictions and bad values are refused,
// naming the options and what to drop.
func TestGatewayModeRefusals(t *testing.T) {
	const id = "0123456789abcdef0123"
	for _, c := range []struct {
		name string
		raw  map[string]interface{}
		want []string
	}{
		{"bogus mode", gwRaw(false, optGwMode4, "bridged"), []string{`gateway_mode_ipv4="bridged"`, "nat, nat-unprotected, routed or isolated"}},
		{"bogus mode, Docker's name", gwRaw(false, optGwMode6Docker, "x"), []string{`com.docker.network.bridge.gateway_mode_ipv6="x"`}},
		{"routed with ip_masquerade=true", gwRaw(false, optGwMode4, "routed", optMasqDocker, "true"), []string{"gateway_mode_ipv4=routed", "ip_masquerade=true", "drop ip_masquerade"}},
		{"v6 nat against ipv6_mode=routed", gwRaw(false, optGwMode6, "nat", optIPv6Mode, "routed"), []string{"gateway_mode_ipv6=nat", "ipv6_mode=routed", "drop ipv6_mode"}},
		{"v6 routed against ipv6_mode=nat", gwRaw(false, optGwMode6Docker, "routed", optIPv6Mode, "nat"), []string{"gateway_mode_ipv6=routed", "ipv6_mode=nat", "drop ipv6_mode"}},
		{"v6 nat-unprotected against ipv6_mode=routed", gwRaw(false, optGwMode6, "nat-unprotected", optIPv6Mode, "routed"), []string{"gateway_mode_ipv6=nat-unprotected", "drop ipv6_mode"}},
		{"isolated v4 without --internal", gwRaw(false, optGwMode4, "isolated"), []string{"gateway_mode_ipv4=isolated", "can only be used for an internal network", "add --internal"}},
		{"isolated v6 without --internal", gwRaw(false, optGwMode6Docker, "isolated"), []string{"gateway_mode_ipv6=isolated", "can only be used for an internal network"}},
		{"isolated with announce", gwRaw(true, optGwMode4, "isolated", optAnnounce, "true"), []string{"gateway_mode_ipv4=isolated", "drop announce"}},
		{"isolated with cluster", gwRaw(true, optGwMode4, "isolated", optCluster, "prod"), []string{"cluster=NAME", "--internal"}},
		{"isolated with ndp_proxy", gwRaw(true, optGwMode6, "isolated", optNDPProxy, "eth0"), []string{"ndp_proxy=eth0", "--internal"}},
		{"isolated with delegated_prefix", gwRaw(true, optGwMode6, "isolated", optDelegated, "eth0"), []string{"delegated_prefix=eth0", "--internal"}},
		{"nat-unprotected v6 with ndp_proxy", gwRaw(false, optGwMode6, "nat-unprotected", optNDPProxy, "eth0"), []string{"ndp_proxy=eth0", "hides the containers' addresses"}},
		{"trusted: the own bridge", gwRaw(false, optBridge, "br-gw", optTrusted, "eth0:br-gw"), []string{"trusted_host_interfaces=eth0:br-gw", "br-gw is the network's own bridge"}},
		{"trusted: the default bridge", gwRaw(false, optTrusted, "ds-0123456789ab"), []string{"ds-0123456789ab is the network's own bridge"}},
		{"trusted: a bad name", gwRaw(false, optTrustedDocker, "eth0:eth+"), []string{`trusted_host_interfaces="eth0:eth+"`, `"eth+"`, "'+'"}},
		{"trusted: an empty name", gwRaw(false, optTrusted, "eth0::eth1"), []string{`trusted_host_interfaces="eth0::eth1"`}},
		{"macvlan", gwRaw(false, optMode, "macvlan", optParent, "eth0", optGwMode4, "routed", optTrusted, "eth1"),
			[]string{"option(s) gateway_mode_ipv4, trusted_host_interfaces: not for mode=macvlan networks"}},
	} {
		_, err := parseOptions(id, c.raw)
		wantWords(t, c.name, err, c.want)
	}
	// Routed IPv6 with ndp_proxy and delegated_prefix works as before.
	if _, err := parseOptions(id, gwRaw(false, optGwMode6, "routed", optNDPProxy, "eth0")); err != nil {
		t.Errorf("gateway_mode_ipv6=routed with ndp_proxy: %v", err)
	}
}

// TestGwAllocCheck: what Docker is told not to reserve, from the options
// CreateNetwork will get; bad options are refused as CreateNetwork does.
func TestGwAllocCheck(t *testing.T) {
	d := new(Driver)
	noV4 := gwRaw(false)
	noV4[optEnableIPv4] = false
	for _, c := range []struct {
		name         string
		raw          map[string]interface{}
		skip4, skip6 bool
	}{
		{"a bridge", gwRaw(false), false, false},
		{"internal, nat", gwRaw(true, optGwMode4, "nat"), false, false},
		{"isolated v4", gwRaw(true, optGwMode4Docker, "isolated"), true, false},
		{"isolated v6", gwRaw(true, optGwMode6, "isolated"), false, true},
		{"isolated both", gwRaw(true, optGwMode4, "isolated", optGwMode6, "isolated"), true, true},
		{"IPv6-only", noV4, true, false},
		{"macvlan", gwRaw(false, optMode, "macvlan", optParent, "eth0"), true, true},
		{"no options at all", nil, false, false},
	} {
		skip4, skip6, err := d.GwAllocCheck(c.raw)
		if err != nil || skip4 != c.skip4 || skip6 != c.skip6 {
			t.Errorf("%s: skip IPv4 %t, IPv6 %t, %v; want %t, %t", c.name, skip4, skip6, err, c.skip4, c.skip6)
		}
	}
	bad := gwRaw(false, optGwMode4, "isolated")
	_, _, err := d.GwAllocCheck(bad)
	_, want := parseOptions("", bad)
	if err == nil || want == nil || err.Error() != want.Error() {
		t.Errorf("GwAllocCheck refuses %v with %v, want CreateNetwork's refusal %v", bad, err, want)
	}
}

// TestIsolatedBridgeGateways: the bridge of an isolated family holds no
// gateway, not even a --gateway the user gave; the other family's stays.
func TestIsolatedBridgeGateways(t *testing.T) {
	gw4, gw6 := netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("2001:db8:7::1/64")
	n := &network{V4: []pool{{Prefix: gw4.Masked(), Gateway: gw4}}, V6: []pool{{Prefix: gw6.Masked(), Gateway: gw6}}}
	for _, c := range []struct {
		mode4, mode6 string
		want         []netip.Prefix
	}{
		{"", "", []netip.Prefix{gw4, gw6}},
		{"isolated", "", []netip.Prefix{gw6}},
		{"nat", "isolated", []netip.Prefix{gw4}},
		{"isolated", "isolated", nil},
	} {
		n.Options = netOptions{Mode: ModeBridge, Internal: true, GatewayMode4: c.mode4, GatewayMode6: c.mode6}
		if got := bridgeGateways(n); !slices.Equal(got, c.want) {
			t.Errorf("gateway modes %q/%q: the bridge holds %v, want %v", c.mode4, c.mode6, got, c.want)
		}
	}
}
