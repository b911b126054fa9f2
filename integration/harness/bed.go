//go:build integration

package harness

import (
	"context"
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

// The cluster test beds: the suite's engine and two more, each a "host" in
// its own network namespace with its own state, and etcd (Debian's
// etcd-server) in another namespace, each linked by a veth pair to a hub in
// a namespace of its own. Every address is inside these namespaces; nothing
// leaves the machine. The suite's topology (Main) chooses the hub:
//
// Fabric (make integration-cluster): one LAN, the hub a bridge.
//
//	fabric (dsfab-PID): bridge fab, one veth port per host and etcd
//	  host1 (the suite's engine)  fabric0 198.51.100.11/24 fd00:fab::11/64
//	  host2 (dsit-PID-host2)      fabric0 198.51.100.12/24 fd00:fab::12/64
//	  host3 (dsit-PID-host3)      fabric0 198.51.100.13/24 fd00:fab::13/64
//	  etcd  (dsetcd-PID)          fabric0 198.51.100.200/24, client port 2379
//
// Routed (make integration-bgp): the hub a router running Debian's
// BIRD 2 (router.go). Each host and etcd has a link of its own to it
// (no shared L2), a /28 of 198.51.100.0/24 and a /64 of fd00:fab::/32, and
// routes those two, only, through the router: no default route, so the
// containers of another host are reached through routes learned over BGP
// or not at all; but host3, whose default gateway is the router, as many
// hosts' is, and which learns nothing. The router (AS 65000) peers with
// each host and forwards by what it learned.
//
//	router (dsrtr-PID): BIRD, one veth port p-NAME per link
//	  host1 (the suite's engine)  fabric0 198.51.100.18/28 fd00:fab:1::2/64, router .17 fd00:fab:1::1, AS 65001
//	  host2 (dsit-PID-host2)      fabric0 198.51.100.34/28 fd00:fab:2::2/64, router .33 fd00:fab:2::1, AS 65002
//	  host3 (dsit-PID-host3)      fabric0 198.51.100.50/28 fd00:fab:3::2/64, router .49 fd00:fab:3::1, AS 65003, default via the router
//	  etcd  (dsetcd-PID)          fabric0 198.51.100.200/28, router .193, client port 2379
const (
	// The fabric's LAN.
	FabricSubnet4 = "198.51.100.0/24"
	FabricSubnet6 = "fd00:fab::/64"
	// The routed bed's links are cut from these, which every host and
	// etcd routes through the router.
	routedNet4 = "198.51.100.0/24"
	// (fd00:fab:N::/64 has N in its third group: it is inside
	// fd00:fab::/32, not fd00:fab::/48.)
	routedNet6 = "fd00:fab::/32"
	EtcdAddr   = "198.51.100.200"
	// The bed's own namespaces are these followed by the test process's
	// pid (cleanStale).
	fabricNSPrefix = "dsfab-"
	routerNSPrefix = "dsrtr-"
	etcdNSPrefix   = "dsetcd-"
	// FabricIf is the uplink of every host and of etcd, on either bed:
	// their end of the veth pair to the hub.
	FabricIf = "fabric0"
)

// ClusterBed is a cluster test bed (Fabric or Routed): its hub, etcd and
// three hosts.
type ClusterBed struct {
	// Routed: the routed bed (the Routed topology), not the fabric.
	Routed bool
	// HubNS is the namespace every link ends in: the fabric's bridge or
	// the router.
	HubNS, EtcdNS string
	etcdDir       string
	etcd          *daemon
	// The routed bed's BIRD: its directory holds its config, control
	// socket and log.
	RouterDir string
	bird      *daemon
	Hosts     []*ClusterHost
}

// ClusterHost is one host of the bed.
type ClusterHost struct {
	Name         string // CLUSTER_NODE
	Engine       *Engine
	Addr4, Addr6 netip.Addr // CLUSTER_ADDRESS
	Link         HubLink
	ASN          uint32 // routed bed: BGP_ASN
}

// HubLink is how a namespace is linked to the hub: a veth pair, p-NAME in
// the hub and fabricIf in the namespace, and the namespace's addresses on
// it, with the link's prefix length (addr6 may be left out).
type HubLink struct {
	Name         string
	Addr4, Addr6 netip.Prefix
	// On the routed bed, the router's addresses on the link, through
	// which the namespace routes routedNet4 and routedNet6, or everything
	// when the router is its default gateway.
	GW4, GW6       netip.Addr
	DefaultGateway bool
}

// hostLink is host i's link (i from 1).
func (b *ClusterBed) hostLink(i int) HubLink {
	l := HubLink{Name: fmt.Sprintf("host%d", i)}
	if !b.Routed {
		l.Addr4 = netip.MustParsePrefix(fmt.Sprintf("198.51.100.%d/24", 10+i))
		l.Addr6 = netip.MustParsePrefix(fmt.Sprintf("fd00:fab::%d/64", 10+i))
		return l
	}
	// 198.51.100.16i/28: the router .16i+1, the host .16i+2.
	l.GW4 = netip.MustParseAddr(fmt.Sprintf("198.51.100.%d", 16*i+1))
	l.Addr4 = netip.PrefixFrom(l.GW4.Next(), 28)
	// fd00:fab:i::/64: the router ::1, the host ::2.
	l.GW6 = netip.MustParseAddr(fmt.Sprintf("fd00:fab:%x::1", i))
	l.Addr6 = netip.PrefixFrom(l.GW6.Next(), 64)
	// Host 3 has the router as its default gateway, as many hosts do: it
	// needs no route learned (BGP_IMPORT_ROUTES=false).
	l.DefaultGateway = i == 3
	return l
}

// etcdLink is etcd's link: IPv4 only, as etcd listens on etcdAddr.
func (b *ClusterBed) etcdLink() HubLink {
	if !b.Routed {
		return HubLink{Name: "etcd", Addr4: netip.MustParsePrefix(EtcdAddr + "/24")}
	}
	return HubLink{
		Name:  "etcd",
		Addr4: netip.PrefixFrom(netip.MustParseAddr(EtcdAddr), 28),
		GW4:   netip.MustParseAddr(routerID),
	}
}

// Endpoint is etcd's client URL, the hosts' CLUSTER_STORE.
func (b *ClusterBed) Endpoint() string { return "http://" + EtcdAddr + ":2379" }

// startClusterBed builds the hub (the fabric, or the router when routed)
// and etcd, attaches the suite's engine, and starts the two further hosts
// with the image imported; the plugin is installed on each by
// installPlugin and installPlugins.
func startClusterBed(kind, root string, routed bool) (*ClusterBed, error) {
	pid := os.Getpid()
	b := &ClusterBed{Routed: routed, HubNS: fabricNSPrefix + strconv.Itoa(pid), EtcdNS: etcdNSPrefix + strconv.Itoa(pid)}
	if routed {
		b.HubNS = routerNSPrefix + strconv.Itoa(pid)
	}
	for _, ns := range []string{b.HubNS, b.EtcdNS} {
		if err := sh("ip", "netns", "add", ns); err != nil {
			return b, err
		}
		if err := sh("ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
			return b, err
		}
	}
	// The fabric's bridge, or a router that forwards.
	hub := [][]string{
		{"ip", "-n", b.HubNS, "link", "add", "fab", "type", "bridge"},
		{"ip", "-n", b.HubNS, "link", "set", "fab", "up"},
	}
	if routed {
		// all.forwarding also sets the default of the links to come.
		hub = [][]string{{"ip", "netns", "exec", b.HubNS, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}}
	}
	for _, s := range hub {
		if err := sh(s...); err != nil {
			return b, err
		}
	}
	if err := b.attach(b.EtcdNS, b.etcdLink()); err != nil {
		return b, err
	}
	if err := b.StartEtcd(); err != nil {
		return b, err
	}
	for i := 1; i <= 3; i++ {
		l := b.hostLink(i)
		h := &ClusterHost{Name: l.Name, Addr4: l.Addr4.Addr(), Addr6: l.Addr6.Addr(), Link: l}
		if routed {
			h.ASN = routerASN + uint32(i)
		}
		if i == 1 {
			h.Engine = Eng
		} else {
			e, err := newEngine(kind, root, fmt.Sprintf("%d-%s", pid, h.Name))
			if err != nil {
				if e != nil {
					e.close()
				}
				return b, fmt.Errorf("%s: %w", h.Name, err)
			}
			h.Engine = e
		}
		b.Hosts = append(b.Hosts, h)
		if err := b.attach(h.Engine.Netns, l); err != nil {
			return b, err
		}
		if i > 1 {
			if err := withDockerHost(h.Engine.Host, importBusybox); err != nil {
				return b, fmt.Errorf("%s: %w", h.Name, err)
			}
		}
	}
	if routed {
		if err := b.startRouter(); err != nil {
			return b, err
		}
	}
	return b, nil
}

// String describes the bed, for the suite's output.
func (b *ClusterBed) String() string {
	if !b.Routed {
		return fmt.Sprintf("%d hosts on fabric %s and %s, etcd at %s", len(b.Hosts), FabricSubnet4, FabricSubnet6, b.Endpoint())
	}
	var hosts []string
	for _, h := range b.Hosts {
		desc := fmt.Sprintf("%s %s %s AS %d", h.Name, h.Link.Addr4, h.Link.Addr6, h.ASN)
		if h.Link.DefaultGateway {
			desc += " (default gateway: the router)"
		}
		hosts = append(hosts, desc)
	}
	return fmt.Sprintf("%d hosts routed by %s, AS %d, each on a link of its own (%s), etcd at %s",
		len(b.Hosts), birdVersion(), routerASN, strings.Join(hosts, ", "), b.Endpoint())
}

// attach links namespace ns to the hub as l says. On the fabric the hub's
// end joins the bridge; on the routed bed it has the router's addresses,
// and ns routes the bed's networks through them.
func (b *ClusterBed) attach(ns string, l HubLink) error {
	port := "p-" + l.Name
	hub := func(args ...string) []string { return append([]string{"ip", "-n", b.HubNS}, args...) }
	in := func(args ...string) []string { return append([]string{"ip", "-n", ns}, args...) }
	steps := [][]string{hub("link", "add", port, "type", "veth", "peer", "name", FabricIf, "netns", ns)}
	if b.Routed {
		steps = append(steps,
			[]string{"ip", "netns", "exec", b.HubNS, "sysctl", "-qw", "net.ipv6.conf." + port + ".accept_dad=0"},
			hub("addr", "add", netip.PrefixFrom(l.GW4, l.Addr4.Bits()).String(), "dev", port))
		if l.GW6.IsValid() {
			steps = append(steps, hub("addr", "add", netip.PrefixFrom(l.GW6, l.Addr6.Bits()).String(), "dev", port, "nodad"))
		}
	} else {
		steps = append(steps, hub("link", "set", port, "master", "fab"))
	}
	steps = append(steps,
		hub("link", "set", port, "up"),
		[]string{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf." + FabricIf + ".accept_dad=0"},
		in("addr", "add", l.Addr4.String(), "dev", FabricIf),
		in("link", "set", FabricIf, "up"))
	if l.Addr6.IsValid() {
		steps = append(steps, in("addr", "add", l.Addr6.String(), "dev", FabricIf, "nodad"))
	}
	if b.Routed {
		dst4, dst6 := routedNet4, routedNet6
		if l.DefaultGateway {
			dst4, dst6 = "default", "default"
		}
		steps = append(steps, in("-4", "route", "add", dst4, "via", l.GW4.String()))
		if l.GW6.IsValid() {
			steps = append(steps, in("-6", "route", "add", dst6, "via", l.GW6.String()))
		}
	}
	for _, s := range steps {
		if err := sh(s...); err != nil {
			return fmt.Errorf("attach %s to the %s: %w", l.Name, b.hubName(), err)
		}
	}
	return nil
}

func (b *ClusterBed) hubName() string {
	if b.Routed {
		return "router"
	}
	return "fabric"
}

// daemon is a process the bed runs in one of its namespaces (etcd, BIRD),
// in a process group of its own, its output appended to a log file.
type daemon struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
}

// startDaemon starts args in namespace ns and waits up to 30s for ready
// to succeed.
func startDaemon(ns, logFile string, ready func() error, args ...string) (*daemon, error) {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	d := &daemon{name: filepath.Base(args[0]), done: make(chan struct{})}
	d.cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s in %s: %w", d.name, ns, err)
	}
	go func() { _ = d.cmd.Wait(); log.Close(); close(d.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for ready() != nil {
		select {
		case <-d.done:
			return nil, fmt.Errorf("%s exited during start; its log:\n%s", d.name, tail(logFile, 20))
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.kill()
			return nil, fmt.Errorf("%s did not answer within 30s; its log:\n%s", d.name, tail(logFile, 20))
		}
	}
	return d, nil
}

// kill kills the daemon's process group and waits for the daemon.
func (d *daemon) kill() {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
}

// StartEtcd starts Debian's etcd in its namespace and waits until it
// answers; the data directory stays across stopEtcd and startEtcd.
func (b *ClusterBed) StartEtcd() error {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return fmt.Errorf("etcd not found: apt-get install etcd-server")
	}
	if b.etcdDir == "" {
		if b.etcdDir, err = os.MkdirTemp("", "dualstack-etcd-"); err != nil {
			return err
		}
	}
	url := b.Endpoint()
	health := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return exec.CommandContext(ctx, "ip", "netns", "exec", b.EtcdNS, "etcdctl", "--endpoints", url, "endpoint", "health").Run()
	}
	b.etcd, err = startDaemon(b.EtcdNS, filepath.Join(b.etcdDir, "etcd.log"), health, bin,
		"--name", "bed", "--data-dir", filepath.Join(b.etcdDir, "data"),
		"--listen-client-urls", url, "--advertise-client-urls", url,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "bed=http://127.0.0.1:2380")
	return err
}

