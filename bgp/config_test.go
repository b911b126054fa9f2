package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParsePeers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Peer
		err  string
	}{
		{in: "198.51.100.1:65000", want: []Peer{{netip.MustParseAddr("198.51.100.1"), 65000}}},
		{in: " 198.51.100.1:65000 , [fd00::1]:4200000001,fd00::2:65002", want: []Peer{
			{netip.MustParseAddr("198.51.100.1"), 65000}, {netip.MustParseAddr("fd00::1"), 4200000001}, {netip.MustParseAddr("fd00::2"), 65002}}},
		{in: "198.51.100.1", err: `peer "198.51.100.1": want ADDRESS:ASN`},
		{in: "router:65000", err: `"router" is not a unicast address`},
		{in: "198.51.100.1:as65000", err: `"as65000" is not an AS number`},
		{in: "198.51.100.1:0", err: "AS 0 is reserved"},
		{in: "198.51.100.1:23456", err: "AS 23456 is reserved"},
		{in: "198.51.100.1:65000,198.51.100.1:65001", err: "listed twice"},
		{in: "224.0.0.1:65000", err: "not a unicast address"},
		{in: " , ", err: "no peer"},
	} {
		got, err := ParsePeers(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParsePeers(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParsePeers(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParsePeers(%q)[%d] = %v; want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func TestValidate(t *testing.T) {
	peer := func(a string, asn uint32) Peer { return Peer{netip.MustParseAddr(a), asn} }
	id := netip.MustParseAddr("198.51.100.11")
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"private to private", Config{ASN: 65001, RouterID: id, Peers: []Peer{peer("198.51.100.1", 65000)}}, ""},
		{"iBGP", Config{ASN: 65001, RouterID: id, Peers: []Peer{peer("198.51.100.1", 65001)}}, ""},
		{"public to public", Config{ASN: 64496, RouterID: id, Peers: []Peer{peer("198.51.100.1", 3356)}}, ""},
		{"public to private", Config{ASN: 64496, RouterID: id, Peers: []Peer{peer("198.51.100.1", 65000)}}, ""},
		{"private to public", Config{ASN: 65001, RouterID: id, Peers: []Peer{peer("203.0.113.1", 3356)}}, "peer 203.0.113.1 is in public AS 3356 but this host's AS 65001 (BGP_ASN) is private"},
		{"IPv6 router ID", Config{ASN: 65001, RouterID: netip.MustParseAddr("fd00::1"), Peers: []Peer{peer("198.51.100.1", 65000)}}, "want an IPv4 address"},
		{"no router ID", Config{ASN: 65001, Peers: []Peer{peer("198.51.100.1", 65000)}}, "want an IPv4 address"},
		{"hold time", Config{ASN: 65001, RouterID: id, HoldTime: time.Second, Peers: []Peer{peer("198.51.100.1", 65000)}}, "want 3 to 65535 seconds"},
	} {
		err := tc.cfg.Validate()
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: Validate() = %v; want %q", tc.name, err, tc.err)
		}
	}
}
