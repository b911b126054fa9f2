package validate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// The catalogue, case by case: what is accepted, and what each refusal
// says. No root needed.

// refuses wants err to be a refusal of call that says every one of words.
func refuses(t *testing.T, call string, err error, words ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s accepted", call)
		return
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s: %q does not say %q", call, err, w)
		}
	}
}

func TestInterfaceName(t *testing.T) {
	for _, ok := range []string{"eth0", "eth0.10", "br-lan", "ds-0123456789ab", "enp0s31f6", "a", "A_b.c-d", "abcdefghijklmno", "eth-", "_x", ".x"} {
		if err := InterfaceName(ok); err != nil {
			t.Errorf("InterfaceName(%q): %v", ok, err)
		}
	}
	for name, words := range map[string][]string{
		"":                 {"empty"},
		"abcdefghijklmnop": {"16 bytes", "at most 15"},
		".":                {"not allowed"},
		"..":               {"not allowed"},
		"a/b":              {"'/'"},
		"a:b":              {"':'"},
		"a b":              {"white space"},
		"+":                {"'+'", "patterns"},
		"-eth0":            {"starts with '-'", "option"},
		"-":                {"starts with '-'"},
		"x+":               {"'+'"},
		"bars%d":           {"'%'"},
		"é":                {"only letters"},
		"a*":               {"only letters"},
	} {
		refuses(t, fmt.Sprintf("InterfaceName(%q)", name), InterfaceName(name), words...)
	}
}

func TestSubnet(t *testing.T) {
	for _, ok := range []string{"10.0.0.0/8", "192.0.2.0/24", "198.51.100.7/32", "2001:db8::/32", "fd00:1::/64", "2001:db8::1/128",
		"1.0.0.0/8", "223.255.255.0/24", "223.255.255.255/32", "100.64.0.0/10", "64:ff9b::/96"} {
		if err := Subnet(netip.MustParsePrefix(ok)); err != nil {
			t.Errorf("Subnet(%s): %v", ok, err)
		}
	}
	for s, words := range map[string][]string{
		"0.0.0.0/0":            {"shorter than /8", "default route"},
		"10.0.0.0/7":           {"shorter than /8"},
		"::/0":                 {"shorter than /32"},
		"2000::/3":             {"shorter than /32", "/32 or longer"},
		"2001:db8::/31":        {"shorter than /32"},
		"127.0.0.0/8":          {"loopback"},
		"fe80::/64":            {"link-local"},
		"224.0.0.0/8":          {"multicast"},
		"ff02::/64":            {"multicast"},
		"::ffff:192.0.2.0/120": {"dotted form"},
		// Reserved blocks (RFC 6890), each named with what to do.
		"255.255.255.255/32": {"limited broadcast", "give another subnet"},
		"255.255.255.0/24":   {"240.0.0.0/4", "255.255.255.255", "give another subnet"},
		"240.0.0.0/4":        {"shorter than /8"},
		"240.0.0.0/8":        {"240.0.0.0/4", "reserved", "give another subnet"},
		"250.1.2.0/24":       {"240.0.0.0/4", "reserved"},
		"0.1.0.0/16":         {"0.0.0.0/8", `"this network"`, "give another subnet"},
		"0.0.0.0/8":          {"0.0.0.0/8"},
		"0.0.0.0/32":         {"0.0.0.0/8"},
		"0.255.255.255/32":   {"0.0.0.0/8"},
		"::/128":             {"::/96", "unspecified", "give another subnet"},
		"::/64":              {"not a network"},
		"::c000:200/120":     {"::/96", "IPv4-compatible"},
	} {
		refuses(t, "Subnet("+s+")", Subnet(netip.MustParsePrefix(s)), words...)
	}
	if err := Subnet(netip.Prefix{}); err == nil {
		t.Error("Subnet of nothing accepted")
	}
}

func TestMTU(t *testing.T) {
	cases := []struct {
		mtu  int
		ipv6 bool
		ok   bool
	}{{68, false, true}, {65535, true, true}, {1280, true, true}, {1279, true, false}, {1279, false, true}, {67, false, false}, {65536, false, false}, {0, false, false}, {-1, false, false}}
	for _, c := range cases {
		if err := MTU(c.mtu, c.ipv6); (err == nil) != c.ok {
			t.Errorf("MTU(%d, ipv6 %t): %v, want ok %t", c.mtu, c.ipv6, err, c.ok)
		}
	}
}