// StopEtcd kills etcd, as a crash or a lost machine would.
func (b *ClusterBed) StopEtcd() {
	if b.etcd == nil {
		return
	}
	b.etcd.kill()
	killNetns(b.EtcdNS)
	b.etcd = nil
}

// pluginSettings are host h's cluster settings, and on the routed bed its
// BGP settings.
func (b *ClusterBed) pluginSettings(h *ClusterHost) []string {
	settings := []string{
		"CLUSTER_STORE=" + b.Endpoint(),
		"CLUSTER_NODE=" + h.Name,
		"CLUSTER_ADDRESS=" + h.Addr4.String() + "," + h.Addr6.String(),
	}
	if b.Routed {
		settings = append(settings, b.BGPSettings(h)...)
	}
	return settings
}

// installPlugins installs the plugin, built before installPlugin installed
// it on the suite's engine, on the further hosts.
func (b *ClusterBed) installPlugins() error {
	for _, h := range b.Hosts[1:] {
		settings := append([]string{"state.source=" + filepath.Join(h.Engine.Dir, "plugin-state"), "LOG_LEVEL=debug"}, b.pluginSettings(h)...)
		cmd := exec.Command(filepath.Join(Repo, "packaging/install.sh"), append([]string{PluginName, filepath.Join(Repo, testPluginDir)}, settings...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+h.Engine.Host)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("install the plugin on %s: %v\n%s", h.Name, err, out)
		}
	}
	return nil
}

