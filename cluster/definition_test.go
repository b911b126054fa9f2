package cluster

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var (
	v4 = netip.MustParsePrefix("10.10.0.0/16")
	v6 = netip.MustParsePrefix("fd00:10::/64")
)

func baseDef() Definition {
	return Definition{
		Mode:       ModeBridge,
		Subnets:    []netip.Prefix{v6, v4},
		Gateways:   map[netip.Prefix]netip.Addr{v4: netip.MustParseAddr("10.10.0.1")},
		HostBlock4: 26,
		HostBlock6: 80,
		Routes:     RoutesHostGW,
		Options:    map[string]string{"mtu": "1450"},
	}
}

func TestDefinitionCanonical(t *testing.T) {
	d := baseDef()
	d.Subnets = []netip.Prefix{netip.MustParsePrefix("fd00:10::5/64"), netip.MustParsePrefix("10.10.3.4/16"), v4}
	d.IPRanges = map[netip.Prefix]netip.Prefix{}
	c := d.Canonical()
	if want := []netip.Prefix{v4, v6}; !reflect.DeepEqual(c.Subnets, want) {
		t.Errorf("canonical subnets = %v, want %v", c.Subnets, want)
	}
	if c.IPRanges != nil {
		t.Errorf("canonical empty map = %v, want nil", c.IPRanges)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if !c.Equal(baseDef()) {
		t.Errorf("canonical form differs from the same definition: %v", c.Diff(baseDef()))
	}
}

func TestDefinitionValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Definition)
		want   string
	}{
		{"mode", func(d *Definition) { d.Mode = "ipvlan" }, `mode "ipvlan"`},
		{"routes", func(d *Definition) { d.Routes = "ospf" }, `routes "ospf"`},
		{"no subnet", func(d *Definition) { d.Subnets = nil; d.HostBlock4, d.HostBlock6 = 0, 0 }, "no subnet"},
		{"overlap", func(d *Definition) { d.Subnets = append(d.Subnets, netip.MustParsePrefix("10.10.5.0/24")) }, "overlap"},
		{"host block 4", func(d *Definition) { d.HostBlock4 = 0 }, "host_block4 is 0"},
		{"host block 6 unused", func(d *Definition) { d.Subnets = []netip.Prefix{v4} }, "host_block6 is 80 but the network has no subnet"},
		{"range outside", func(d *Definition) {
			d.IPRanges = map[netip.Prefix]netip.Prefix{v4: netip.MustParsePrefix("10.11.0.0/24")}
		}, "not inside its subnet"},
		{"gateway outside", func(d *Definition) { d.Gateways[v4] = netip.MustParseAddr("10.11.0.1") }, "gateway 10.11.0.1 is not inside"},
	} {
		d := baseDef()
		tc.change(&d)
		err := d.Canonical().Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestDefinitionDiff(t *testing.T) {
	r := netip.MustParsePrefix("10.10.0.0/17")
	here := baseDef()
	here.HostBlock4 = 26
	here.Subnets = append(here.Subnets, netip.MustParsePrefix("fd00:2::/64"))
	here.IPRanges = map[netip.Prefix]netip.Prefix{v4: r}
	here.Options = map[string]string{"mtu": "1450", "only-here": "x"}

	cluster := baseDef()
	cluster.HostBlock4 = 24
	cluster.Mode = ModeMacvlan
	cluster.Routes = RoutesNone
	cluster.Subnets = append(cluster.Subnets, netip.MustParsePrefix("10.20.0.0/16"))
	cluster.Gateways = nil
	cluster.Options = map[string]string{"mtu": "9000", "parent": "eth1"}
	cluster.DefinedBy = "other" // never compared

	want := []string{
		"mode: bridge here, macvlan in the cluster",
		"ip range of 10.10.0.0/16: 10.10.0.0/17 here, none in the cluster",
		"gateway of 10.10.0.0/16: 10.10.0.1 here, none in the cluster",
		"subnet 10.20.0.0/16: in the cluster but not here",
		"subnet fd00:2::/64: here but not in the cluster",
		"host_block4: 26 here, 24 in the cluster",
		"routes: host-gw here, none in the cluster",
		`option mtu: "1450" here, "9000" in the cluster`,
		`option only-here: "x" here but not in the cluster`,
		`option parent: "eth1" in the cluster but not here`,
	}
	if got := here.Diff(cluster); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n got %q\nwant %q", got, want)
	}
	if got := here.Diff(here); got != nil {
		t.Errorf("Diff with itself = %q, want nil", got)
	}
	e := &MismatchError{Network: "web", DefinedBy: "host-a", Differences: want[5:7]}
	if got, want := e.Error(), `cluster network "web" is defined differently in the cluster store (first defined by node host-a): host_block4: 26 here, 24 in the cluster; routes: host-gw here, none in the cluster: create the network with the cluster's definition, or use another cluster name`; got != want {
		t.Errorf("MismatchError:\n got %s\nwant %s", got, want)
	}
}

func TestDefinitionSummary(t *testing.T) {
	d := baseDef()
	d.IPRanges = map[netip.Prefix]netip.Prefix{v4: netip.MustParsePrefix("10.10.0.0/17")}
	want := "bridge, routes host-gw, 10.10.0.0/16 in /26 blocks (ip range 10.10.0.0/17, gateway 10.10.0.1), fd00:10::/64 in /80 blocks, mtu=1450"
	if got := d.Summary(); got != want {
		t.Errorf("Summary:\n got %s\nwant %s", got, want)
	}
}

func TestDefinitionJSON(t *testing.T) {
	d := baseDef()
	d.IPRanges = map[netip.Prefix]netip.Prefix{v4: netip.MustParsePrefix("10.10.0.0/17")}
	d.DefinedBy = "host-a"
	b, err := json.Marshal(d.Canonical())
	if err != nil {
		t.Fatal(err)
	}
	want := `{"mode":"bridge","subnets":["10.10.0.0/16","fd00:10::/64"],"ip_ranges":{"10.10.0.0/16":"10.10.0.0/17"},"gateways":{"10.10.0.0/16":"10.10.0.1"},"host_block4":26,"host_block6":80,"routes":"host-gw","options":{"mtu":"1450"},"defined_by":"host-a"}`
	if string(b) != want {
		t.Errorf("JSON:\n got %s\nwant %s", b, want)
	}
	back, err := decodeDefinition(b)
	if err != nil || !back.Equal(d) || back.DefinedBy != "host-a" {
		t.Errorf("decoded %+v, %v; differences %q", back, err, back.Diff(d))
	}
}
