package doctor

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/kernel"
)

// Sources are where Gather reads the plugin's own view of the host.
type Sources struct {
	// Proc is where procfs is mounted; "" is /proc.
	Proc string
	// EnginePID is a process in dockerd's mount namespace: the plugin's
	// parent, the containerd shim (0: not in sight, no pidhost).
	EnginePID int
	// Sandboxes is how the plugin reaches container network namespaces.
	Sandboxes *sandboxkey.Resolver
	// Driver is the network driver.
	Driver interface {
		DoctorNetworks() []Network
		FirewallBackend() firewall.Backend
	}
	// Cluster is the cluster store, nil on a host in no cluster; its
	// endpoints are ClusterEndpoints.
	Cluster interface {
		Nodes(context.Context) ([]cluster.Node, error)
	}
	ClusterEndpoints []string
	// BGP is the BGP speaker's status, nil when the host runs no BGP;
	// BGPError why it does not run though configured.
	BGP      func() bgp.Status
	BGPError error
}

// storeTimeout bounds the cluster store's answer.
const storeTimeout = 5 * time.Second

// Gather reads the host's facts, in the calling thread's network
// namespace (the host's, in the plugin). What cannot be read is left out,
// and the checks that need it find nothing.
func Gather(ctx context.Context, s Sources) Host {
	h := Host{Saves: saves(ctx), Sysctls: map[string]string{}}
	h.Mountinfo, h.MountinfoError = engineMounts(s)
	if s.Sandboxes != nil {
		h.NetnsMechanism = string(s.Sandboxes.Mechanism())
		if err := s.Sandboxes.Problem(); err != nil {
			h.NetnsProblem = err.Error()
		}
	}
	if s.Driver != nil {
		h.Backend = string(s.Driver.FirewallBackend())
		h.Networks = s.Driver.DoctorNetworks()
	}
	h.NFTables, _ = nftTables()
	h.Links, h.Routes = linksAndRoutes()
	keys := []string{families[0].forwardKey, families[1].forwardKey}
	for _, r := range h.Routes {
		if r.Dst.Addr().Is6() && r.Dst.Bits() == 0 && r.Proto == unix.RTPROT_RA && r.Dev != "" {
			keys = append(keys, "net/ipv6/conf/"+r.Dev+"/forwarding", "net/ipv6/conf/"+r.Dev+"/accept_ra")
		}
	}
	for _, k := range keys {
		if v, err := sysctl.Get(k); err == nil {
			h.Sysctls[k] = v
		}
	}
	if s.Cluster != nil {
		h.Cluster = &Cluster{Endpoints: s.ClusterEndpoints}
		ctx, cancel := context.WithTimeout(ctx, storeTimeout)
		defer cancel()
		if _, err := s.Cluster.Nodes(ctx); err != nil {
			h.Cluster.Error = err.Error()
		}
	}
	switch {
	case s.BGP != nil:
		st := s.BGP()
		h.BGP = &st
	case s.BGPError != nil:
		h.BGP = &bgp.Status{Error: s.BGPError.Error()}
	}
	return h
}

// engineMounts reads the mountinfo of dockerd's mount namespace, or says
// why it cannot.
func engineMounts(s Sources) (string, string) {
	proc := s.Proc
	if proc == "" {
		proc = "/proc"
	}
	pid := fmt.Sprint(s.EnginePID)
	switch {
	case s.Sandboxes != nil && s.Sandboxes.Mechanism() == sandboxkey.Host:
		pid = "self" // the plugin runs in the host's mount namespace
	case s.EnginePID <= 0:
		return "", "the plugin does not share the host's pid namespace (pidhost in config.json), so it cannot see dockerd"
	}
	b, err := os.ReadFile(filepath.Join(proc, pid, "mountinfo"))
	if err != nil {
		return "", err.Error()
	}
	return string(b), ""
}

// saveTimeout bounds one iptables-save.
const saveTimeout = 20 * time.Second

// saves runs the iptables-saves of both backends and families at once,
// each started from the calling goroutine (so in its thread's network
// namespace).
func saves(ctx context.Context) map[Save]string {
	ctx, cancel := context.WithTimeout(ctx, saveTimeout)
	defer cancel()
	type run struct {
		save Save
		cmd  *exec.Cmd
		out  bytes.Buffer
	}
	var runs []*run
	for _, b := range []firewall.Backend{firewall.BackendLegacy, firewall.BackendNFT} {
		for _, fam := range families {
			r := &run{save: Save{string(b), fam.v6}}
			r.cmd = exec.CommandContext(ctx, fam.iptables+"-"+string(b)+"-save")
			r.cmd.Stdout = &r.out
			if r.cmd.Start() == nil {
				runs = append(runs, r)
			}
		}
	}
	out := map[Save]string{}
	for _, r := range runs {
		if r.cmd.Wait() == nil {
			out[r.save] = r.out.String()
		}
	}
	return out
}

// linksAndRoutes lists the host's links and its main table's routes
// (nil where the kernel could not be read).
func linksAndRoutes() (map[string]Link, []Route) {
	all, err := kernel.Links()
	if err != nil {
		return nil, nil
	}
	byName, names := map[string]Link{}, map[int]string{}
	for _, l := range all {
		a := l.Attrs()
		names[a.Index] = a.Name
		byName[a.Name] = Link{Dualstack: links.Owner(l) != "", ContainerBridge: kernel.ContainerBridge(l, all)}
	}
	list, err := kernel.Routes(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return byName, nil
	}
	routes := make([]Route, 0, len(list))
	for _, r := range list {
		routes = append(routes, route(r, names, byName))
	}
	return byName, routes
}

// route is r as the checks see it.
func route(r netlink.Route, names map[int]string, byName map[string]Link) Route {
	out := Route{Proto: int(r.Protocol), Type: r.Type, Dev: names[r.LinkIndex]}
	out.Via, _ = netip.AddrFromSlice(r.Gw)
	out.Via = out.Via.Unmap()
	if p, ok := kernel.Prefix(r.Dst); ok {
		out.Dst = p.Masked()
	} else if r.Family == unix.AF_INET6 {
		out.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	} else {
		out.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	}
	if r.LinkIndex == 0 {
		// Several next hops: the first through a host interface.
		for _, nh := range r.MultiPath {
			if name, ok := names[nh.LinkIndex]; ok && !byName[name].Dualstack {
				out.Dev = name
				break
			}
		}
	}
	return out
}
