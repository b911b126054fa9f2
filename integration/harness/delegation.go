//go:build integration

package harness

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The prefix delegation tests (issue 24) put the engine's host behind an
// ISP's router that delegates it a prefix by DHCPv6-PD: its uplink dspd0
// is a veth to the router's namespace, where Debian's Kea DHCPv6 server
// runs with a pool of exactly one prefix, so that the prefix the host gets
// is known in advance:
//
//	engine: dspd0 2001:db8:70::2/64 ── dspd1 2001:db8:70::1/64 :router (kea-dhcp6)
//
// The router reaches a delegated prefix only through the route the test
// installs toward the host (RouteToHost), as an ISP's router does once it
// has delegated it. Kea's timers are short: Renew after 10 s, Rebind after
// 16 s, preferred lifetime 30 s, valid 60 s. Its server identifier is
// fixed (DelegationServerID), so that a restarted Kea still answers the
// Renews sent to it; its leases are in a file of the bed's own
// (DropLeases).
const (
	DelegationIF     = "dspd0"
	DelegationHost   = "2001:db8:70::2"
	DelegationRouter = "2001:db8:70::1"
	// DelegationServerID is Kea's DUID: a DUID-LL (type 3, hardware type
	// 1) of a made-up MAC address.
	DelegationServerID = "00:03:00:01:02:00:00:00:70:01"
	// DelegationT1 and the other timers are Kea's.
	DelegationT1        = 10 * time.Second
	DelegationT2        = 16 * time.Second
	DelegationPreferred = 30 * time.Second
	DelegationValid     = 60 * time.Second

	delegationRouterNSPrefix = "dspdr-"
	delegationRouterPort     = "dspd1"
)

// Delegation is the prefix delegation test bed: the router's namespace
// and its Kea.
type Delegation struct {
	Router PeerNS
	dir    string
	kea    *exec.Cmd
	exited chan struct{}
	// logStart is where the running Kea's lines start in kea.log.
	logStart int64
}

// NewDelegation makes the prefix delegation test bed, Kea not running, and
// removes it when the test ends (after the networks the test creates
// later, which go first).
func NewDelegation(t testing.TB) *Delegation {
	t.Helper()
	if _, err := exec.LookPath("kea-dhcp6"); err != nil {
		t.Fatal("kea-dhcp6 not found: apt-get install kea-dhcp6-server")
	}
	d := &Delegation{Router: NewPeerNS(t, delegationRouterNSPrefix, DelegationIF, delegationRouterPort)}
	d.dir = t.TempDir()
	t.Cleanup(func() { d.StopKea(t) })
	r := d.Router.Name
	noDAD(t, d.Router.Path, delegationRouterPort)
	noDAD(t, EngineNetns(), DelegationIF)
	IPRun(t, "-n", r, "addr", "add", DelegationRouter+"/64", "dev", delegationRouterPort, "nodad")
	IPRun(t, "-n", Eng.Netns, "addr", "add", DelegationHost+"/64", "dev", DelegationIF, "nodad")
	IPRun(t, "-n", r, "link", "set", delegationRouterPort, "up")
	IPRun(t, "-n", Eng.Netns, "link", "set", DelegationIF, "up")
	return d
}

// keaConfig is Kea's configuration for a pool of the one prefix pool.
func (d *Delegation) keaConfig(pool netip.Prefix) string {
	cfg := map[string]any{"Dhcp6": map[string]any{
		"interfaces-config": map[string]any{"interfaces": []string{delegationRouterPort}},
		"server-id": map[string]any{
			"type": "LL", "htype": 1, "persist": false,
			"identifier": strings.ReplaceAll(DelegationServerID[len("00:03:00:01:"):], ":", ""),
		},
		"lease-database": map[string]any{"type": "memfile", "name": d.leaseFile(), "lfc-interval": 0},
		"renew-timer":    int(DelegationT1.Seconds()), "rebind-timer": int(DelegationT2.Seconds()),
		"preferred-lifetime": int(DelegationPreferred.Seconds()), "valid-lifetime": int(DelegationValid.Seconds()),
		"subnet6": []any{map[string]any{
			"subnet": netip.MustParsePrefix(DelegationHost + "/64").Masked().String(), "interface": delegationRouterPort,
			"pd-pools": []any{map[string]any{"prefix": pool.Addr().String(), "prefix-len": pool.Bits(), "delegated-len": pool.Bits()}},
		}},
		"loggers": []any{map[string]any{
			"name": "kea-dhcp6", "severity": "INFO",
			"output_options": []any{map[string]any{"output": d.logFile()}},
		}},
	}}
	b, _ := json.MarshalIndent(cfg, "", "  ")
	return string(b)
}

