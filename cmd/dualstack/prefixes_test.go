package main

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/driver"
)

// TestPrefixesCommand: dualstack prefixes prints each uplink's lease and
// each network's /64s from the status file, with the times left counted
// from now; a missing file says what to do.
func TestPrefixesCommand(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	cur := delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:2200::/56"), Preferred: now.Add(1800 * time.Second), Valid: now.Add(3600 * time.Second)}
	old := delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:100::/56"), Preferred: now.Add(-time.Minute), Valid: now.Add(2400 * time.Second)}
	st := driver.PrefixStatus{
		Written: now.Add(-5 * time.Second),
		Uplinks: []delegation.Lease{{Uplink: "eth0", State: "bound", Current: &cur, Stale: []delegation.Prefix{old},
			Renew: now.Add(900 * time.Second), Rebind: now.Add(1440 * time.Second), Server: "00030001020000007001", DUID: "00030001aabbccddeeff", IAID: 7}},
		Networks: []driver.NetworkPrefixes{{Network: "0123456789abcdef", Bridge: "ds-0123456789ab", Uplink: "eth0", SubnetID: 1,
			Current:    &delegation.Prefix{Prefix: netip.MustParsePrefix("2001:db8:2200:1::/64"), Preferred: cur.Preferred, Valid: cur.Valid},
			Deprecated: []delegation.Prefix{{Prefix: netip.MustParsePrefix("2001:db8:100:1::/64"), Preferred: now, Valid: old.Valid}}}},
	}
	dir := t.TempDir()
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, driver.PrefixStatusFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := prefixesCommand([]string{"--state-dir", dir}, &out, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"uplink eth0: bound",
		"  prefix 2001:db8:2200::/56  preferred 30m0s, valid 1h0m0s",
		"  renew in 15m0s, rebind in 24m0s, server 00030001020000007001",
		"  deprecated 2001:db8:100::/56  preferred 0s, valid 40m0s",
		"network 0123456789ab (bridge ds-0123456789ab, uplink eth0, subnet ID 1)",
		"  2001:db8:2200:1::/64  preferred 30m0s, valid 1h0m0s",
		"  2001:db8:100:1::/64  deprecated, valid 40m0s",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("output lacks the line %q:\n%s", want, out.String())
		}
	}
	err := prefixesCommand([]string{"--state-dir", t.TempDir()}, &out, now)
	if err == nil || !strings.Contains(err.Error(), "writes it once it has a delegated_prefix network") {
		t.Errorf("no status file: error %v, want one saying when the plugin writes it", err)
	}
}
