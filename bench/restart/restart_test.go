// Package restartbench measures the plugin's own start with 500 joined
// endpoints: the network driver and the address book reopened on their
// state file in a throwaway host namespace, and the container side of every
// join checked again.
package restartbench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	api "github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/state"
)

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

// BenchmarkRestart500 measures what a plugin start costs with 500 joined
// endpoints (two bridge networks of 250 containers, one IPv4 and three
// IPv6 subnets each, every container in its own namespace): from opening
// the state to serving (ns/op), and until every resumed join has checked
// its container again (resumed-ms).
func BenchmarkRestart500(b *testing.B) {
	const perNetwork = 250
	p := start(b)
	for k, v4 := range []string{"192.0.2.0/24", "198.51.100.0/24"} {
		nid := fmt.Sprintf("%012x", 0xbe0000+k)
		v6 := []string{fmt.Sprintf("2001:db8:%d:1::/64", k), fmt.Sprintf("2001:db8:%d:2::/64", k), fmt.Sprintf("2001:db8:%d:3::/64", k)}
		pools := p.network(nid, append([]string{v4}, v6...))
		for i := 0; i < perNetwork; i++ {
			eid := fmt.Sprintf("%06x%06x", 0xe00000+k, i)
			mac := fmt.Sprintf("02:42:%02x:00:%02x:%02x", k, i>>8, i&0xff)
			p.container(nid, eid, mac, pools[v4], pools[v6[0]])
		}
	}
	p.settled()
	b.ResetTimer()
	var resumed time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		p.restart()
		b.StopTimer()
		p.settled()
		resumed += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(resumed.Milliseconds())/float64(b.N), "resumed-ms")
}

// plugin is the plugin's network driver and address book on a state
// directory, in a throwaway namespace standing for a host freshly booted
// (forwarding off), configured as the network driver's own tests run it.
type plugin struct {
	tb   testing.TB
	host netnstest.NS
	dir  string
	db   state.Store
	book *addrbook.Book
	d    *driver.Driver
}

func start(tb testing.TB) *plugin {
	p := &plugin{tb: tb, host: netnstest.New(tb), dir: tb.TempDir()}
	p.host.ForwardingOff(tb)
	p.open()
	tb.Cleanup(func() {
		p.d.Close()
		p.db.Close()
	})
	return p
}

// open starts (or restarts) the drivers on the state directory, and
// resumes the joins as the plugin does once it serves.
func (p *plugin) open() {
	p.tb.Helper()
	db, err := state.Open(p.dir, time.Second)
	if err != nil {
		p.tb.Fatal(err)
	}
	p.db = db
	log := logrus.New()
	log.SetOutput(io.Discard)
	p.in(func() error {
		p.book, err = addrbook.New(addrbook.Config{DB: db, MachineID: "test", Log: log})
		if err != nil {
			return err
		}
		p.d, err = driver.New(driver.Config{DB: db, Book: p.book, Log: log, UplinkAcceptRA: true, ForwardDrop: true,
			Firewall: firewall.New(firewall.BackendNFT)})
		return err
	})
	p.d.ResumeJoins()
}

// restart stops the plugin (driver, then state file) and starts it again.
func (p *plugin) restart() {
	p.tb.Helper()
	p.d.Close()
	p.db.Close()
	p.open()
}

// settled waits until every join, resumed ones among them, is done.
func (p *plugin) settled() {
	p.tb.Helper()
	if err := p.d.JoinsSettled(); err != nil {
		p.tb.Fatal(err)
	}
}

// in runs fn in the host namespace.
func (p *plugin) in(fn func() error) {
	p.tb.Helper()
	if err := netns.Do(p.host.Path, fn); err != nil {
		p.tb.Fatal(err)
	}
}

// network creates an IPv6-enabled network as Docker does with
// --ipam-driver dualstack: pools and gateways from the address book, then
// CreateNetwork. It returns the pool IDs by subnet.
func (p *plugin) network(nid string, subnets []string) map[string]string {
	p.tb.Helper()
	req := &api.CreateNetworkRequest{NetworkID: nid, Options: map[string]interface{}{"com.docker.network.enable_ipv6": true}}
	pools := map[string]string{}
	for _, s := range subnets {
		v6 := strings.Contains(s, ":")
		pr, err := p.book.RequestPool(addrbook.PoolRequest{Space: "local", Subnet: s, V6: v6})
		if err != nil {
			p.tb.Fatal(err)
		}
		gw, err := p.book.RequestAddress(pr.ID, "", addrbook.Owner{Kind: addrbook.AutoGateway})
		if err != nil {
			p.tb.Fatal(err)
		}
		pools[s] = pr.ID
		data := &api.IPAMData{AddressSpace: "local", Pool: pr.Prefix.String(), Gateway: gw.String()}
		if v6 {
			req.IPv6Data = append(req.IPv6Data, data)
		} else {
			req.IPv4Data = append(req.IPv4Data, data)
		}
	}
	p.in(func() error { return p.d.CreateNetwork(req) })
	return pools
}

// container does what Docker does to run a container on network nid: an
// address from each pool for the MAC, the endpoint, a namespace as its
// sandbox, the join, and the interface moved into the sandbox.
func (p *plugin) container(nid, eid, mac string, pools ...string) {
	p.tb.Helper()
	in := &api.EndpointInterface{MacAddress: mac}
	for _, pool := range pools {
		a, err := p.book.RequestAddress(pool, "", addrbook.MACOwner(mac))
		if err != nil {
			p.tb.Fatal(err)
		}
		if a.Addr().Is6() {
			in.AddressIPv6 = a.String()
		} else {
			in.Address = a.String()
		}
	}
	sb := netnstest.New(p.tb)
	var resp *api.JoinResponse
	p.in(func() error {
		if _, err := p.d.CreateEndpoint(&api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: in}); err != nil {
			return err
		}
		var err error
		resp, err = p.d.Join(&api.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path})
		return err
	})
	p.moveIn(sb, resp.InterfaceName.SrcName)
}

// moveIn moves the interface into the sandbox through netlink, for the
// hundreds of containers of a benchmark: it becomes eth0 and comes up (the
// join's watcher needs no more than that).
func (p *plugin) moveIn(sb netnstest.NS, peer string) {
	p.tb.Helper()
	target, err := vnetns.GetFromPath(sb.Path)
	if err != nil {
		p.tb.Fatal(err)
	}
	defer target.Close()
	p.in(func() error {
		l, err := netlink.LinkByName(peer)
		if err != nil {
			return err
		}
		return netlink.LinkSetNsFd(l, int(target))
	})
	nh, err := netlink.NewHandleAt(target)
	if err != nil {
		p.tb.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(peer)
	if err == nil {
		err = nh.LinkSetName(l, "eth0")
	}
	if err == nil {
		err = nh.LinkSetUp(l)
	}
	if err != nil {
		p.tb.Fatalf("move %s into %s: %v", peer, sb.Path, err)
	}
}