func (d *Delegation) leaseFile() string { return filepath.Join(d.dir, "leases.csv") }
func (d *Delegation) logFile() string   { return filepath.Join(d.dir, "kea.log") }

// StartKea starts Kea in the router's namespace, delegating pool (the
// only prefix it hands out), and waits until it serves.
func (d *Delegation) StartKea(t testing.TB, pool netip.Prefix) {
	t.Helper()
	if d.kea != nil {
		t.Fatal("StartKea: Kea already runs")
	}
	config := filepath.Join(d.dir, "kea-dhcp6.conf")
	if err := os.WriteFile(config, []byte(d.keaConfig(pool)), 0o644); err != nil {
		t.Fatal(err)
	}
	d.logStart = 0
	if fi, err := os.Stat(d.logFile()); err == nil {
		d.logStart = fi.Size()
	}
	out, err := os.OpenFile(filepath.Join(d.dir, "kea.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// ip netns exec execs kea-dhcp6: the process is Kea's own.
	cmd := exec.Command("ip", "netns", "exec", d.Router.Name, "kea-dhcp6", "-c", config)
	cmd.Env = append(os.Environ(), "KEA_PIDFILE_DIR="+d.dir, "KEA_LOCKFILE_DIR="+d.dir)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kea-dhcp6: %v", err)
	}
	d.kea, d.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(d.exited) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-d.exited:
			d.kea = nil
			t.Fatalf("kea-dhcp6 exited during start: %s\n%s", cmd.ProcessState, d.KeaLog())
		default:
		}
		if strings.Contains(d.KeaLog(), "DHCP6_STARTED") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kea-dhcp6 did not start within 10s:\n%s", d.KeaLog())
		}
	}
}

// StopKea stops Kea (SIGTERM, SIGKILL after 5 s), if it runs.
func (d *Delegation) StopKea(t testing.TB) {
	t.Helper()
	if d.kea == nil {
		return
	}
	_ = d.kea.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = d.kea.Process.Kill()
		<-d.exited
	}
	d.kea = nil
}

// Renumber makes Kea delegate pool instead, forgetting every lease it
// gave: it stops Kea, drops its leases and starts it again (its server
// identifier stays).
func (d *Delegation) Renumber(t testing.TB, pool netip.Prefix) {
	t.Helper()
	d.StopKea(t)
	if err := os.Remove(d.leaseFile()); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	d.StartKea(t, pool)
}

// RouteToHost routes prefix from the router to the host, as an ISP's
// router does for the prefix it delegated.
func (d *Delegation) RouteToHost(t testing.TB, prefix netip.Prefix) {
	t.Helper()
	IPRun(t, "-n", d.Router.Name, "-6", "route", "replace", prefix.String(), "via", DelegationHost, "dev", delegationRouterPort)
}

// KeaLog is what the running (or last) Kea logged.
func (d *Delegation) KeaLog() string {
	b, _ := os.ReadFile(d.logFile())
	if int64(len(b)) < d.logStart {
		return string(b)
	}
	return string(b[d.logStart:])
}

// KeaLease is one prefix lease in Kea's lease file.
type KeaLease struct {
	Prefix netip.Prefix
	DUID   string // the client's, "00:01:…"
	IAID   uint32
	Valid  int // seconds; 0 when released
	// Expire is when the lease ends.
	Expire time.Time
}

