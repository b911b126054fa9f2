package routes

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"
)

// newKeeper is a Keeper on the fake kernel whose IPAM holds blocks (by
// pool) and whose host has Docker's bridge 198.18.5.0/24.
func newKeeper(k *fakeKernel, blocks map[string][]netip.Prefix) *Keeper {
	log, _ := test.NewNullLogger()
	return NewKeeper(KeeperOptions{
		Log:      log,
		Blocks:   func(pool string) []netip.Prefix { return blocks[pool] },
		HostNets: func() ([]netip.Prefix, error) { return []netip.Prefix{pfx("198.18.5.0/24")}, nil },
		kernel:   k,
	})
}

func installed(k *Keeper, proto Protocol) []string {
	var out []string
	for p, h := range k.Installed(proto) {
		out = append(out, p.String()+" via "+h.Via.String())
	}
	slices.Sort(out)
	return out
}

// TestKeeperHostGW: of the blocks the store reports, the routes go to the
// other hosts' blocks of the host's networks with cluster_routes=host-gw,
// via their holder's address of the block's family, the one it had when
// the store gives none; a network that goes takes its routes along. The
// host's own blocks, not the whole subnet, are its container networks.
func TestKeeperHostGW(t *testing.T) {
	k := newKeeper(newFake(), map[string][]netip.Prefix{"p1": {pfx("198.18.0.0/26")}})
	k.SetNetworks([]Network{{Cluster: "c1", HostGW: true, Local: true, Subnets: []Subnet{{pfx("198.18.0.0/16"), "p1"}}}})
	if got, want := k.ContainerNets(), []netip.Prefix{pfx("198.18.0.0/26"), pfx("198.18.5.0/24")}; !slices.Equal(got, want) {
		t.Fatalf("container networks %v, want %v (the host's block and Docker's bridge)", got, want)
	}
	k.ResyncHostGW() // nothing reported yet: nothing to do
	if got := installed(k, HostGW); len(got) != 0 {
		t.Fatalf("routes %v before the store reported", got)
	}
	h2 := []netip.Addr{ip("fd00:fab:1::3"), ip("198.51.100.19")}
	report := []HostBlock{
		{Network: "c1", Prefix: pfx("198.18.0.0/26"), Node: "h1", Via: []netip.Addr{ip("198.51.100.18")}},
		{Network: "c1", Prefix: pfx("198.18.0.64/26"), Node: "h2", Via: h2},
		{Network: "c9", Prefix: pfx("198.18.9.0/26"), Node: "h3", Via: []netip.Addr{ip("198.51.100.20")}},
	}
	if err := k.ClusterBlocks("h1", report); err != nil {
		t.Fatal(err)
	}
	want := []string{"198.18.0.64/26 via 198.51.100.19"}
	if got := installed(k, HostGW); !slices.Equal(got, want) {
		t.Fatalf("host-gw routes %v, want %v", got, want)
	}
	report[1].Via = nil // h2's plugin restarts: no node key
	if err := k.ClusterBlocks("h1", report); err != nil {
		t.Fatal(err)
	}
	if got := installed(k, HostGW); !slices.Equal(got, want) {
		t.Fatalf("host-gw routes %v while h2 restarts, want %v", got, want)
	}
	k.SetNetworks(nil)
	k.ResyncHostGW()
	if got := installed(k, HostGW); len(got) != 0 {
		t.Fatalf("host-gw routes %v after the network went", got)
	}
}

// TestKeeperLearned: of what BGP learned, only prefixes inside a subnet
// of a network with cluster_routes=bgp are routed, never one of the
// host's own blocks; changes touch their prefixes; a network that goes
// takes its routes along; nothing is synced before BGP's first report.
func TestKeeperLearned(t *testing.T) {
	fk := newFake()
	k := newKeeper(fk, map[string][]netip.Prefix{"p1": {pfx("198.19.0.0/26")}})
	k.SetNetworks([]Network{
		{Cluster: "c1", BGP: true, Local: true, Subnets: []Subnet{{pfx("198.19.0.0/16"), "p1"}}},
		{Cluster: "c2", HostGW: true, Local: true, Subnets: []Subnet{{pfx("198.20.0.0/16"), "p2"}}},
	})
	if err := k.ResyncLearned(); err != nil || len(fk.calls) != 0 {
		t.Fatalf("a resync before BGP reported: %v, kernel asked %v; want nothing", err, fk.calls)
	}
	router := ip("198.51.100.19")
	learned := map[netip.Prefix]netip.Addr{
		pfx("198.19.0.64/26"): router,
		pfx("198.19.0.0/26"):  router, // the host's own block
		pfx("198.20.0.64/26"): router, // a host-gw network's
		pfx("0.0.0.0/0"):      router,
	}
	if err := k.Learned(learned, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := installed(k, Learned), []string{"198.19.0.64/26 via 198.51.100.19"}; !slices.Equal(got, want) {
		t.Fatalf("learned routes %v, want %v", got, want)
	}
	fk.reset()
	if err := k.Learned(map[netip.Prefix]netip.Addr{pfx("198.19.0.128/26"): router}, []netip.Prefix{pfx("198.19.0.64/26")}); err != nil {
		t.Fatal(err)
	}
	if got, want := installed(k, Learned), []string{"198.19.0.128/26 via 198.51.100.19"}; !slices.Equal(got, want) || fk.calls["list"] != 0 {
		t.Fatalf("after a change: %v (kernel asked %v), want %v and no listing", got, fk.calls, want)
	}
	k.SetNetworks(nil)
	if err := k.ResyncLearned(); err != nil {
		t.Fatal(err)
	}
	if got := installed(k, Learned); len(got) != 0 {
		t.Fatalf("learned routes %v after the network went", got)
	}
}
