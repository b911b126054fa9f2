//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The cluster test bed (DUALSTACK_CLUSTER=1, `make integration-cluster`):
// the suite's engine and two more, each a "host" in its own network
// namespace with its own state, joined by a "fabric" bridge in a namespace
// of its own, and etcd (Debian's etcd-server) in another namespace on the
// fabric. Every address is inside these namespaces; nothing leaves the
// machine.
//
//	fabric (dsfab-PID): bridge fab, one veth port per host and etcd
//	  host1 (the suite's engine)  fabric0 198.51.100.11/24 fd00:fab::11/64
//	  host2 (dsit-PID-host2)      fabric0 198.51.100.12/24 fd00:fab::12/64
//	  host3 (dsit-PID-host3)      fabric0 198.51.100.13/24 fd00:fab::13/64
//	  etcd  (dsetcd-PID)          fabric0 198.51.100.200/24, client port 2379
var bed *clusterBed

const (
	fabricSubnet4 = "198.51.100.0/24"
	fabricSubnet6 = "fd00:fab::/64"
	etcdAddr      = "198.51.100.200"
	fabricIf      = "fabric0"
)

type clusterBed struct {
	fabricNS, etcdNS string
	etcdDir          string
	etcd             *exec.Cmd
	etcdDone         chan struct{}
	hosts            []*clusterHost
}

// clusterHost is one host of the bed.
type clusterHost struct {
	name         string // CLUSTER_NODE
	e            *engine
	addr4, addr6 netip.Addr
}

func (b *clusterBed) endpoint() string { return "http://" + etcdAddr + ":2379" }

// startClusterBed builds the fabric and etcd, attaches the suite's engine,
// and starts the two further hosts with the image imported; the plugin is
// installed on each by installPlugin.
func startClusterBed(kind, root string) (*clusterBed, error) {
	pid := os.Getpid()
	b := &clusterBed{fabricNS: fmt.Sprintf("dsfab-%d", pid), etcdNS: fmt.Sprintf("dsetcd-%d", pid)}
	for _, ns := range []string{b.fabricNS, b.etcdNS} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			return b, err
		}
		if err := sh("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return b, err
		}
	}
	if err := sh("ip", "-n", b.fabricNS, "link", "add", "fab", "type", "bridge"); err != nil {
		return b, err
	}
	if err := sh("ip", "-n", b.fabricNS, "link", "set", "fab", "up"); err != nil {
		return b, err
	}
	if err := b.attach(b.etcdNS, "etcd", netip.MustParseAddr(etcdAddr), netip.Addr{}); err != nil {
		return b, err
	}
	if err := b.startEtcd(); err != nil {
		return b, err
	}
	for i := 1; i <= 3; i++ {
		h := &clusterHost{
			name:  fmt.Sprintf("host%d", i),
			addr4: netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 10+i)),
			addr6: netip.MustParseAddr(fmt.Sprintf("fd00:fab::%d", 10+i)),
		}
		if i == 1 {
			h.e = eng
		} else {
			e, err := newEngine(kind, root, fmt.Sprintf("%d-%s", pid, h.name))
			if err != nil {
				if e != nil {
					e.close()
				}
				return b, fmt.Errorf("%s: %w", h.name, err)
			}
			h.e = e
		}
		b.hosts = append(b.hosts, h)
		if err := b.attach(h.e.netns, h.name, h.addr4, h.addr6); err != nil {
			return b, err
		}
		if i > 1 {
			if err := withDockerHost(h.e.host, importBusybox); err != nil {
				return b, fmt.Errorf("%s: %w", h.name, err)
			}
		}
	}
	return b, nil
}

// attach connects namespace ns to the fabric through a veth pair whose
// end in ns is fabric0, with the given addresses.
func (b *clusterBed) attach(ns, name string, a4, a6 netip.Addr) error {
	port := "p-" + name
	steps := [][]string{
		{"ip", "-n", b.fabricNS, "link", "add", port, "type", "veth", "peer", "name", fabricIf, "netns", ns},
		{"ip", "-n", b.fabricNS, "link", "set", port, "master", "fab", "up"},
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf." + fabricIf + ".accept_dad=0"},
		{"ip", "-n", ns, "addr", "add", a4.String() + "/24", "dev", fabricIf},
		{"ip", "-n", ns, "link", "set", fabricIf, "up"},
	}
	if a6.IsValid() {
		steps = append(steps, []string{"ip", "-n", ns, "addr", "add", a6.String() + "/64", "dev", fabricIf, "nodad"})
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return fmt.Errorf("attach %s to the fabric: %w", name, err)
		}
	}
	return nil
}