// Leases lists the prefix leases in Kea's lease file, the last record of
// each prefix (the file is a journal: each change appends a line).
func (d *Delegation) Leases(t testing.TB) []KeaLease {
	t.Helper()
	f, err := os.Open(d.leaseFile())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := csv.NewReader(f)
	rd.FieldsPerRecord = -1
	recs, err := rd.ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("Kea's lease file %s: %v", d.leaseFile(), err)
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	var out []KeaLease
	index := map[netip.Prefix]int{}
	for _, r := range recs[1:] {
		if len(r) < len(recs[0]) { // a line Kea is writing
			continue
		}
		if r[col["lease_type"]] != "2" { // 2: IA_PD
			continue
		}
		l, err := parseKeaLease(r, col)
		if err != nil {
			t.Fatalf("Kea's lease file %s: %q: %v", d.leaseFile(), r, err)
		}
		if i, ok := index[l.Prefix]; ok {
			out[i] = l
			continue
		}
		index[l.Prefix] = len(out)
		out = append(out, l)
	}
	return out
}

func parseKeaLease(r []string, col map[string]int) (KeaLease, error) {
	addr, err := netip.ParseAddr(r[col["address"]])
	if err != nil {
		return KeaLease{}, err
	}
	bits, err := strconv.Atoi(r[col["prefix_len"]])
	if err != nil {
		return KeaLease{}, err
	}
	iaid, err := strconv.ParseUint(r[col["iaid"]], 10, 32)
	if err != nil {
		return KeaLease{}, err
	}
	valid, err := strconv.Atoi(r[col["valid_lifetime"]])
	if err != nil {
		return KeaLease{}, err
	}
	expire, err := strconv.ParseInt(r[col["expire"]], 10, 64)
	if err != nil {
		return KeaLease{}, err
	}
	return KeaLease{
		Prefix: netip.PrefixFrom(addr, bits), DUID: r[col["duid"]], IAID: uint32(iaid),
		Valid: valid, Expire: time.Unix(expire, 0),
	}, nil
}

// String is the lease as a line of a report.
func (l KeaLease) String() string {
	return fmt.Sprintf("%s to DUID %s IAID %d (valid %ds, until %s)", l.Prefix, l.DUID, l.IAID, l.Valid, l.Expire.Format(time.TimeOnly))
}

// LifetimeAddr is one IPv6 address with its lifetimes, as `ip -j addr`
// reports them.
type LifetimeAddr struct {
	Local      string `json:"local"`
	PrefixLen  int    `json:"prefixlen"`
	Scope      string `json:"scope"`
	NoDAD      bool   `json:"nodad"`
	Deprecated bool   `json:"deprecated"`
	Tentative  bool   `json:"tentative"`
	// Seconds left; 4294967295 is forever.
	Preferred uint32 `json:"preferred_life_time"`
	Valid     uint32 `json:"valid_life_time"`
}

// Prefix is the address with its prefix length.
func (a LifetimeAddr) Prefix() netip.Prefix {
	ip, _ := netip.ParseAddr(a.Local)
	return netip.PrefixFrom(ip, a.PrefixLen)
}

// String is the address as `ip addr` would show it.
func (a LifetimeAddr) String() string {
	s := fmt.Sprintf("%s/%d valid %ds preferred %ds", a.Local, a.PrefixLen, a.Valid, a.Preferred)
	if a.Deprecated {
		s += " deprecated"
	}
	return s
}

// GlobalAddrs6 lists the global IPv6 addresses of dev in the network
// namespace at nsPath.
func GlobalAddrs6(nsPath, dev string) ([]LifetimeAddr, error) {
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-j", "-6", "addr", "show", "dev", dev).Output()
	if err != nil {
		return nil, fmt.Errorf("ip -6 addr show dev %s in %s: %v", dev, nsPath, err)
	}
	var links []struct {
		AddrInfo []LifetimeAddr `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("ip -6 addr show dev %s in %s: %v: %s", dev, nsPath, err, out)
	}
	var addrs []LifetimeAddr
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Scope == "global" {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, nil
}
