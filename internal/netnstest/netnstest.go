// Package netnstest gives tests throwaway network namespaces and ways to look
// into them the way a user would (ip(8), /proc/sys, ICMP echo), so that tests
// of the driver's kernel building blocks never touch the host's own
// namespace.
//
// Every namespace is named "dstest-<pid>-<n>" under /var/run/netns, so it is
// visible to `ip netns list` and usable with `ip -n NAME`, and it is removed
// by t.Cleanup whether the test passes or fails. Link names used in tests
// should start with LinkPrefix so that Guard can prove none leaked into the
// host's namespace.
//
// Everything here needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
package netnstest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	vnetns "github.com/vishvananda/netns"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// RunDir is where named network namespaces live (as with `ip netns add`).
const RunDir = "/var/run/netns"

// LinkPrefix starts the name of every link a test creates; Guard fails the
// test binary if a link with this prefix shows up in the host's namespace.
const LinkPrefix = "dst"

var counter atomic.Int64

// NS is a throwaway named network namespace.
type NS struct {
	// Name is the namespace's name, for `ip -n Name` and `ip netns exec Name`.
	Name string
	// Path is the bind-mounted namespace file, as Docker's SandboxKey would be.
	Path string
}

// Skip skips t unless it runs as root with iproute2 installed.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip(8)")
	}
}

// New creates a network namespace for t and removes it when t ends. The
// calling goroutine's thread is not moved: the namespace is created on a
// separate locked thread that is switched back, or discarded if it cannot be.
func New(t testing.TB) NS {
	t.Helper()
	Skip(t)
	name := fmt.Sprintf("dstest-%d-%d", os.Getpid(), counter.Add(1))
	if err := create(name); err != nil {
		t.Fatalf("create test network namespace %s: %v", name, err)
	}
	ns := NS{Name: name, Path: filepath.Join(RunDir, name)}
	t.Cleanup(func() {
		if err := vnetns.DeleteNamed(name); err != nil {
			t.Errorf("remove test network namespace %s: %v", name, err)
		}
	})
	return ns
}

