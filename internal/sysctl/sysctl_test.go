package sysctl_test

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/internal/sysctl"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

func TestPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"net.ipv6.conf.all.accept_ra", "/proc/sys/net/ipv6/conf/all/accept_ra"},
		{"net/ipv6/conf/all/accept_ra", "/proc/sys/net/ipv6/conf/all/accept_ra"},
		{"net/ipv6/conf/eth0.100/accept_ra", "/proc/sys/net/ipv6/conf/eth0.100/accept_ra"},
		{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"},
		{"/net/ipv4/ip_forward", "/proc/sys/net/ipv4/ip_forward"},
	} {
		got, err := sysctl.Path(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", ".", "net/../../etc/passwd", "net//ipv4", "net..ipv4"} {
		if got, err := sysctl.Path(bad); err == nil {
			t.Errorf("Path(%q) = %q, want an error", bad, got)
		}
	}
}

// TestGetSetFollowTheThreadsNamespace proves that Get and Set inside
// netns.Do reach the test namespace's /proc/sys/net, and only it.
func TestGetSetFollowTheThreadsNamespace(t *testing.T) {
	a, b := netnstest.New(t), netnstest.New(t)
	const key = "net/ipv6/conf/default/accept_ra"
	hostBefore, err := sysctl.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Sysctl(t, key); got != "1" {
		t.Fatalf("fresh namespace %s: %s = %s, want the kernel default 1", a.Name, key, got)
	}
	for _, name := range []string{"net.ipv6.conf.default.accept_ra", key} {
		if err := netns.Do(a.Path, func() error { return sysctl.Set(name, "2") }); err != nil {
			t.Fatal(err)
		}
		if got := a.Sysctl(t, key); got != "2" {
			t.Errorf("after Set(%s, 2) in %s: ip netns exec cat says %s", name, a.Name, got)
		}
		var got string
		if err := netns.Do(a.Path, func() (err error) { got, err = sysctl.Get(name); return err }); err != nil || got != "2" {
			t.Errorf("Get(%s) in %s = %q, %v; want 2", name, a.Name, got, err)
		}
		if err := netns.Do(a.Path, func() error { return sysctl.Set(name, "1") }); err != nil {
			t.Fatal(err)
		}
	}
	if err := netns.Do(a.Path, func() error { return sysctl.Set(key, "0") }); err != nil {
		t.Fatal(err)
	}
	if got := b.Sysctl(t, key); got != "1" {
		t.Errorf("Set in %s changed %s in %s to %s", a.Name, key, b.Name, got)
	}
	if hostAfter, _ := sysctl.Get(key); hostAfter != hostBefore {
		t.Errorf("Set in %s changed the host's %s from %s to %s", a.Name, key, hostBefore, hostAfter)
	}
}

func TestGetSetErrors(t *testing.T) {
	ns := netnstest.New(t)
	err := netns.Do(ns.Path, func() error {
		_, err := sysctl.Get("net/ipv6/conf/dstnosuchlink/accept_ra")
		return err
	})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "dstnosuchlink") {
		t.Errorf("Get of a missing interface's key: %v; want a not-exist error naming it", err)
	}
	err = netns.Do(ns.Path, func() error { return sysctl.Set("net/ipv6/conf/default/accept_ra", "banana") })
	if err == nil || !strings.Contains(err.Error(), "accept_ra") {
		t.Errorf("Set(accept_ra, banana): %v; want an error naming the key", err)
	}
}

// TestEnsureWritableIsNoOpWhenWritable checks the only path that is safe to
// run on a test machine: /proc/sys already writable. The mount table must
// not change.
func TestEnsureWritableIsNoOpWhenWritable(t *testing.T) {
	netnstest.Skip(t)
	var st unix.Statfs_t
	if err := unix.Statfs("/proc/sys", &st); err != nil {
		t.Fatal(err)
	}
	if st.Flags&unix.ST_RDONLY != 0 {
		t.Skip("/proc/sys is read-only here; this test must not remount it")
	}
	before, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if err := sysctl.EnsureWritable(); err != nil {
		t.Fatalf("EnsureWritable on a writable /proc/sys: %v", err)
	}
	after, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("EnsureWritable changed the mount table although /proc/sys was writable:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
