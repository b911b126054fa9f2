package driver

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/state"
)

// fullDisk is a state file that takes no more writes.
type fullDisk struct{ state.Store }

func (fullDisk) Update(func(state.Tx) error) error { return errors.New("no space left on device") }

// refusingDisk is a state file that refuses, while refused names a
// bucket of the driver's, every write of a record there: the whole
// transaction that writes it fails.
type refusingDisk struct {
	state.Store
	refused string
}

func (r *refusingDisk) Update(fn func(state.Tx) error) error {
	return r.Store.Update(func(tx state.Tx) error { return fn(refusingTx{tx, r.refused}) })
}

type refusingTx struct {
	state.Tx
	refused string
}

func (t refusingTx) Put(path []string, key, value []byte) error {
	if t.refused != "" && slices.Equal(path, driverPath(t.refused)) {
		return errors.New("no space left on device")
	}
	return t.Tx.Put(path, key, value)
}

// failingCreate is the bridge plane with an endpoint create that fails.
type failingCreate struct{ bridgePlane }

func (failingCreate) createEndpoint(*network, *endpoint) error {
	return errors.New("the kernel refused to create the veth pair")
}

// TestCreateNetworkFailsLast: a CreateNetwork whose last step fails (the
// record, once the bridge, the firewall rules and the hold on the host's
// own address are in place) leaves none of them behind, and the same
// network is created when asked again.
func TestCreateNetworkFailsLast(t *testing.T) {
	h := newHarness(t)
	h.host.IP(t, "link", "add", "dsrb0", "type", "veth", "peer", "name", "dsrb1")
	h.host.IP(t, "addr", "add", "198.51.100.2/24", "dev", "dsrb0")
	h.host.IP(t, "link", "set", "dsrb0", "up")
	const nid = "abcdef0123459999"
	const bridge = "ds-" + "abcdef012345"
	hostAddr := netip.MustParseAddr("198.51.100.2")
	opts := map[string]interface{}{optEnableIPv6: true, optGeneric: map[string]interface{}{"host_overlap": "true"}}
	req := h.network(nid, opts, "198.51.100.0/24", "2001:db8:77::/64")
	before := len(h.host.Links(t))

	h.d.cfg.DB = fullDisk{h.db}
	var err error
	h.in(func() error { err = h.d.CreateNetwork(req); return nil })
	if err == nil || !strings.Contains(err.Error(), "record network "+nid+" in the state file") {
		t.Fatalf("CreateNetwork with a full disk: %v; want the record refused", err)
	}
	if _, ok := h.d.networks[nid]; ok {
		t.Error("the failed network is among the driver's networks")
	}
	if after := len(h.host.Links(t)); after != before {
		t.Errorf("the failed network changed the links: %d, then %d", before, after)
	}
	if r := h.rules(); strings.Contains(r, bridge) {
		t.Errorf("the failed network's rules are left:\n%s", r)
	}
	if owner, held := h.book.Allocations(h.poolID("198.51.100.0/24"))[hostAddr]; held {
		t.Errorf("the host's address %s is still held, by %s", hostAddr, owner)
	}

	h.d.cfg.DB = h.db
	h.in(func() error { return h.d.CreateNetwork(req) })
	if _, ok := h.host.Link(t, bridge); !ok {
		t.Fatalf("no bridge %s once the disk has room", bridge)
	}
	if r := h.rules(); !strings.Contains(r, bridge) {
		t.Errorf("no rules for %s once the disk has room:\n%s", bridge, r)
	}
	if _, held := h.book.Allocations(h.poolID("198.51.100.0/24"))[hostAddr]; !held {
		t.Errorf("the host's address %s is not held once the disk has room", hostAddr)
	}
}

// TestCreateEndpointFails: a CreateEndpoint that fails after dualstack
// allocated the IPv6 address Docker gave none of (the veth refused, or
// the record) gives it back and leaves no link; asked again, it succeeds.
func TestCreateEndpointFails(t *testing.T) {
	h := newHarness(t)
	const nid, eid = "abcdef012345aaaa", "eeeeeeeeee01aaaa"
	v4, v6 := "198.51.100.0/24", "2001:db8:78::/64"
	h.in(func() error {
		return h.d.CreateNetwork(h.network(nid, map[string]interface{}{optEnableIPv6: true}, v4, v6))
	})
	req := &api.CreateEndpointRequest{NetworkID: nid, EndpointID: eid,
		Interface: &api.EndpointInterface{Address: "198.51.100.10/24", MacAddress: "02:42:c6:33:64:0a"}}
	held := func() bool {
		for _, owner := range h.book.Allocations(h.poolID(v6)) {
			if owner == addrbook.EndpointOwner(eid) {
				return true
			}
		}
		return false
	}
	before := len(h.host.Links(t))
	for _, c := range []struct {
		name string
		fail func()
		want string
	}{
		{"veth refused", func() { h.d.planes[ModeBridge] = failingCreate{} }, "refused to create the veth pair"},
		{"record refused", func() { h.disk.refused = bucketEndpoints }, "record endpoint " + eid + " in the state file"},
	} {
		c.fail()
		var err error
		h.in(func() error { _, err = h.d.CreateEndpoint(req); return nil })
		h.d.planes[ModeBridge], h.disk.refused = bridgePlane{}, ""
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("%s: CreateEndpoint: %v; want %q", c.name, err, c.want)
		}
		if _, ok := h.d.endpoints[eid]; ok {
			t.Errorf("%s: the failed endpoint is recorded", c.name)
		}
		if after := len(h.host.Links(t)); after != before {
			t.Errorf("%s: the failed endpoint changed the links: %d, then %d", c.name, before, after)
		}
		if held() {
			t.Errorf("%s: the IPv6 address allocated for the failed endpoint is still held", c.name)
		}
		if h.book.Claimed(netip.MustParseAddr("198.51.100.10")) {
			t.Errorf("%s: the failed endpoint's address is claimed", c.name)
		}
	}

	var resp *api.CreateEndpointResponse
	h.in(func() (err error) { resp, err = h.d.CreateEndpoint(req); return err })
	if resp.Interface.AddressIPv6 == "" || !held() {
		t.Fatalf("CreateEndpoint asked again: IPv6 address %q, held %v; want one allocated", resp.Interface.AddressIPv6, held())
	}
	if after := len(h.host.Links(t)); after != before+2 {
		t.Errorf("CreateEndpoint asked again: %d links, then %d; want its veth pair", before, after)
	}
}
