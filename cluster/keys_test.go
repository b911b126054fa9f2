package cluster

import (
	"net/netip"
	"slices"
	"sort"
	"testing"
)

func TestAddrKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		addr, key string
	}{
		{"0.0.0.0", "00000000"},
		{"198.18.0.64", "c6120040"},
		{"255.255.255.255", "ffffffff"},
		{"::ffff:10.1.2.3", "0a010203"}, // mapped: stored as IPv4
		{"::", "00000000000000000000000000000000"},
		{"fd00:1::2", "fd000001000000000000000000000002"},
		{"fe80::1%eth0", "fe800000000000000000000000000001"}, // zone dropped
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffffffffffffffffffffffffffffffff"},
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := AddrKey(a); got != tc.key {
			t.Errorf("AddrKey(%s) = %q, want %q", tc.addr, got, tc.key)
		}
		back, err := ParseAddrKey(tc.key)
		if err != nil {
			t.Errorf("ParseAddrKey(%q): %v", tc.key, err)
			continue
		}
		if want := a.Unmap().WithZone(""); back != want {
			t.Errorf("ParseAddrKey(%q) = %s, want %s", tc.key, back, want)
		}
	}
}

func TestBlockKeyRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		prefix, key string
	}{
		{"198.18.0.64/26", "c6120040_26"},
		{"198.18.0.77/26", "c6120040_26"}, // masked
		{"10.0.0.0/8", "0a000000_8"},
		{"0.0.0.0/0", "00000000_0"},
		{"10.1.2.3/32", "0a010203_32"},
		{"fd00:1::/80", "fd000001000000000000000000000000_80"},
		{"fd00:1:0:0:1::/80", "fd000001000000000001000000000000_80"},
		{"::ffff:10.0.0.0/104", "0a000000_8"}, // mapped: stored as IPv4
	} {
		p := netip.MustParsePrefix(tc.prefix)
		if got := BlockKey(p); got != tc.key {
			t.Errorf("BlockKey(%s) = %q, want %q", tc.prefix, got, tc.key)
		}
		back, err := ParseBlockKey(tc.key)
		if err != nil {
			t.Errorf("ParseBlockKey(%q): %v", tc.key, err)
			continue
		}
		if BlockKey(back) != tc.key {
			t.Errorf("ParseBlockKey(%q) = %s, which encodes as %q", tc.key, back, BlockKey(back))
		}
	}
}

func TestParseKeysRefuseNonCanonical(t *testing.T) {
	for _, k := range []string{"", "c612004", "C6120040", "c612004g", "0a0102030", "fd00000100000000000000000000000"} {
		if a, err := ParseAddrKey(k); err == nil {
			t.Errorf("ParseAddrKey(%q) = %s, want an error", k, a)
		}
	}
	for _, k := range []string{"c6120040", "c6120040_", "c6120041_26", "c6120040_33", "c6120040_-1", "c6120040_026", "C6120040_26", "c6120040_x"} {
		if p, err := ParseBlockKey(k); err == nil {
			t.Errorf("ParseBlockKey(%q) = %s, want an error", k, p)
		}
	}
}

// Keys of one family sort as their addresses do, which the range compares
// rely on; block keys sort by first address too, and "_" sorts below "`"
// so that [first_, last`) holds every block starting in [first, last].
func TestKeyOrder(t *testing.T) {
	for _, family := range [][]string{
		{"0.0.0.0", "0.0.0.255", "0.0.1.0", "9.255.255.255", "10.0.0.0", "10.0.0.10", "10.0.0.9", "160.0.0.1", "255.255.255.255"},
		{"::", "::1", "::a", "::ff", "1::", "a::", "fd00::", "fd00::1:0", "fd00:1::", "ffff::"},
	} {
		addrs := make([]netip.Addr, len(family))
		keys := make([]string, len(family))
		for i, s := range family {
			addrs[i] = netip.MustParseAddr(s)
		}
		slices.SortFunc(addrs, netip.Addr.Compare)
		for i, a := range addrs {
			keys[i] = AddrKey(a)
		}
		if !sort.StringsAreSorted(keys) {
			t.Errorf("address keys do not sort as addresses: %v", keys)
		}
		var bkeys []string
		for _, a := range addrs {
			for _, bits := range []int{a.BitLen() - 1, a.BitLen()} {
				bkeys = append(bkeys, BlockKey(netip.PrefixFrom(a, bits).Masked()))
			}
		}
		for i := 1; i < len(bkeys); i++ {
			pa, _ := ParseBlockKey(bkeys[i-1])
			pb, _ := ParseBlockKey(bkeys[i])
			if pa.Addr().Less(pb.Addr()) && bkeys[i-1] >= bkeys[i] {
				t.Errorf("block key %q (%s) sorts after %q (%s)", bkeys[i-1], pa, bkeys[i], pb)
			}
		}
	}
	// Every block key of a block starting inside 10.0.0.0/24 lies in the
	// range LeaseBlock compares, and none outside it does.
	from, to := AddrKey(netip.MustParseAddr("10.0.0.0"))+"_", AddrKey(netip.MustParseAddr("10.0.0.255"))+"`"
	for _, tc := range []struct {
		block  string
		inside bool
	}{
		{"10.0.0.0/24", true}, {"10.0.0.0/32", true}, {"10.0.0.255/32", true}, {"10.0.0.128/25", true},
		{"10.0.0.0/23", true}, // starts inside: overlaps too
		{"9.255.255.255/32", false}, {"10.0.1.0/24", false}, {"10.0.1.0/32", false},
	} {
		k := BlockKey(netip.MustParsePrefix(tc.block))
		if got := k >= from && k < to; got != tc.inside {
			t.Errorf("block %s (key %q) in range [%q, %q) = %v, want %v", tc.block, k, from, to, got, tc.inside)
		}
	}
}

func TestPrefixArithmetic(t *testing.T) {
	for _, tc := range []struct {
		prefix, last, next string
	}{
		{"10.0.0.0/26", "10.0.0.63", "10.0.0.64/26"},
		{"10.0.0.192/26", "10.0.0.255", "10.0.1.0/26"},
		{"10.255.255.255/32", "10.255.255.255", "11.0.0.0/32"},
		{"255.255.255.0/24", "255.255.255.255", ""},
		{"fd00::/80", "fd00::ffff:ffff:ffff", "fd00::1:0:0:0/80"},
		{"fd00:0:0:0:ffff::/80", "fd00::ffff:ffff:ffff:ffff", "fd00:0:0:1::/80"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", ""},
		{"0.0.0.0/0", "255.255.255.255", ""},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		if got := lastAddr(p).String(); got != tc.last {
			t.Errorf("lastAddr(%s) = %s, want %s", p, got, tc.last)
		}
		n, ok := nextPrefix(p)
		if tc.next == "" {
			if ok {
				t.Errorf("nextPrefix(%s) = %s, want none", p, n)
			}
		} else if !ok || n != netip.MustParsePrefix(tc.next) {
			t.Errorf("nextPrefix(%s) = %s %v, want %s", p, n, ok, tc.next)
		}
	}
}
