//go:build integration

package bgp

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/integration/harness"
)

// Issue 21, item 6: a router that announces hostile routes to an importing
// host changes nothing in the host's routing table.

// hostTable is h's whole routing table, both families, every table, the
// volatile fields (IPv6 expiry) dropped.
func hostTable(t *testing.T, h *harness.ClusterHost) string {
	t.Helper()
	var out strings.Builder
	for _, fam := range []string{"-4", "-6"} {
		b, err := exec.Command("ip", "-n", h.Engine.Netns, fam, "route", "show", "table", "all").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: ip route show table all: %v: %s", h.Name, err, b)
		}
		out.Write(b)
	}
	return regexp.MustCompile(` expires [0-9]+sec`).ReplaceAllString(out.String(), "")
}

// stableTable is h's table once it stayed the same for 3 s: the IPv6
// link-local routes of a new container's veth come after its DAD.
func stableTable(t *testing.T, h *harness.ClusterHost) string {
	t.Helper()
	last := hostTable(t, h)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		time.Sleep(3 * time.Second)
		now := hostTable(t, h)
		if now == last {
			return now
		}
		last = now
	}
	t.Fatalf("%s's routing table kept changing for 30 s:\n%s", h.Name, last)
	return ""
}

// configureRouter gives BIRD config and has it reload it; the sessions
// stay up (only filters and static routes change).
func configureRouter(t *testing.T, config string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(harness.Bed.RouterDir, "bird.conf"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := harness.Bed.Birdc("configure")
	if err != nil || !strings.Contains(out, "onfigur") {
		t.Fatalf("birdc configure: %v: %s\nconfig:\n%s", err, out, config)
	}
}

// hostileRouterConfig is the bed's BIRD configuration with routes of
// static protocol name (each prefix with its next hop towards h, the
// router's own address on h's link when invalid) exported to host h only, and kept
// out of the router's kernel and the other hosts.
func hostileRouterConfig(t *testing.T, h *harness.ClusterHost, name string, routes map[netip.Prefix]netip.Addr) string {
	t.Helper()
	c := harness.Bed.BirdConfig()
	keep := fmt.Sprintf(`proto != "%s"`, name)
	for _, r := range [][2]string{
		{"protocol kernel { ipv4 { export all; }; }", "protocol kernel { ipv4 { export where " + keep + "; }; }"},
		{"\tipv4 { import all; export all; };\n", "\tipv4 { import all; export where " + keep + "; };\n"},
		{fmt.Sprintf("protocol bgp %s from bedhost {\n\tneighbor %s as %d;\n", h.Name, h.Addr4, h.ASN),
			fmt.Sprintf("protocol bgp %s from bedhost {\n\tneighbor %s as %d;\n\tipv4 { export filter hostile_out; };\n", h.Name, h.Addr4, h.ASN)},
		{"template bgp bedhost {", "filter hostile_out {\n%NEXTHOPS%\taccept;\n}\n\ntemplate bgp bedhost {"},
	} {
		if !strings.Contains(c, r[0]) {
			t.Fatalf("the bed's BIRD configuration has no %q: update hostileRouterConfig", r[0])
		}
		c = strings.Replace(c, r[0], r[1], 1)
	}
	var hops, static strings.Builder
	fmt.Fprintf(&static, "\nprotocol static %s {\n\tipv4;\n", name)
	for p, via := range routes {
		fmt.Fprintf(&static, "\troute %s via \"p-%s\";\n", p, h.Link.Name)
		// BIRD sends a device route with no next hop: each gets one.
		if !via.IsValid() {
			via = h.Link.GW4
		}
		fmt.Fprintf(&hops, "\tif proto = %q && net = %s then bgp_next_hop = %s;\n", name, p, via)
	}
	static.WriteString("}\n")
	return strings.Replace(c, "%NEXTHOPS%", hops.String(), 1) + static.String()
}

// bgpStatusLine is h's BGP line in `dualstack cluster status`.
func bgpStatusLine(t *testing.T, h *harness.ClusterHost) string {
	t.Helper()
	out, err := harness.ClusterCLI("status")
	if err != nil {
		t.Fatalf("dualstack cluster status: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == h.Name && strings.Contains(line, "router ID") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// learnedCount is how many prefixes h's speaker reports learned.
func learnedCount(t *testing.T, h *harness.ClusterHost) int {
	t.Helper()
	m := regexp.MustCompile(`(\d+) learned`).FindStringSubmatch(bgpStatusLine(t, h))
	if m == nil {
		return -1
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// TestBGPHostile: the router announces to host 1 (importing, with
// BGP_MAX_PREFIXES=20) a /32 inside the host's own block (its container's
// address), the default route, a prefix equal to an administrator's
// static route on the host, a prefix with an off-link next hop and one
// whose next hop is the host's container: the host's whole routing table
// is the same before, while they are announced and after they are
// withdrawn, the static route included, and the refusals are logged.
// Then 30 prefixes, more than the limit: the session is torn down, the
// reason in `dualstack cluster status` and the plugin's log, and the
// table is still the same.
func TestBGPHostile(t *testing.T) {
	harness.WaitSessions(t)
	h1 := harness.Bed.Hosts[0]
	base := harness.Bed.BirdConfig()
	setLimit := func(n int) {
		t.Helper()
		h1.Docker(t, "plugin", "disable", "-f", harness.PluginName)
		h1.Docker(t, "plugin", "set", harness.PluginName, fmt.Sprintf("BGP_MAX_PREFIXES=%d", n))
		h1.Docker(t, "plugin", "enable", harness.PluginName)
	}
	t.Cleanup(func() {
		configureRouter(t, base)
		_, _ = h1.DockerCmd("plugin", "disable", "-f", harness.PluginName)
		_, _ = h1.DockerCmd("plugin", "set", harness.PluginName, "BGP_MAX_PREFIXES=1000")
		_, _ = h1.DockerCmd("plugin", "enable", harness.PluginName)
		harness.WaitSessions(t)
	})
	setLimit(20)
	harness.WaitSessions(t)
	harness.ClusterNet(t, "bgp-hostile", []*harness.ClusterHost{h1}, "-o", "cluster=bgp-hostile", "-o", "cluster_routes=bgp", "--subnet", "198.19.128.0/20")
	cs := harness.StartEverywhere(t, []*harness.ClusterHost{h1}, "bgp-hostile", 1, false)
	blocks := hostBlocks(t, "bgp-hostile", h1)
	addrs := harness.GlobalAddrs(t, cs[0])
	if len(blocks) != 1 || len(addrs) != 1 {
		t.Fatalf("%s holds blocks %v, its container has %v: want one of each", h1.Name, blocks, addrs)
	}
	container := addrs[0].Addr()
	hostileNet := netip.MustParsePrefix("198.19.140.0/22")
	if blocks[0].Overlaps(hostileNet) {
		t.Fatalf("%s's block %s is inside %s, where the test's hostile prefixes go", h1.Name, blocks[0], hostileNet)
	}
	admin := netip.MustParsePrefix("198.19.140.0/24")
	if out, err := exec.Command("ip", "-n", h1.Engine.Netns, "route", "add", admin.String(), "via", harness.Bed.Router4(h1).String(), "proto", "static").CombinedOutput(); err != nil {
		t.Fatalf("the administrator's static route: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "-n", h1.Engine.Netns, "route", "del", admin.String(), "proto", "static").Run()
	})
	harness.Within(t, 10*time.Second, func() error {
		if m := missingAtRouter(t, h1, blocks); len(m) > 0 {
			return fmt.Errorf("the router lacks %v", m)
		}
		return nil
	})
	before := stableTable(t, h1)
	learnedBefore := learnedCount(t, h1)

	hostile := map[netip.Prefix]netip.Addr{
		netip.PrefixFrom(container, 32):          {},                                   // inside the host's own block
		netip.MustParsePrefix("0.0.0.0/0"):       {},                                   // the default route
		admin:                                    {},                                   // the administrator's
		netip.MustParsePrefix("198.19.141.0/26"): netip.MustParseAddr("198.51.100.99"), // off-link
		netip.MustParsePrefix("198.19.142.0/26"): container,                            // the host's own container
	}
	configureRouter(t, hostileRouterConfig(t, h1, "hostile", hostile))
	harness.Within(t, 15*time.Second, func() error {
		if n := learnedCount(t, h1); n < learnedBefore+len(hostile) {
			time.Sleep(200 * time.Millisecond)
			static, _ := harness.Bed.Birdc("show", "route", "protocol", "hostile")
			export, _ := harness.Bed.Birdc("show", "protocols", "all", h1.Name)
			return fmt.Errorf("%s learned %d prefixes, want %d more than %d: %s\nthe router's hostile routes:\n%s\nexported to %s:\n%s\nits log:\n%s", h1.Name, n, len(hostile), learnedBefore, bgpStatusLine(t, h1), static, h1.Name, export, harness.Bed.RouterLog(15))
		}
		return nil
	})
	time.Sleep(time.Second) // the driver routes what the speaker learned
	if after := hostTable(t, h1); after != before {
		t.Errorf("hostile routes changed %s's routing table:\n%s\nbefore:\n%s", h1.Name, after, before)
	}
	log := strings.ReplaceAll(h1.Engine.PluginLog(), `\`, "")
	for _, p := range []string{netip.PrefixFrom(container, 32).String(), admin.String(), "198.19.141.0/26", "198.19.142.0/26"} {
		if !regexp.MustCompile(`level=warning msg="route refused[^\n]*prefix=` + regexp.QuoteMeta(p)).MatchString(log) {
			t.Errorf("no refusal of %s in the plugin's log:\n%s", p, harness.LastLines(log, 30))
		}
	}
	t.Logf("%s's refusals:\n%s", h1.Name, grepLines(log, "route refused"))

	// Withdrawn: the table as before, the administrator's route there.
	configureRouter(t, base)
	harness.Within(t, 15*time.Second, func() error {
		if n := learnedCount(t, h1); n != learnedBefore {
			time.Sleep(200 * time.Millisecond)
			return fmt.Errorf("%s still learns %d prefixes, want %d", h1.Name, n, learnedBefore)
		}
		return nil
	})
	time.Sleep(time.Second)
	if after := hostTable(t, h1); after != before {
		t.Errorf("after the withdrawal, %s's routing table:\n%s\nbefore:\n%s", h1.Name, after, before)
	}
	if out, _ := exec.Command("ip", "-n", h1.Engine.Netns, "route", "show", admin.String()).CombinedOutput(); !strings.Contains(string(out), "proto static") {
		t.Errorf("the administrator's static route went with the withdrawal: %q", out)
	}

	// More than BGP_MAX_PREFIXES: the session goes, and stays down.
	flood := map[netip.Prefix]netip.Addr{}
	for i := range 30 {
		flood[netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, 143, byte(i)}), 32)] = netip.Addr{}
	}
	configureRouter(t, hostileRouterConfig(t, h1, "flood", flood))
	harness.Within(t, 15*time.Second, func() error {
		line := bgpStatusLine(t, h1)
		if !strings.Contains(line, "prefix limit exceeded") || !strings.Contains(line, "BGP_MAX_PREFIXES=20") {
			time.Sleep(200 * time.Millisecond)
			return fmt.Errorf("dualstack cluster status shows %q for %s, want the session torn down by BGP_MAX_PREFIXES=20", line, h1.Name)
		}
		return nil
	})
	t.Logf("dualstack cluster status: %s", bgpStatusLine(t, h1))
	log = strings.ReplaceAll(h1.Engine.PluginLog(), `\`, "")
	if !regexp.MustCompile(`level=error msg="BGP session torn down: too many prefixes"[^\n]*BGP_MAX_PREFIXES=20`).MatchString(log) {
		t.Errorf("the plugin's log does not say why the session went:\n%s", harness.LastLines(log, 20))
	}
	time.Sleep(6 * time.Second) // BIRD's error wait is at most 5 s
	if st := harness.Bed.BirdProtocols(t)[h1.Name]; st == "Established" {
		t.Errorf("the router's session with %s is up again after the limit tore it down", h1.Name)
	}
	if after := hostTable(t, h1); after != before {
		t.Errorf("after the flood, %s's routing table:\n%s\nbefore:\n%s", h1.Name, after, before)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
