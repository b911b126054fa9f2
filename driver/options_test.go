package driver

import (
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	const id = "0123456789abcdef0123"
	generic := func(kv ...string) map[string]interface{} {
		g := map[string]interface{}{}
		for i := 0; i+1 < len(kv); i += 2 {
			g[kv[i]] = kv[i+1]
		}
		return map[string]interface{}{optGeneric: g, optEnableIPv6: true}
	}
	good := []struct {
		name string
		raw  map[string]interface{}
		want netOptions
	}{
		{"defaults", generic(), netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", IPv4: true, IPv6: true, IPv6Mode: "routed"}},
		{"short names", generic("bridge", "br-test", "mtu", "1400", "hairpin", "true", "accept_ra", "1"),
			netOptions{Mode: "bridge", Bridge: "br-test", MTU: 1400, Hairpin: true, AcceptRA: 1, IPv4: true, IPv6: true, IPv6Mode: "routed"}},
		{"docker names", generic("com.docker.network.bridge.name", "br-x", "com.docker.network.driver.mtu", "9000", "mode", "bridge"),
			netOptions{Mode: "bridge", Bridge: "br-x", MTU: 9000, IPv4: true, IPv6: true, IPv6Mode: "routed"}},
		{"internal, ipv6-only", map[string]interface{}{optEnableIPv6: true, optEnableIPv4: false, optInternal: true},
			netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", Internal: true, IPv6: true, IPv6Mode: "routed"}},
		{"macvlan", generic("mode", "macvlan", "parent", "eth0.10", "macvlan_mode", "private", "host_link", "true", "accept_ra", "slaac", "mtu", "1400"),
			netOptions{Mode: "macvlan", Parent: "eth0.10", MacvlanMode: "private", HostLink: true, AcceptRA: 1, SLAAC: true, MTU: 1400, IPv4: true, IPv6: true, IPv6Mode: "routed"}},
		{"macvlan defaults", generic("mode", "macvlan", "parent", "eth0"),
			netOptions{Mode: "macvlan", Parent: "eth0", MacvlanMode: "bridge", IPv4: true, IPv6: true, IPv6Mode: "routed"}},
		{"firewall, short names", generic("ipv6_mode", "nat", "icc", "false", "ip_masquerade", "false"),
			netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", IPv4: true, IPv6: true, IPv6Mode: "nat", NoICC: true, NoMasquerade: true}},
		{"firewall, docker names", generic("com.docker.network.bridge.enable_icc", "false", "com.docker.network.bridge.enable_ip_masquerade", "true", "ipv6_mode", "Routed"),
			netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", IPv4: true, IPv6: true, IPv6Mode: "routed", NoICC: true}},
		{"cluster, routes over BGP", generic("cluster", "prod", "cluster_routes", "bgp"),
			netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", IPv4: true, IPv6: true, IPv6Mode: "routed", Cluster: "prod", ClusterRoutes: "bgp"}},
		{"announced", generic("announce", "true"),
			netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", IPv4: true, IPv6: true, IPv6Mode: "routed", Announce: true}},
		{"sticky, default hold", generic("sticky_addresses", "true"),
			netOptions{Mode: "bridge", Bridge: "ds-0123456789ab", IPv4: true, IPv6: true, IPv6Mode: "routed", Sticky: true, StickyHold: 24 * time.Hour}},
		{"sticky macvlan, hold 90m", generic("mode", "macvlan", "parent", "eth0", "sticky_addresses", "true", "sticky_hold", "90m"),
			netOptions{Mode: "macvlan", Parent: "eth0", MacvlanMode: "bridge", IPv4: true, IPv6: true, IPv6Mode: "routed", Sticky: true, StickyHold: 90 * time.Minute}},
	}
	for _, c := range good {
		got, err := parseOptions(id, c.raw)
		if err != nil || got != c.want {
			t.Errorf("%s: got %+v, %v\nwant %+v", c.name, got, err, c.want)
		}
	}
	bad := []struct {
		name string
		raw  map[string]interface{}
		want []string
	}{
		{"16-character bridge name", generic("bridge", "abcdefghijklmnop"), []string{`bridge="abcdefghijklmnop"`, "at most 15"}},
		{"MTU 10", generic("mtu", "10"), []string{`mtu="10"`, "between 68 and 65535"}},
		{"MTU 70000", generic("com.docker.network.driver.mtu", "70000"), []string{`com.docker.network.driver.mtu="70000"`}},
		{"IPv6 MTU below 1280", generic("mtu", "1000"), []string{"IPv6 needs an MTU of at least 1280"}},
		{"unknown options", generic("colour", "blue", "speed", "fast"), []string{"unknown option(s) colour, speed"}},
		{"bad accept_ra", generic("accept_ra", "maybe"), []string{`accept_ra="maybe"`}},
		{"ipv6_mode bogus", generic("ipv6_mode", "bogus"), []string{`ipv6_mode="bogus"`, "want routed", "or nat"}},
		{"icc not a boolean", generic("icc", "sometimes"), []string{`icc="sometimes"`, "true or false"}},
		{"masquerade not a boolean", generic("com.docker.network.bridge.enable_ip_masquerade", "x"), []string{`enable_ip_masquerade="x"`}},
		{"macvlan without parent", generic("mode", "macvlan"), []string{"mode=macvlan needs -o parent=IF"}},
		{"cluster_routes bogus", generic("cluster", "prod", "cluster_routes", "ospf"), []string{`cluster_routes="ospf"`, "host-gw", "bgp", "none"}},
		{"announce in a cluster", generic("cluster", "prod", "announce", "true"), []string{"announce=true: a cluster network announces its host's blocks with -o cluster_routes=bgp"}},
		{"announce on macvlan", generic("mode", "macvlan", "parent", "eth0", "announce", "true"), []string{"announce"}},
		{"announce not a boolean", generic("announce", "yes please"), []string{`announce="yes please"`}},
		{"unknown mode", generic("mode", "ipvlan"), []string{`mode="ipvlan"`, "want bridge (the default) or macvlan"}},
		{"macvlan_mode bogus", generic("mode", "macvlan", "parent", "eth0", "macvlan_mode", "bogus"), []string{`macvlan_mode="bogus"`, "bridge, private, vepa, passthru"}},
		{"bridge options on macvlan", generic("mode", "macvlan", "parent", "eth0", "icc", "false", "bridge", "x"), []string{"option(s) bridge, icc: not for mode=macvlan networks"}},
		{"macvlan options on a bridge", generic("parent", "eth0"), []string{"option(s) parent: not for mode=bridge networks"}},
		{"host_link not a boolean", generic("mode", "macvlan", "parent", "eth0", "host_link", "maybe"), []string{`host_link="maybe"`}},
		{"several at once", generic("mtu", "x", "hairpin", "perhaps"), []string{`mtu="x"`, `hairpin="perhaps"`}},
		{"sticky not a boolean", generic("sticky_addresses", "always"), []string{`sticky_addresses="always"`, "true or false"}},
		{"sticky_hold without sticky", generic("sticky_hold", "1h"), []string{"sticky_hold is an option of sticky networks: add -o sticky_addresses=true"}},
		{"sticky_hold too short", generic("sticky_addresses", "true", "sticky_hold", "30s"), []string{`sticky_hold="30s"`, "at least 1m"}},
		{"sticky_hold not a duration", generic("sticky_addresses", "true", "sticky_hold", "a day"), []string{`sticky_hold="a day"`, "such as 90m or 48h"}},
		{"bridge wildcard", generic("bridge", "x+"), []string{`bridge="x+"`, "only letters, digits", "'+'"}},
		{"bridge every interface", generic("bridge", "+"), []string{`bridge="+"`, "'+'"}},
		{"bridge name pattern", generic("com.docker.network.bridge.name", "bars%d"), []string{`bridge.name="bars%d"`, "'%'"}},
		{"bridge name with a space", generic("bridge", "a b"), []string{`bridge="a b"`}},
		{"parent wildcard", generic("mode", "macvlan", "parent", "eth+"), []string{`parent="eth+"`, "'+'"}},
		{"parent dot", generic("mode", "macvlan", "parent", ".."), []string{`parent=".."`}},
		{"parent an option", generic("mode", "macvlan", "parent", "-eth0"), []string{`parent="-eth0"`, "starts with '-'"}},
		{"bridge an option", generic("bridge", "-j"), []string{`bridge="-j"`, "starts with '-'"}},
		{"bridge.name an option", generic("com.docker.network.bridge.name", "--help"), []string{`bridge.name="--help"`, "starts with '-'"}},
	}
	for _, c := range bad {
		_, err := parseOptions(id, c.raw)
		wantWords(t, c.name, err, c.want)
	}
}

// TestOptionTable: the refusals list, for each mode, exactly the options
// of optionTable that mode takes (keys and aliases; not mode itself nor
// Docker's own), and every option has a parser and its docs' text.
func TestOptionTable(t *testing.T) {
	for _, mode := range []string{ModeBridge, ModeMacvlan} {
		want := map[string]bool{}
		for _, opt := range optionTable {
			if opt.key == optMode || opt.flag != "" || !opt.takes(mode) {
				continue
			}
			want[opt.key] = true
			if opt.alias != "" {
				want[opt.alias] = true
			}
		}
		listed := map[string]bool{}
		for _, k := range modeListing[mode] {
			if listed[k] || !want[k] {
				t.Errorf("modeListing[%s] names %s: twice, or an option %s networks do not take", mode, k, mode)
			}
			listed[k] = true
		}
		for k := range want {
			if !listed[k] {
				t.Errorf("modeListing[%s] lacks %s, which optionTable says %s networks take", mode, k, mode)
			}
		}
	}
	for _, opt := range optionTable {
		if opt.parse == nil || opt.help == "" || (opt.flag == "" && (len(opt.modes) == 0 || opt.values == "" || opt.def == "")) {
			t.Errorf("option %s lacks its parser, its modes or its docs' text", opt.key)
		}
	}
}
