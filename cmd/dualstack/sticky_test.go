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

	"github.com/dualstack-net/dualstack/addrbook"
)

// TestStickyCommand: dualstack sticky prints each sticky network's
// reservations from the status file, in use or kept with the time left;
// --json prints the file; a missing file says what to do.
func TestStickyCommand(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	until := now.Add(90 * time.Minute)
	st := addrbook.StickyStatus{
		Written: now.Add(-3 * time.Second),
		Networks: []addrbook.StickyNetwork{{Network: "0123456789abcdef", Hold: "24h0m0s", Pools: []string{"local/198.51.100.0/24", "local/2001:db8:1::/64"},
			Reservations: []addrbook.StickyReservation{
				{Name: "db", Addresses: []addrbook.StickyAddress{
					{Pool: "local/198.51.100.0/24", Address: netip.MustParseAddr("198.51.100.3"), Until: &until},
					{Pool: "local/2001:db8:1::/64", Address: netip.MustParseAddr("2001:db8:1::3"), Until: &until}}},
				{Name: "web", Addresses: []addrbook.StickyAddress{
					{Pool: "local/198.51.100.0/24", Address: netip.MustParseAddr("198.51.100.2")},
					{Pool: "local/2001:db8:1::/64", Address: netip.MustParseAddr("2001:db8:1::2")}}},
			}}},
	}
	dir := t.TempDir()
	data, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, addrbook.StickyStatusFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := stickyCommand([]string{"--state-dir", dir}, &out, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"written 2026-12-04T11:59:57Z (3s ago)",
		"network 0123456789ab (hold 24h0m0s; pools local/198.51.100.0/24, local/2001:db8:1::/64)",
		"  db  198.51.100.3, 2001:db8:1::3  kept until 2026-12-04T13:30:00Z (1h30m0s left)",
		"  web  198.51.100.2, 2001:db8:1::2  in use",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("output lacks the line %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := stickyCommand([]string{"--state-dir", dir, "--json"}, &out, now); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Errorf("--json printed %q, %v; want the file", out.String(), err)
	}
	err := stickyCommand([]string{"--state-dir", t.TempDir()}, &out, now)
	if err == nil || !strings.Contains(err.Error(), "writes it once it has a network with -o sticky_addresses=true") {
		t.Errorf("no status file: error %v, want one saying when the plugin writes it", err)
	}
}
