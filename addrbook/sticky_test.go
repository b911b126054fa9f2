package addrbook

import (
	"encoding/json"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// newStickyEnv is a book with a clock of its own, a status directory and
// a log the test reads.
func newStickyEnv(t *testing.T) (*testEnv, *logtest.Hook) {
	t.Helper()
	clock := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	log := logrus.New()
	log.SetOutput(io.Discard)
	hook := logtest.NewLocal(log)
	e := &testEnv{t: t, dir: t.TempDir(), clock: &clock, statusDir: t.TempDir(), log: log}
	e.open()
	t.Cleanup(func() { e.db.Close() })
	return e, hook
}

// stickyPool holds pool as a sticky pool with hold.
func (e *testEnv) stickyPool(pool string, v6 bool, hold time.Duration) string {
	e.t.Helper()
	id := e.pool(pool, "", v6)
	if err := e.d.SetSticky(id, hold); err != nil {
		e.t.Fatal(err)
	}
	return id
}

// named asks for an address as the IPAM driver does for a container
// named name (a MAC owner).
func (e *testEnv) named(poolID, preferred string, owner Owner, name string) string {
	e.t.Helper()
	r, err := e.d.RequestNamedAddress(poolID, preferred, owner, name)
	if err != nil {
		e.t.Fatalf("RequestNamedAddress(%s, %q, %s): %v", poolID, preferred, name, err)
	}
	return r.String()
}

func (e *testEnv) advance(d time.Duration) { *e.clock = e.clock.Add(d) }

// owners lists pool's allocations as address → stored owner.
func (e *testEnv) owners(poolID string) map[string]string {
	out := map[string]string{}
	for a, o := range e.d.Allocations(poolID) {
		out[a.String()] = o.String()
	}
	return out
}

func (e *testEnv) status() StickyStatus {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.statusDir, StickyStatusFile))
	if err != nil {
		e.t.Fatal(err)
	}
	var st StickyStatus
	if err := json.Unmarshal(data, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// TestStickyKeepsAddress: a container that goes and comes back under its
// name gets its address again, from a new MAC; another container started
// meanwhile does not get it, nor the one after the reservation ended; a
// restart keeps the reservations.
func TestStickyKeepsAddress(t *testing.T) {
	e, _ := newStickyEnv(t)
	id := e.stickyPool("198.51.100.0/24", false, time.Hour)
	e.d.Attach("net1", []string{id})
	web := e.named(id, "", mac(1), "web")
	db := e.named(id, "", mac(2), "db")
	if web != "198.51.100.1/24" || db != "198.51.100.2/24" {
		t.Fatalf("first addresses %s, %s", web, db)
	}
	e.release(id, web)
	if got := e.owners(id)["198.51.100.1"]; got != "sticky:web" {
		t.Fatalf("released address held by %q, want sticky:web", got)
	}
	if got := e.named(id, "", mac(3), "other"); got != "198.51.100.3/24" {
		t.Fatalf("another name got %s, want the next in sequence", got)
	}
	e.advance(30 * time.Minute)
	e.restart()
	e.d.Attach("net1", []string{id}) // as the network driver does at start
	st := e.status()
	if len(st.Networks) != 1 || st.Networks[0].Network != "net1" || len(st.Networks[0].Reservations) != 3 {
		t.Fatalf("status after restart: %+v", st)
	}
	if r := st.Networks[0].Reservations[2]; r.Name != "web" || r.Addresses[0].Until == nil || !r.Addresses[0].Until.Equal(time.Date(2026, 12, 4, 13, 0, 0, 0, time.UTC)) {
		t.Fatalf("web's reservation in the status: %+v", r)
	}
	if got := e.named(id, "", mac(4), "web"); got != web {
		t.Fatalf("web came back with %s, want %s", got, web)
	}
	if got := e.owners(id)["198.51.100.1"]; got != mac(4).String() {
		t.Fatalf("web's address held by %q, want its new MAC", got)
	}
	// Gone again, and back after its reservation ended: the address is
	// free, and web gets the next in sequence.
	e.release(id, web)
	e.advance(time.Hour)
	if got := e.named(id, "", mac(5), "web"); got != "198.51.100.4/24" {
		t.Fatalf("web after its reservation ended got %s, want the next in sequence", got)
	}
	if _, held := e.owners(id)["198.51.100.1"]; held {
		t.Fatal("the address of an ended reservation is still held")
	}
}

// TestStickyExpiresAtLoad: a reservation that ended while the plugin was
// down is freed at load.
func TestStickyExpiresAtLoad(t *testing.T) {
	e, _ := newStickyEnv(t)
	id := e.stickyPool("2001:db8:7::/64", true, time.Minute)
	a := e.named(id, "", mac(1), "web")
	e.release(id, a)
	e.advance(2 * time.Minute)
	e.restart()
	if got := e.owners(id); len(got) != 0 {
		t.Fatalf("after a restart past the hold time, allocations %v, want none", got)
	}
	if st := e.status(); len(st.Networks) != 1 || len(st.Networks[0].Reservations) != 0 || st.Networks[0].Hold != "1m0s" {
		t.Fatalf("status %+v", st)
	}
}

// TestStickyNeverExhausts: a pool full of kept addresses frees the one
// kept the longest for a new container, and the others stay kept.
func TestStickyNeverExhausts(t *testing.T) {
	e, hook := newStickyEnv(t)
	id := e.stickyPool("198.51.100.0/29", false, time.Hour) // .1 to .6
	names := []string{"a", "b", "c", "d", "e", "f"}
	var addrs []string
	for i, n := range names {
		addrs = append(addrs, e.named(id, "", mac(i), n))
	}
	for _, a := range []int{3, 0, 1, 2, 4, 5} {
		e.release(id, addrs[a])
		e.advance(time.Second)
	}
	if got := e.named(id, "", mac(10), "g"); got != addrs[3] {
		t.Fatalf("a full pool gave %s, want %s, kept the longest (d's)", got, addrs[3])
	}
	if got := e.named(id, "", mac(11), "h"); got != addrs[0] {
		t.Fatalf("then %s, want a's %s", got, addrs[0])
	}
	if got := e.named(id, "", mac(12), "b"); got != addrs[1] {
		t.Fatalf("b came back with %s, want %s", got, addrs[1])
	}
	freed := 0
	for _, entry := range hook.AllEntries() {
		if entry.Level == logrus.InfoLevel && strings.Contains(entry.Message, "is full: the address kept the longest") {
			freed++
		}
	}
	if freed != 2 { // d's and a's; b took its own
		t.Fatalf("%d info lines on freeing a reservation, want 2", freed)
	}
	for i, n := range []string{"x", "y", "z"} { // c, e and f are kept
		if _, err := e.d.RequestNamedAddress(id, "", mac(20+i), n); err != nil {
			t.Fatalf("with kept addresses left, a new container: %v", err)
		}
	}
	if _, err := e.d.RequestNamedAddress(id, "", mac(14), "w"); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("a pool whose every address is in use: %v, want exhausted", err)
	}
}