// close removes the further hosts, etcd and the hub (the links go with
// it), whatever startClusterBed got to.
func (b *ClusterBed) close() {
	for _, h := range b.Hosts {
		if h.Engine == Eng {
			continue // the suite's, closed by Main
		}
		withHost(h, func() { sweep(); removePlugin() })
		h.Engine.close()
	}
	if b.bird != nil {
		b.bird.kill()
	}
	b.StopEtcd()
	for _, ns := range []string{b.EtcdNS, b.HubNS} {
		killNetns(ns)
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	for _, dir := range []string{b.etcdDir, b.RouterDir} {
		if dir != "" {
			os.RemoveAll(dir)
		}
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

func withHost(h *ClusterHost, fn func()) {
	_ = withDockerHost(h.Engine.Host, func() error { fn(); return nil })
}

// Docker runs the docker CLI against host h and fails the test if it
// fails.
func (h *ClusterHost) Docker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := h.DockerCmd(args...)
	if err != nil {
		t.Fatalf("%s: docker %s: %v\n%s", h.Name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// DockerCmd runs the docker CLI against host h.
func (h *ClusterHost) DockerCmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", append([]string{"-H", h.Engine.Host}, args...)...).CombinedOutput()
	return string(out), err
}

// ClusterStatus is `dualstack cluster status --json`, run where the store
// is reached (etcd's namespace).
func ClusterStatus(t testing.TB) StatusJSON {
	t.Helper()
	out, err := ClusterCLI("status", "--json")
	if err != nil {
		t.Fatalf("dualstack cluster status: %v\n%s", err, out)
	}
	var st StatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("dualstack cluster status --json: %v\n%s", err, out)
	}
	return st
}

// ClusterCLI runs `dualstack cluster ARGS` (make build's binary) against
// the bed's store.
func ClusterCLI(args ...string) (string, error) {
	full := append([]string{"netns", "exec", Bed.EtcdNS, filepath.Join(Repo, "build/dualstack"), "cluster", "--store", Bed.Endpoint()}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	return string(out), err
}

// StatusJSON is what the tests read of the status.
type StatusJSON struct {
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

// BlocksOf returns the blocks of cluster network name, by node.
func (s StatusJSON) BlocksOf(name string) map[string][]netip.Prefix {
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
