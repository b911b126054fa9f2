package driver

import (
	"net/netip"
	"reflect"
	"testing"
)

// TestDoctorNetworks: the doctor sees each network's host link, the LAN it
// shares by design, whether it expects others' routes into its subnets
// and the families it forwards.
func TestDoctorNetworks(t *testing.T) {
	p := netip.MustParsePrefix
	d := &Driver{planes: map[string]dataplane{ModeBridge: bridgePlane{}, ModeMacvlan: macvlanPlane{}}, networks: map[string]*network{
		"b2": {ID: "b2", Options: netOptions{Mode: ModeBridge, Bridge: "ds-b2", NDPProxy: "eth0"},
			V4: []pool{{Prefix: p("198.51.100.0/24")}}, V6: []pool{{Prefix: p("2001:db8:1::/64")}}},
		"a1": {ID: "a1", Options: netOptions{Mode: ModeMacvlan, Parent: "eth1", HostOverlap: true}, V4: []pool{{Prefix: p("203.0.113.0/24")}}},
		"c3": {ID: "c3", Options: netOptions{Mode: ModeBridge, Bridge: "ds-c3", Internal: true, ClusterRoutes: clusterRoutesNone},
			V6: []pool{{Prefix: p("2001:db8:3::/64")}}},
	}}
	want := []DoctorNetwork{
		{ID: "a1", Mode: ModeMacvlan, Link: "eth1", LAN: "eth1", Routed: true, Subnets: []netip.Prefix{p("203.0.113.0/24")}},
		{ID: "b2", Mode: ModeBridge, Link: "ds-b2", LAN: "eth0", Subnets: []netip.Prefix{p("198.51.100.0/24"), p("2001:db8:1::/64")}, Forward4: true, Forward6: true},
		{ID: "c3", Mode: ModeBridge, Link: "ds-c3", Routed: true, Subnets: []netip.Prefix{p("2001:db8:3::/64")}},
	}
	if got := d.DoctorNetworks(); !reflect.DeepEqual(got, want) {
		t.Errorf("DoctorNetworks:\n%+v\nwant\n%+v", got, want)
	}
	if b := d.FirewallBackend(); b != "" {
		t.Errorf("without a firewall: backend %q", b)
	}
}