// TestStickyPreferredTakesOver: an address asked for by --ip that is kept
// for another name goes to the asker, and that name's reservation ends; a
// retried request of the asker gets the same answer.
func TestStickyPreferredTakesOver(t *testing.T) {
	e, _ := newStickyEnv(t)
	id := e.stickyPool("198.51.100.0/24", false, time.Hour)
	web := e.named(id, "", mac(1), "web")
	e.release(id, web)
	if got := e.named(id, "198.51.100.1", mac(2), "pinned"); got != web {
		t.Fatalf("--ip of a kept address gave %s", got)
	}
	e.restart() // a retry reaches a new process
	if got := e.named(id, "198.51.100.1", mac(2), "pinned"); got != web {
		t.Fatalf("the retried --ip request gave %s", got)
	}
	if got := e.named(id, "", mac(3), "web"); got == web {
		t.Fatalf("web got %s again, which pinned holds", got)
	}
	e.release(id, web)
	if got := e.owners(id)["198.51.100.1"]; got != "sticky:pinned" {
		t.Fatalf("pinned's released address held by %q, want sticky:pinned", got)
	}
}

// TestStickyRetry: a request Docker repeats after a crash lost the answer
// gets the same address, which stays the name's.
func TestStickyRetry(t *testing.T) {
	e, _ := newStickyEnv(t)
	id := e.stickyPool("198.51.100.0/24", false, time.Hour)
	web := e.named(id, "", mac(1), "web")
	e.release(id, web)
	first := e.named(id, "", mac(2), "web")
	e.restart()
	if got := e.named(id, "", mac(2), "web"); got != first || got != web {
		t.Fatalf("retried request %s, first answer %s, web's %s", got, first, web)
	}
	if n := len(e.owners(id)); n != 1 {
		t.Fatalf("%d allocations after a retry, want 1", n)
	}
}

