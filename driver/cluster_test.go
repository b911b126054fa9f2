package driver

import (
	"net/netip"
	"testing"
)

// TestHostBlocks: the default block lengths, and the options'.
func TestHostBlocks(t *testing.T) {
	for _, tc := range []struct {
		mode       string
		v4, v6     string
		opt4, opt6 int
		want4      int
		want6      int
	}{
		{ModeBridge, "198.18.0.0/16", "fd00:1::/48", 0, 0, 26, 64},
		{ModeBridge, "198.18.0.0/24", "fd00:1::/64", 0, 0, 26, 80},
		{ModeBridge, "198.18.0.0/28", "fd00:1::/120", 0, 0, 28, 124},
		{ModeMacvlan, "198.18.0.0/24", "fd00:1::/64", 0, 0, 28, 120},
		{ModeBridge, "198.18.0.0/16", "fd00:1::/48", 24, 56, 24, 56},
	} {
		n := &network{Options: netOptions{Mode: tc.mode, HostBlock4: tc.opt4, HostBlock6: tc.opt6},
			V4: []pool{{Prefix: netip.MustParsePrefix(tc.v4)}}, V6: []pool{{Prefix: netip.MustParsePrefix(tc.v6)}}}
		routed := map[string]dataplane{ModeBridge: bridgePlane{}, ModeMacvlan: macvlanPlane{}}[tc.mode].routed(n)
		if v4, v6 := hostBlocks(n, routed); v4 != tc.want4 || v6 != tc.want6 {
			t.Errorf("%s %s %s (options %d, %d): blocks /%d and /%d, want /%d and /%d", tc.mode, tc.v4, tc.v6, tc.opt4, tc.opt6, v4, v6, tc.want4, tc.want6)
		}
	}
}
