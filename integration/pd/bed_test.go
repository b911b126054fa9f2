//go:build integration

package pd

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/dhcpv6/nclient6"

	"github.com/dualstack-net/dualstack/integration/harness"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// The test bed itself, before any network: the host and the router reach
// each other on the link, and Kea delegates the pool's one prefix to a
// client on the host's uplink, from its fixed server identifier, and
// keeps the lease in its file.
func TestDelegationBed(t *testing.T) {
	b := harness.NewDelegation(t)
	if err := netnstest.Ping(b.Router.Path, netip.MustParseAddr(harness.DelegationHost), 2*time.Second); err != nil {
		t.Fatalf("the router cannot ping the host at %s: %v", harness.DelegationHost, err)
	}
	pool := netip.MustParsePrefix("2001:db8:100::/56")
	b.StartKea(t, pool)

	var c *nclient6.Client
	if err := netns.Do(harness.EngineNetns(), func() (err error) {
		c, err = nclient6.New(harness.DelegationIF, nclient6.WithTimeout(2*time.Second), nclient6.WithRetry(2))
		return err
	}); err != nil {
		t.Fatalf("DHCPv6 client on %s: %v", harness.DelegationIF, err)
	}
	defer c.Close()
	iaid := [4]byte{0, 0, 0, 24}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	adv, err := c.Solicit(ctx, dhcpv6.WithIAPD(iaid))
	if err != nil {
		t.Fatalf("Solicit on %s: %v\nKea's log:\n%s", harness.DelegationIF, err, b.KeaLog())
	}
	reply, err := c.Request(ctx, adv, dhcpv6.WithIAPD(iaid))
	if err != nil {
		t.Fatalf("Request on %s: %v\nKea's log:\n%s", harness.DelegationIF, err, b.KeaLog())
	}
	if id := net.HardwareAddr(reply.Options.ServerID().ToBytes()).String(); id != harness.DelegationServerID {
		t.Errorf("Kea's server identifier is %s, want %s", id, harness.DelegationServerID)
	}
	pd := reply.Options.OneIAPD()
	if pd == nil || len(pd.Options.Prefixes()) != 1 {
		t.Fatalf("Kea's Reply has no prefix: %s", reply.Summary())
	}
	p := pd.Options.Prefixes()[0]
	if got := p.Prefix.String(); got != pool.String() || p.ValidLifetime != harness.DelegationValid || pd.T1 != harness.DelegationT1 {
		t.Errorf("Kea delegated %s valid %v, T1 %v; want %s valid %v, T1 %v", got, p.ValidLifetime, pd.T1, pool, harness.DelegationValid, harness.DelegationT1)
	}
	leases := b.Leases(t)
	if len(leases) != 1 || leases[0].Prefix != pool || leases[0].IAID != 24 {
		t.Errorf("Kea's leases: %v, want one of %s to IAID 24", leases, pool)
	}
}