func TestMAC(t *testing.T) {
	if mac, err := MAC("02:42:C0:00:02:02"); err != nil || mac.String() != "02:42:c0:00:02:02" {
		t.Errorf("MAC: %v, %v", mac, err)
	}
	for s, word := range map[string]string{
		"":                  "write six bytes",
		"02:42:c0:00:02":    "write six bytes",
		"01:00:5e:00:00:01": "multicast",
		"00:00:00:00:00:00": "all zero",
		"00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01": "6 bytes",
	} {
		_, err := MAC(s)
		refuses(t, fmt.Sprintf("MAC(%q)", s), err, word)
	}
}

func TestSandboxKey(t *testing.T) {
	for _, ok := range []string{"/var/run/docker/netns/0123456789ab", "/run/docker/netns/default"} {
		if err := SandboxKey(ok); err != nil {
			t.Errorf("SandboxKey(%q): %v", ok, err)
		}
	}
	for key, word := range map[string]string{
		"":                              "no sandbox key",
		"run/docker/netns/x":            "absolute",
		"/run/docker/../../etc/x":       "clean",
		"/run//docker/netns/x":          "clean",
		"/run/docker/netns/x\x00y":      "usable",
		"/" + strings.Repeat("a", 5000): "usable",
	} {
		refuses(t, fmt.Sprintf("SandboxKey(%q)", key), SandboxKey(key), word)
	}
}

// FuzzCatalogue: whatever comes in, nothing panics, and what is accepted
// keeps the catalogue's promises.
func FuzzCatalogue(f *testing.F) {
	f.Add("eth0", "192.0.2.0/24", 1500, "02:42:c0:00:02:02", "/run/docker/netns/x")
	f.Add("x+", "0.0.0.0/0", 0, "01:00:5e:00:00:01", "relative")
	f.Add("bars%d", "2000::/3", 1279, "", "/a/../b")
	f.Add("-eth0", "0.1.0.0/16", 1500, "", "/")
	f.Add("eth0", "255.255.255.255/32", 1500, "", "/")
	f.Fuzz(func(t *testing.T, name, subnet string, mtu int, mac, key string) {
		if InterfaceName(name) == nil {
			if len(name) == 0 || name[0] == '-' || len(name) > MaxNameLen || strings.ContainsAny(name, "+%/: \t\n*") || name == "." || name == ".." {
				t.Fatalf("InterfaceName accepted %q", name)
			}
		}
		if p, err := netip.ParsePrefix(subnet); err == nil && Subnet(p) == nil {
			min := MinBits4
			if p.Addr().Is6() {
				min = MinBits6
			}
			reserved := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("240.0.0.0/4"), netip.MustParsePrefix("::/96")}
			if p.Bits() < min || p.Addr().IsLoopback() || p.Addr().IsMulticast() || slices.ContainsFunc(reserved, p.Overlaps) {
				t.Fatalf("Subnet accepted %s", p)
			}
		}
		if MTU(mtu, true) == nil && (mtu < 1280 || mtu > 65535) {
			t.Fatalf("MTU accepted %d with IPv6", mtu)
		}
		if m, err := MAC(mac); err == nil && (len(m) != 6 || m[0]&1 != 0) {
			t.Fatalf("MAC accepted %q", mac)
		}
		if SandboxKey(key) == nil && (!strings.HasPrefix(key, "/") || strings.Contains(key, "/../") || strings.ContainsRune(key, 0)) {
			t.Fatalf("SandboxKey accepted %q", key)
		}
	})
}

func TestClusterName(t *testing.T) {
	for name, ok := range map[string]bool{
		"c1": true, "prod.net-6_a": true, "_x": true, strings.Repeat("a", 63): true,
		"": false, strings.Repeat("a", 64): false, "-x": false, ".x": false, "a/b": false, "a b": false, "ä": false,
	} {
		if err := ClusterName(name); (err == nil) != ok {
			t.Errorf("ClusterName(%q) = %v, want ok=%t", name, err, ok)
		}
	}
}