func create(name string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		origin, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer origin.Close()
		h, err := vnetns.NewNamed(name)
		if err == nil {
			h.Close()
		}
		if serr := vnetns.Set(origin); serr != nil {
			// Stuck in the new namespace: exit locked so Go kills the thread.
			errc <- errors.Join(err, fmt.Errorf("switch back: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

// IP runs `ip -n NS args...` and returns its standard output.
func (ns NS) IP(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := ns.TryIP(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TryIP runs `ip -n NS args...` and returns its standard output, or an error
// carrying its standard error.
func (ns NS) TryIP(args ...string) ([]byte, error) {
	full := append([]string{"-n", ns.Name}, args...)
	cmd := exec.Command("ip", full...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("ip %s: %v: %s", strings.Join(full, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Sysctl reads /proc/sys/KEY inside the namespace through
// `ip netns exec NS cat`, independently of the code under test. key uses
// slashes: net/ipv6/conf/eth0/accept_ra.
func (ns NS) Sysctl(t testing.TB, key string) string {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "cat", filepath.Join("/proc/sys", key))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("read %s in netns %s: %v: %s", key, ns.Name, err, out)
	}
	return strings.TrimSpace(string(out))
}

// SetSysctl writes value to /proc/sys/KEY inside the namespace and checks
// that it reads back. key uses slashes: net/ipv4/ip_forward.
//
// A test that needs a setting in a known state sets it: a new namespace
// does not start from the kernel's defaults everywhere. With
// net.core.devconf_inherit_init_net=0 (the kernel's default) it copies
// the host's IPv4 settings, ip_forward among them (1 where Docker runs),
// and with 1 the host's IPv6 settings too.
func (ns NS) SetSysctl(t testing.TB, key, value string) {
	t.Helper()
	err := netns.Do(ns.Path, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644)
	})
	if err != nil {
		t.Fatalf("set %s to %s in netns %s: %v", key, value, ns.Name, err)
	}
	if got := ns.Sysctl(t, key); got != value {
		t.Fatalf("%s in netns %s reads %s after setting it to %s", key, ns.Name, got, value)
	}
}

// ForwardingOff turns IPv4 and IPv6 forwarding off in the namespace, as
// on a host freshly booted, whatever the host's own settings that the
// namespace inherited (see SetSysctl).
func (ns NS) ForwardingOff(t testing.TB) {
	t.Helper()
	ns.SetSysctl(t, "net/ipv4/ip_forward", "0")
	ns.SetSysctl(t, "net/ipv6/conf/all/forwarding", "0")
}

// Link is what `ip -d -j link show` tells about a link.
type Link struct {
	Index     int      `json:"ifindex"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       int      `json:"mtu"`
	OperState string   `json:"operstate"`
	Address   string   `json:"address"`
	Master    string   `json:"master"`
	// Alias is the link's alias, dualstack's mark on its own links.
	Alias string `json:"ifalias"`
	// Link is the parent of a macvlan or vlan link.
	Link     string `json:"link"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			Mode string `json:"mode"` // macvlan mode
		} `json:"info_data"`
		SlaveKind string `json:"info_slave_kind"`
		SlaveData struct {
			Hairpin  *bool  `json:"hairpin"`
			Isolated *bool  `json:"isolated"`
			State    string `json:"state"`
		} `json:"info_slave_data"`
	} `json:"linkinfo"`
}

// Up reports whether the link is administratively up.
func (l Link) Up() bool { return slices.Contains(l.Flags, "UP") }

// Links lists the namespace's links as `ip -d -j link show` reports them.
func (ns NS) Links(t testing.TB) []Link {
	t.Helper()
	var links []Link
	if err := json.Unmarshal(ns.IP(t, "-d", "-j", "link", "show"), &links); err != nil {
		t.Fatalf("parse ip -j link output of netns %s: %v", ns.Name, err)
	}
	return links
}

// Link returns the named link as `ip -d -j link show dev NAME` reports it,
// and whether it exists.
func (ns NS) Link(t testing.TB, name string) (Link, bool) {
	t.Helper()
	for _, l := range ns.Links(t) {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// Addr is one address as `ip -j addr show` reports it.
type Addr struct {
	Family    string `json:"family"`
	Local     string `json:"local"`
	PrefixLen int    `json:"prefixlen"`
	Scope     string `json:"scope"`
	NoDAD     bool   `json:"nodad"`
	Tentative bool   `json:"tentative"`
	DADFailed bool   `json:"dadfailed"`
	// Deprecated: the preferred lifetime ended; Valid and Preferred are
	// the lifetimes left in seconds (4294967295: forever).
	Deprecated bool   `json:"deprecated"`
	Valid      uint32 `json:"valid_life_time"`
	Preferred  uint32 `json:"preferred_life_time"`
}

// Prefix returns the address with its prefix length.
func (a Addr) Prefix() netip.Prefix {
	ip, err := netip.ParseAddr(a.Local)
	if err != nil {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(ip, a.PrefixLen)
}

// Addrs lists the addresses of link dev as `ip -j addr show dev DEV` reports
// them.
func (ns NS) Addrs(t testing.TB, dev string) []Addr {
	t.Helper()
	var out []struct {
		AddrInfo []Addr `json:"addr_info"`
	}
	if err := json.Unmarshal(ns.IP(t, "-j", "addr", "show", "dev", dev), &out); err != nil {
		t.Fatalf("parse ip -j addr output of %s in netns %s: %v", dev, ns.Name, err)
	}
	var addrs []Addr
	for _, o := range out {
		addrs = append(addrs, o.AddrInfo...)
	}
	return addrs
}

// Ping sends one ICMP (or ICMPv6) echo request from inside the namespace at
// nsPath to dst and waits up to timeout for the matching echo reply from dst.
// It uses a raw socket opened inside the namespace, so no ping(8) is needed.
func Ping(nsPath string, dst netip.Addr, timeout time.Duration) error {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if dst.Is6() && !dst.Is4In6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	var conn net.PacketConn
	if err := netns.Do(nsPath, func() error {
		c, err := net.ListenPacket(network, "")
		conn = c
		return err
	}); err != nil {
		return fmt.Errorf("open %s socket in %s: %w", network, nsPath, err)
	}
	defer conn.Close()

	id, seq := uint16(rand.Uint32()), uint16(1)
	msg := []byte{reqType, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	msg = append(msg, "dualstack"...)
	if reqType == 8 { // The kernel computes ICMPv6 checksums itself.
		binary.BigEndian.PutUint16(msg[2:], checksum(msg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := conn.WriteTo(msg, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("send echo request to %s from %s: %w", dst, nsPath, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("no echo reply from %s to %s within %v: %w", dst, nsPath, timeout, err)
		}
		src, ok := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		if !ok || src.Unmap() != dst.Unmap() || n < 8 {
			continue
		}
		b := buf[:n]
		if b[0] == replyType && binary.BigEndian.Uint16(b[4:]) == id && binary.BigEndian.Uint16(b[6:]) == seq {
			return nil
		}
	}
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Guard runs the tests of m and then proves that they left nothing in the
// host's own network namespace or under /var/run/netns: no link whose name
// starts with LinkPrefix, no address that was not there before, no
// namespace named after this process. It returns the exit code for os.Exit.
func Guard(m *testing.M) int {
	before, err := rootState()
	if err != nil && os.Geteuid() == 0 {
		fmt.Fprintln(os.Stderr, "netnstest: cannot snapshot the host namespace:", err)
		return 1
	}
	code := m.Run()
	if os.Geteuid() != 0 {
		return code
	}
	after, err := rootState()
	if err != nil {
		fmt.Fprintln(os.Stderr, "netnstest: cannot snapshot the host namespace:", err)
		return 1
	}
	var problems []string
	for _, l := range after.links {
		if strings.HasPrefix(l, LinkPrefix) {
			problems = append(problems, "link "+l+" left in the host namespace")
		}
	}
	for _, a := range after.addrs {
		if !slices.Contains(before.addrs, a) {
			problems = append(problems, "address "+a+" added in the host namespace")
		}
	}
	for _, r := range after.rules {
		if !slices.Contains(before.rules, r) {
			problems = append(problems, "packet-filter rule "+r+" added in the host namespace")
		}
	}
	entries, _ := os.ReadDir(RunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("dstest-%d-", os.Getpid())) {
			problems = append(problems, "network namespace "+e.Name()+" left behind")
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, "netnstest: tests leaked into the host:\n  "+strings.Join(problems, "\n  "))
		return 1
	}
	return code
}

type hostState struct{ links, addrs, rules []string }

// rootState asks ip(8), run as a child process in the host's namespace, for
// the host's link names and "link address/len" pairs, and the save
// commands of both iptables backends for every dualstack rule and chain.
func rootState() (hostState, error) {
	var st hostState
	for _, cmd := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		out, err := exec.Command(cmd).Output()
		if err != nil {
			continue // not installed
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "DUALSTACK") {
				st.rules = append(st.rules, cmd+": "+l)
			}
		}
	}
	out, err := exec.Command("ip", "-j", "addr", "show").Output()
	if err != nil {
		return st, err
	}
	var links []struct {
		Name     string `json:"ifname"`
		AddrInfo []Addr `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return st, err
	}
	for _, l := range links {
		st.links = append(st.links, l.Name)
		for _, a := range l.AddrInfo {
			if a.Scope == "link" {
				continue // Link-locals come and go with carrier.
			}
			st.addrs = append(st.addrs, fmt.Sprintf("%s %s/%d", l.Name, a.Local, a.PrefixLen))
		}
	}
	return st, nil
}
