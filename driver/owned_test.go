package driver

import (
	"strings"
	"testing"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/state"
)

// TestForeignLinkUnderRecordedName: a host bridge created, while the
// network's own bridge was gone, under the name the network records is not
// the network's: the start does not adopt it (no gateway goes on it, no
// port is attached), and removing the network leaves it alone.
func TestForeignLinkUnderRecordedName(t *testing.T) {
	h := newHarness(t)
	const nid = "f0f0f0f0f0f01111"
	br := "ds-" + nid[:12]
	h.in(func() error { return h.d.CreateNetwork(h.network(nid, nil, "192.0.2.0/24")) })
	if l, _ := h.host.Link(t, br); !strings.Contains(string(h.host.IP(t, "-d", "link", "show", br)), "alias dualstack:network:"+nid) {
		t.Fatalf("the network's bridge is not marked as its own: %+v", l)
	}
	h.host.IP(t, "link", "del", br)
	h.host.IP(t, "link", "add", br, "type", "bridge")
	h.restart()
	if addrs := h.host.Addrs(t, br); len(addrs) != 0 {
		t.Fatalf("the start adopted the host's bridge and gave it %+v", addrs)
	}
	h.in(func() error { return h.d.DeleteNetwork(&api.DeleteNetworkRequest{NetworkID: nid}) })
	if _, ok := h.host.Link(t, br); !ok {
		t.Fatal("removing the network deleted the host's bridge of the same name")
	}
	if _, ok := h.d.networks[nid]; ok {
		t.Fatal("the network is still recorded")
	}
}

// TestLinksFromBeforeMarking: the first start of a version that marks its
// links takes the links an older version made (unmarked) and marks them;
// later starts do not adopt unmarked links.
func TestLinksFromBeforeMarking(t *testing.T) {
	h := newHarness(t)
	const nid = "e0e0e0e0e0e02222"
	br := "ds-" + nid[:12]
	h.in(func() error { return h.d.CreateNetwork(h.network(nid, nil, "192.0.2.0/24")) })
	h.endpoint(nid, "e1e1e1e1e1e13333", "02:42:c0:00:02:07", "192.0.2.0/24", "")
	// As an older version left them: no marks, and no record of marking.
	for _, name := range []string{br, "dsve1e1e1e1e1e1", "dsce1e1e1e1e1e1"} {
		h.host.IP(t, "link", "set", name, "alias", "")
	}
	if err := h.db.Update(func(tx state.Tx) error { return del(tx, bucketMeta, keyLinksMarked) }); err != nil {
		t.Fatal(err)
	}
	h.restart()
	for _, c := range []struct{ name, owner string }{{br, "network:" + nid}, {"dsve1e1e1e1e1e1", "endpoint:e1e1e1e1e1e13333"}} {
		if out := string(h.host.IP(t, "-d", "link", "show", c.name)); !strings.Contains(out, "alias dualstack:"+c.owner) {
			t.Fatalf("%s not marked as %s's after the first start:\n%s", c.name, c.owner, out)
		}
	}
	if veth, _ := h.host.Link(t, "dsve1e1e1e1e1e1"); veth.Master != br {
		t.Fatalf("the adopted veth is not on its bridge: %q", veth.Master)
	}
	// Now marking is recorded: an unmarked bridge under the name is not
	// adopted any more.
	h.host.IP(t, "link", "set", br, "alias", "")
	h.restart()
	if out := string(h.host.IP(t, "-d", "link", "show", br)); strings.Contains(out, "alias dualstack:") {
		t.Fatalf("a later start adopted an unmarked bridge:\n%s", out)
	}
}
