package ipamdriver

import (
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/state"
)

func newDriver(t *testing.T) (*Driver, *addrbook.Book) {
	t.Helper()
	db, err := state.Open(t.TempDir(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := logrus.New()
	log.SetOutput(io.Discard)
	book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "test", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return New(book, nil), book
}

// TestOwnersFromDockersRequests: what a RequestAddress is for, as Docker
// says it, is the owner the address book records: the user's gateway, a
// gateway to pick, an endpoint by its MAC address.
func TestOwnersFromDockersRequests(t *testing.T) {
	d, book := newDriver(t)
	pool, err := d.RequestPool(&ipam.RequestPoolRequest{AddressSpace: "local", Pool: "198.51.100.0/24"})
	if err != nil || pool.PoolID == "" || pool.Pool != "198.51.100.0/24" {
		t.Fatalf("RequestPool = %+v, %v", pool, err)
	}
	pool6, err := d.RequestPool(&ipam.RequestPoolRequest{AddressSpace: "local", Pool: "2001:db8:5::/64", V6: true})
	if err != nil {
		t.Fatal(err)
	}
	gateway := map[string]string{optRequestType: gatewayType}
	mac := map[string]string{optMACAddress: "02:42:c6:33:64:07"}
	ask := func(poolID, addr string, opts map[string]string) string {
		t.Helper()
		r, err := d.RequestAddress(&ipam.RequestAddressRequest{PoolID: poolID, Address: addr, Options: opts})
		if err != nil {
			t.Fatalf("RequestAddress(%s, %q, %v): %v", poolID, addr, opts, err)
		}
		return r.Address
	}
	if got := ask(pool.PoolID, "", gateway); got != "198.51.100.1/24" {
		t.Fatalf("picked gateway %s, want 198.51.100.1/24", got)
	}
	if got := ask(pool6.PoolID, "2001:db8:5::fe", gateway); got != "2001:db8:5::fe/64" {
		t.Fatalf("given gateway %s", got)
	}
	first := ask(pool.PoolID, "", mac)
	if first != "198.51.100.2/24" {
		t.Fatalf("endpoint's address %s, want 198.51.100.2/24", first)
	}
	want := map[string]addrbook.Owner{
		"198.51.100.1":   {Kind: addrbook.AutoGateway},
		"198.51.100.2":   addrbook.MACOwner("02:42:c6:33:64:07"),
		"2001:db8:5::fe": {Kind: addrbook.Gateway},
	}
	for _, id := range []string{pool.PoolID, pool6.PoolID} {
		for a, owner := range book.Allocations(id) {
			if want[a.String()] != owner {
				t.Errorf("%s is held by %+v, want %+v", a, owner, want[a.String()])
			}
			delete(want, a.String())
		}
	}
	if len(want) > 0 {
		t.Errorf("not allocated: %v", want)
	}
	err = d.ReleaseAddress(&ipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: "junk"})
	if err == nil || !strings.Contains(err.Error(), `invalid address "junk"`) {
		t.Fatalf("releasing junk = %v, want the address named", err)
	}
	if err := d.ReleaseAddress(&ipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: first}); err != nil {
		t.Fatal(err)
	}
	if _, held := book.Allocations(pool.PoolID)[netip.MustParsePrefix(first).Addr()]; held {
		t.Fatalf("%s still held after its release", first)
	}
	if err := d.ReleasePool(&ipam.ReleasePoolRequest{PoolID: pool.PoolID}); err != nil {
		t.Fatal(err)
	}
	if _, ok := book.PoolFor("local", netip.MustParsePrefix("198.51.100.0/24")); ok {
		t.Fatal("the pool is still held after its release")
	}
}

// TestStickyByContainerName: the container's name Docker sends with
// RequestAddress is what a sticky pool keeps the address for: a new
// endpoint (another MAC) under the same name gets it back, one under
// another name does not.
func TestStickyByContainerName(t *testing.T) {
	d, book := newDriver(t)
	pool, err := d.RequestPool(&ipam.RequestPoolRequest{AddressSpace: "local", Pool: "198.51.100.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	if err := book.SetSticky(pool.PoolID, time.Hour); err != nil {
		t.Fatal(err)
	}
	ask := func(mac, name string) string {
		t.Helper()
		r, err := d.RequestAddress(&ipam.RequestAddressRequest{PoolID: pool.PoolID, Options: map[string]string{optMACAddress: mac, optEndpointName: name}})
		if err != nil {
			t.Fatal(err)
		}
		return r.Address
	}
	web := ask("02:42:c6:33:64:01", "web")
	if err := d.ReleaseAddress(&ipam.ReleaseAddressRequest{PoolID: pool.PoolID, Address: web}); err != nil {
		t.Fatal(err)
	}
	if other := ask("02:42:c6:33:64:02", "other"); other == web {
		t.Fatalf("another name got web's address %s", web)
	}
	if again := ask("02:42:c6:33:64:03", "web"); again != web {
		t.Fatalf("web came back with %s, want %s", again, web)
	}
}