// startEtcd starts Debian's etcd in its namespace and waits until it
// answers; the data directory stays across stopEtcd and startEtcd.
func (b *clusterBed) startEtcd() error {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return fmt.Errorf("etcd not found: apt-get install etcd-server")
	}
	if b.etcdDir == "" {
		if b.etcdDir, err = os.MkdirTemp("", "dualstack-etcd-"); err != nil {
			return err
		}
	}
	log, err := os.OpenFile(filepath.Join(b.etcdDir, "etcd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	url := b.endpoint()
	b.etcd = exec.Command("ip", "netns", "exec", b.etcdNS, bin,
		"--name", "bed", "--data-dir", filepath.Join(b.etcdDir, "data"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "bed=http://127.0.0.1:2380")
	b.etcd.Stdout, b.etcd.Stderr = log, log
	b.etcd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.etcd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start etcd: %w", err)
	}
	done := make(chan struct{})
	b.etcdDone = done
	go func() { _ = b.etcd.Wait(); log.Close(); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := exec.CommandContext(ctx, "ip", "netns", "exec", b.etcdNS, "etcdctl", "--endpoints", url, "endpoint", "health").Run()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("etcd exited during start; its log:\n%s", tail(filepath.Join(b.etcdDir, "etcd.log"), 20))
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("etcd did not answer within 30s; its log:\n%s", tail(filepath.Join(b.etcdDir, "etcd.log"), 20))
}

// stopEtcd kills etcd, as a crash or a lost machine would.
func (b *clusterBed) stopEtcd() {
	if b.etcd == nil || b.etcd.Process == nil {
		return
	}
	_ = syscall.Kill(-b.etcd.Process.Pid, syscall.SIGKILL)
	killNetns(b.etcdNS)
	<-b.etcdDone
	b.etcd = nil
}

// pluginSettings are host h's cluster settings.
func (b *clusterBed) pluginSettings(h *clusterHost) []string {
	return []string{
		"CLUSTER_STORE=" + b.endpoint(),
		"CLUSTER_NODE=" + h.name,
		"CLUSTER_ADDRESS=" + h.addr4.String() + "," + h.addr6.String(),
	}
}

// installPlugins installs the plugin, built by installPlugin for the
// suite's engine, on the further hosts.
func (b *clusterBed) installPlugins() error {
	for _, h := range b.hosts[1:] {
		settings := append([]string{"state.source=" + filepath.Join(h.e.dir, "plugin-state"), "LOG_LEVEL=debug"}, b.pluginSettings(h)...)
		cmd := exec.Command(filepath.Join(repo, "packaging/install.sh"), append([]string{pluginName, filepath.Join(repo, "build/plugin")}, settings...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.e.host)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("install the plugin on %s: %v\n%s", h.name, err, out)
		}
	}
	return nil
}

// close removes the further hosts, etcd and the fabric.
func (b *clusterBed) close() {
	for _, h := range b.hosts[1:] {
		withHost(h, func() { sweep(); removePlugin() })
		h.e.close()
	}
	b.stopEtcd()
	for _, ns := range []string{b.etcdNS, b.fabricNS} {
		killNetns(ns)
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	if b.etcdDir != "" {
		os.RemoveAll(b.etcdDir)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// withDockerHost runs fn with DOCKER_HOST set to host.
func withDockerHost(host string, fn func() error) error {
	old := os.Getenv("DOCKER_HOST")
	os.Setenv("DOCKER_HOST", host)
	defer os.Setenv("DOCKER_HOST", old)
	return fn()
}

func withHost(h *clusterHost, fn func()) {
	_ = withDockerHost(h.e.host, func() error { fn(); return nil })
}

// docker runs the docker CLI against host h and fails the test if it
// fails.
func (h *clusterHost) docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.dockerCmd(args...)
	if err != nil {
		t.Fatalf("%s: docker %s: %v\n%s", h.name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func (h *clusterHost) dockerCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", h.e.host}, args...)...).CombinedOutput()
	return string(out), err
}

// clusterStatus is `dualstack cluster status --json`, run where the store
// is reached (etcd's namespace).
func clusterStatus(t testing.TB) statusJSON {
	t.Helper()
	out, err := clusterCLI("status", "--json")
	if err != nil {
		t.Fatalf("dualstack cluster status: %v\n%s", err, out)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("dualstack cluster status --json: %v\n%s", err, out)
	}
	return st
}

// clusterCLI runs `dualstack cluster ARGS` (make build's binary) against
// the bed's store.
func clusterCLI(args ...string) (string, error) {
	full := append([]string{"netns", "exec", bed.etcdNS, filepath.Join(repo, "build/dualstack"), "cluster", "--store", bed.endpoint()}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	return string(out), err
}

// statusJSON is what the tests read of the status.
type statusJSON struct {
	Nodes []struct {
		Name      string
		Addresses []netip.Addr
		Alive     bool
	}
	Networks []struct {
		Name   string
		Blocks []struct {
			Prefix netip.Prefix
			Node   string
		}
		Claims []struct {
			Addr netip.Addr
			Node string
		}
	}
}

// blocksOf returns the blocks of cluster network name, by node.
func (s statusJSON) blocksOf(name string) map[string][]netip.Prefix {
	out := map[string][]netip.Prefix{}
	for _, n := range s.Networks {
		if n.Name == name {
			for _, b := range n.Blocks {
				out[b.Node] = append(out[b.Node], b.Prefix)
			}
		}
	}
	return out
}
