package addrbook

import (
	"math"
	"net/netip"
	"testing"
)

// TestSpan: address counts of IPv4 and IPv6 ranges, past 2^64 too.
func TestSpan(t *testing.T) {
	for _, c := range []struct {
		prefix string
		want   float64
	}{
		{"198.51.100.0/24", 254},
		{"198.51.100.0/31", 2},
		{"2001:db8::/64", math.Exp2(64) - 1},
		{"2001:db8::/48", math.Exp2(80) - 1},
		{"2001:db8::/127", 2},
	} {
		first, last := usableRange(netip.MustParsePrefix(c.prefix))
		if got := span(first, last); got != c.want {
			t.Errorf("%s: %v usable addresses, want %v", c.prefix, got, c.want)
		}
	}
}
