//go:build integration

package pd

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// status is what a user reads in the plugin's status file
// (STATE_DIR/prefixes.json, `dualstack prefixes --json`).
type status struct {
	Uplinks []struct {
		Uplink  string    `json:"uplink"`
		State   string    `json:"state"`
		Current *prefix   `json:"current"`
		Stale   []prefix  `json:"stale"`
		Server  string    `json:"server"`
		DUID    string    `json:"duid"`
		IAID    uint32    `json:"iaid"`
		Renew   time.Time `json:"renew"`
		Error   string    `json:"error"`
	} `json:"uplinks"`
	Networks []struct {
		Network    string   `json:"network"`
		Uplink     string   `json:"uplink"`
		SubnetID   uint64   `json:"subnetID"`
		Current    *prefix  `json:"current"`
		Deprecated []prefix `json:"deprecated"`
	} `json:"networks"`
}

type prefix struct {
	Prefix netip.Prefix `json:"prefix"`
	Valid  time.Time    `json:"valid"`
}

// statusFile is the status file in the plugin's state directory (its
// state mount's source, see harness.PluginSettings).
func statusFile() string { return filepath.Join(harness.Eng.Dir, "plugin-state", "prefixes.json") }

// readStatus reads the status file.
func readStatus() (status, []byte, error) {
	var st status
	data, err := os.ReadFile(statusFile())
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	return st, data, err
}

// hexID is a DUID in hex digits alone, lower case, however written.
func hexID(s string) string { return strings.ToLower(strings.ReplaceAll(s, ":", "")) }

// wantStatus wants the status file to show, within 5 s, on the bed's
// uplink the lease current (none when invalid) of the client of lease
// (none when zero) with the stale prefixes stale, and for network net
// (its ID) the subnet ID 1, the /64 cur and the deprecated ones dep.
func wantStatus(t *testing.T, network string, lease harness.KeaLease, current netip.Prefix, stale []netip.Prefix, cur netip.Prefix, dep []netip.Prefix) {
	t.Helper()
	id := harness.NetID(t, network)
	err := eventually(5*time.Second, func() error {
		st, data, err := readStatus()
		if err != nil {
			return fmt.Errorf("the status file %s: %v", statusFile(), err)
		}
		if len(st.Uplinks) != 1 || len(st.Networks) != 1 {
			return fmt.Errorf("the status file shows %d uplinks and %d networks, want 1 each:\n%s", len(st.Uplinks), len(st.Networks), data)
		}
		u, n := st.Uplinks[0], st.Networks[0]
		bad := u.Uplink != harness.DelegationIF || prefixOf(u.Current) != current || !slices.Equal(prefixes(u.Stale), stale) ||
			n.Network != id || n.Uplink != harness.DelegationIF || n.SubnetID != 1 || prefixOf(n.Current) != cur || !slices.Equal(prefixes(n.Deprecated), dep)
		if lease.DUID != "" {
			bad = bad || hexID(u.DUID) != hexID(lease.DUID) || u.IAID != lease.IAID || hexID(u.Server) != hexID(harness.DelegationServerID)
		}
		if bad {
			return fmt.Errorf("the status file shows\n%s\nwant on %s the prefix %v (stale %v) of Kea's lease %v (server %s), and for network %s (subnet ID 1) %v (deprecated %v)",
				data, harness.DelegationIF, current, stale, lease, harness.DelegationServerID, id, cur, dep)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func prefixOf(p *prefix) netip.Prefix {
	if p == nil {
		return netip.Prefix{}
	}
	return p.Prefix
}

func prefixes(ps []prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, p.Prefix)
	}
	return out
}

// wantCLI wants `dualstack prefixes` to name each of words.
func wantCLI(t *testing.T, words ...string) {
	t.Helper()
	cli := filepath.Join(harness.Repo, "build", "dualstack")
	out, err := exec.Command(cli, "prefixes", "--state-dir", filepath.Dir(statusFile())).CombinedOutput()
	if err != nil {
		t.Errorf("%s prefixes: %v: %s", cli, err, out)
		return
	}
	for _, w := range words {
		if !strings.Contains(string(out), w) {
			t.Errorf("dualstack prefixes does not show %s:\n%s", w, out)
		}
	}
}

// wantUnreachable wants the host's routes of protocol 216 (dualstack's
// for delegated prefixes) to be exactly unreachable routes for valid.
func wantUnreachable(t *testing.T, valid ...netip.Prefix) {
	t.Helper()
	err := eventually(5*time.Second, func() error {
		out, err := exec.Command("ip", "-n", harness.Eng.Netns, "-6", "route", "show", "proto", "216").Output()
		if err != nil {
			return fmt.Errorf("ip -6 route show proto 216 in the engine's namespace: %v", err)
		}
		var got, want []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "unreachable" {
				got = append(got, f[1])
			}
		}
		for _, p := range valid {
			want = append(want, p.String())
		}
		if !slices.Equal(harness.Sorted(got), harness.Sorted(want)) {
			return fmt.Errorf("the host's routes of protocol 216:\n%s\nwant unreachable routes for %v", out, want)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}