// TestStickyWithoutName: a sticky pool asked without a name (an engine
// older than API 1.52) allocates as any pool does, keeps nothing, and
// says so once.
func TestStickyWithoutName(t *testing.T) {
	e, hook := newStickyEnv(t)
	id := e.stickyPool("198.51.100.0/24", false, time.Hour)
	a := e.mustAddr(id, "", mac(1))
	e.mustAddr(id, "", mac(2))
	e.release(id, a)
	if got := e.owners(id); len(got) != 1 {
		t.Fatalf("allocations %v: a request without a name must keep nothing", got)
	}
	warned := 0
	for _, entry := range hook.AllEntries() {
		if entry.Level == logrus.WarnLevel && strings.Contains(entry.Message, "sends no container names") {
			warned++
		}
	}
	if warned != 1 {
		t.Fatalf("%d warnings, want 1", warned)
	}
}

// TestNotStickyKeepsNothing: names sent to a pool that is not sticky
// change nothing: no reservation, the address freed at its release.
func TestNotStickyKeepsNothing(t *testing.T) {
	e, _ := newStickyEnv(t)
	id := e.pool("198.51.100.0/24", "", false)
	a := e.named(id, "", mac(1), "web")
	e.release(id, a)
	if got := e.owners(id); len(got) != 0 {
		t.Fatalf("allocations %v after the release", got)
	}
	if _, err := os.Stat(filepath.Join(e.statusDir, StickyStatusFile)); err == nil {
		t.Fatal("a status file without a sticky pool")
	}
	if err := e.d.SetSticky(id, time.Second); err == nil {
		t.Fatal("a hold time of a second accepted")
	}
}

// TestStickyExtraPools: the network driver's addresses in the other
// pools, allocated under the name of the endpoint's address in Docker's
// pool, are kept and come back with it.
func TestStickyExtraPools(t *testing.T) {
	e, _ := newStickyEnv(t)
	docker := e.stickyPool("2001:db8:1::/64", true, time.Hour)
	extra := e.stickyPool("2001:db8:2::/64", true, time.Hour)
	e.named(extra, "", mac(9), "filler") // the sequences differ
	alloc := func(endpoint string, owner Owner) (string, string) {
		t.Helper()
		a := e.named(docker, "", owner, endpoint[:3])
		name := e.d.StickyName(docker, netip.MustParsePrefix(a).Addr())
		var got []netip.Prefix
		err := e.d.Update(func(tx *Tx) error {
			var err error
			got, err = tx.AllocateEachNamed([]string{extra}, EndpointOwner(endpoint), name)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return a, got[0].String()
	}
	a1, x1 := alloc("web-1", mac(1))
	if err := e.d.Update(func(tx *Tx) error {
		return tx.ReleaseEach(map[string][]netip.Addr{extra: {netip.MustParsePrefix(x1).Addr()}, docker: {netip.MustParsePrefix(a1).Addr()}})
	}); err != nil {
		t.Fatal(err)
	}
	alloc("db-1", mac(2))
	a2, x2 := alloc("web-2", mac(3))
	if a2 != a1 || x2 != x1 {
		t.Fatalf("web came back with %s, %s; want %s, %s", a2, x2, a1, x1)
	}
}
