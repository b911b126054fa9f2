package ipamcheck

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// load reads a fixture of testdata into v.
func load(t *testing.T, name string, v any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func fixtures(t *testing.T) (*PluginView, *DockerView) {
	var p PluginView
	var d DockerView
	load(t, "plugin.json", &p)
	load(t, "docker.json", &d)
	return &p, &d
}

func objects(r Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind+" "+f.Object)
	}
	return out
}

// TestCheck: a host with one of everything the check finds, and as much
// that it must not find: the running containers' addresses and links, a
// network's gateway and host link, a sticky reservation, an address
// Docker's container holds under another owner.
func TestCheck(t *testing.T) {
	p, d := fixtures(t)
	r := Check(p, d)
	want := []string{
		"cluster-claim address 198.18.6.80 of cluster network lan",
		"endpoint-without-link endpoint 333333333333 of network aaaaaaaaaaaa",
		"leaked-address 198.51.100.22 in pool local/198.51.100.0/24",
		"leaked-address 198.51.100.9 in pool local/198.51.100.0/24",
		"leaked-address 203.0.113.3 in pool local/203.0.113.0/24",
		"leaked-address 203.0.113.4 in pool local/203.0.113.0/24",
		"left-link link dsh999999999999",
		"left-link link dsv999999999999",
		"left-route route 198.18.7.128/26 via 198.18.0.3 dev eth0 proto 213",
		"left-rule ipv6 rule priority 100 table 254 proto 216",
		"orphan-endpoint endpoint 222222222222 of network aaaaaaaaaaaa",
		"unbooked-address 203.0.113.5 of container plain-2 on network plain",
		"unknown-pool pool local/198.18.5.0/24",
		"unknown-pool pool local/198.18.6.0/24",
	}
	if got := objects(r); !slices.Equal(got, want) {
		t.Fatalf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range r.Findings {
		if f.Fix == "" || f.Detail == "" {
			t.Errorf("%s %s: no detail or fix", f.Kind, f.Object)
		}
		if (f.Release != nil) != (f.Kind == LeakedAddress || f.Kind == LeftLink || f.Kind == LeftRoute) {
			t.Errorf("%s %s: release %v; only leaked addresses, left links and left routes are released", f.Kind, f.Object, f.Release)
		}
	}
	rel := r.Releasable()
	if len(rel.Addresses) != 4 || !slices.Equal(rel.Links, []string{"dsh999999999999", "dsv999999999999"}) || len(rel.Routes) != 1 || rel.Routes[0].String() != "198.18.7.128/26 proto 213" {
		t.Fatalf("releasable: %+v", rel)
	}
	if fix := r.Findings[1].Fix; !strings.Contains(fix, "docker network disconnect -f web web-3") {
		t.Errorf("an endpoint without its link names its container and network in the fix: %q", fix)
	}
}

// TestNeverAContainersAddress: an allocation is never leaked while a
// container Docker knows, or an endpoint of the plugin's, has its
// address, whatever the owner the book has for it.
func TestNeverAContainersAddress(t *testing.T) {
	p, d := fixtures(t)
	d.Networks[1].Containers["c6"] = DockerEndpoint{Name: "late", EndpointID: "e6", MacAddress: "02:42:cb:00:71:06", IPv4Address: "203.0.113.4/24"}
	d.Networks[0].Containers["c7"] = DockerEndpoint{Name: "other", EndpointID: "e7", IPv6Address: "2001:db8:1::9/64", IPv4Address: "198.51.100.9/24"}
	p.Endpoints[0].Addresses = append(p.Endpoints[0].Addresses, netip.MustParseAddr("203.0.113.3"))
	r := Check(p, d)
	held := map[netip.Addr]bool{}
	for _, n := range d.Networks {
		for _, e := range n.Containers {
			for _, a := range e.Addresses() {
				held[a] = true
			}
		}
	}
	for _, ep := range p.Endpoints {
		for _, a := range ep.Addresses {
			held[a] = true
		}
	}
	for _, a := range r.Releasable().Addresses {
		if held[a.Address] {
			t.Errorf("%s is released, but a container or endpoint has it", a.Address)
		}
	}
	if n := len(r.Releasable().Addresses); n != 1 {
		t.Errorf("%d addresses releasable, want only 198.51.100.22 (the others are held now)", n)
	}
}

// TestCleanHost: the plugin's and Docker's views agree: nothing found.
func TestCleanHost(t *testing.T) {
	p, d := fixtures(t)
	p.Endpoints = p.Endpoints[:1]
	p.Pools = p.Pools[:2]
	p.Pools[0].Allocations = p.Pools[0].Allocations[:2]
	p.Pools[1].Allocations = p.Pools[1].Allocations[:2]
	p.Links = p.Links[:1]
	p.Links = append(p.Links, Link{Name: "dsv111111111111", Type: "veth", Mark: p.Endpoints[0].Owner})
	p.Routes, p.Rules, p.Cluster = p.Routes[:1], nil, nil
	d.Networks = d.Networks[:1]
	delete(d.Networks[0].Containers, "c3")
	if r := Check(p, d); len(r.Findings) != 0 || len(r.Warnings) != 0 {
		t.Fatalf("findings on a clean host: %q, warnings %q", objects(r), r.Warnings)
	}
}

func TestNames(t *testing.T) {
	for _, c := range []struct {
		driver, want string
		ok           bool
	}{
		{"dualstack:latest", "", true},
		{"dualstack", "", true},
		{"registry.example:5000/ns/dualstack:1.2-amd64", "", true},
		{"bridge", "", false},
		{"dualstack-old:latest", "", false},
		{"dualstack:latest", "dualstack", true},
		{"dualstack:latest", "ds:latest", false},
		{"ds:latest", "ds", true},
	} {
		if got := Names(c.driver, c.want); got != c.ok {
			t.Errorf("Names(%q, %q) = %v, want %v", c.driver, c.want, got, c.ok)
		}
	}
}

// TestBoth: --release releases what two checks both found.
func TestBoth(t *testing.T) {
	a := Release{Addresses: []PoolAddress{{"p", netip.MustParseAddr("198.51.100.9")}, {"p", netip.MustParseAddr("198.51.100.10")}}, Links: []string{"dsv1", "dsv2"}}
	b := Release{Addresses: []PoolAddress{{"p", netip.MustParseAddr("198.51.100.9")}}, Links: []string{"dsv2"}}
	got := Both(a, b)
	if len(got.Addresses) != 1 || got.Addresses[0].Address.String() != "198.51.100.9" || !slices.Equal(got.Links, []string{"dsv2"}) {
		t.Fatalf("Both = %+v", got)
	}
	if !Both(a, Release{}).Empty() {
		t.Fatal("nothing found the second time: something released")
	}
}
