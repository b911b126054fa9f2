// Package bgp is the plugin's embedded BGP speaker (GoBGP, in process): it
// announces the prefixes the driver gives it (a host's blocks of cluster
// networks with cluster_routes=bgp, the subnets of networks with
// announce=true) to the routers named in the settings, withdraws them when
// they go and when the plugin stops, and can learn the other hosts' blocks
// from those routers.
//
// The speaker only connects out: it listens on no port, so a host's packet
// filter needs nothing for it beyond letting replies to its own
// connections in.
package bgp

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Config is what the speaker runs with: the BGP_* settings, with the
// host's next hops (its CLUSTER_ADDRESS).
type Config struct {
	// ASN is the local AS (BGP_ASN).
	ASN uint32
	// RouterID is BGP_ROUTER_ID, an IPv4 address.
	RouterID netip.Addr
	// Peers are BGP_PEERS.
	Peers []Peer
	// Password is BGP_PASSWORD: the TCP MD5 signature of every session.
	Password string
	// HoldTime is BGP_HOLD_TIME (DefaultHoldTime when 0).
	HoldTime time.Duration
	// Import is BGP_IMPORT_ROUTES: learn routes from the peers.
	Import bool
	// MaxPrefixes is BGP_MAX_PREFIXES (DefaultMaxPrefixes when 0): when
	// importing, a peer that sends more prefixes of one family has its
	// session torn down, for good, until the plugin restarts.
	MaxPrefixes uint32
	// NextHops are the host's addresses, at most one per family: each
	// prefix is announced with the one of its family as next hop.
	NextHops []netip.Addr
	// Port is the peers' port (179 when 0); tests use another.
	Port uint16
	Log  logrus.FieldLogger
}

// Peer is a BGP neighbour: a router the speaker connects to.
type Peer struct {
	Address netip.Addr
	ASN     uint32
}

func (p Peer) String() string { return fmt.Sprintf("%s (AS %d)", p.Address, p.ASN) }

// DefaultHoldTime is the hold time when BGP_HOLD_TIME is not set, as in
// RFC 4271's suggestion and most routers.
const DefaultHoldTime = 90 * time.Second

// DefaultMaxPrefixes is BGP_MAX_PREFIXES when it is not set.
const DefaultMaxPrefixes = 1000

// ParseASN reads an AS number (asplain, 1 to 4294967294, not 23456).
func ParseASN(s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not an AS number: want 1 to 4294967294, such as 64512", s)
	case n == 0 || n == 4294967295 || n == 23456:
		return 0, fmt.Errorf("AS %d is reserved: want 1 to 4294967294 (private: 64512-65534, 4200000000-4294967294)", n)
	}
	return uint32(n), nil
}

// IsPrivateASN reports whether asn is for private use (RFC 6996).
func IsPrivateASN(asn uint32) bool {
	return asn >= 64512 && asn <= 65534 || asn >= 4200000000 && asn <= 4294967294
}

// ParsePeers reads BGP_PEERS: comma-separated ADDRESS:ASN, an IPv6
// address in brackets or not ([fd00::1]:65000, fd00::1:65000).
func ParsePeers(s string) ([]Peer, error) {
	var peers []Peer
	var errs []error
	seen := map[netip.Addr]bool{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		i := strings.LastIndex(f, ":")
		if i < 0 {
			errs = append(errs, fmt.Errorf("peer %q: want ADDRESS:ASN, such as 198.51.100.1:65000 or [fd00::1]:65000", f))
			continue
		}
		addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(f[:i], "["), "]"))
		if err != nil || addr.Zone() != "" || addr.IsUnspecified() || addr.IsMulticast() {
			errs = append(errs, fmt.Errorf("peer %q: %q is not a unicast address: want ADDRESS:ASN, such as 198.51.100.1:65000 or [fd00::1]:65000", f, f[:i]))
			continue
		}
		asn, err := ParseASN(f[i+1:])
		if err != nil {
			errs = append(errs, fmt.Errorf("peer %q: %w", f, err))
			continue
		}
		addr = addr.Unmap()
		if seen[addr] {
			errs = append(errs, fmt.Errorf("peer %s is listed twice", addr))
			continue
		}
		seen[addr] = true
		peers = append(peers, Peer{Address: addr, ASN: asn})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(peers) == 0 {
		return nil, errors.New("no peer: want ADDRESS:ASN, comma-separated, such as 198.51.100.1:65000")
	}
	return peers, nil
}

// Validate checks what the settings cannot check one by one.
func (c *Config) Validate() error {
	var errs []error
	if !c.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("router ID %v: want an IPv4 address (BGP_ROUTER_ID, or an IPv4 CLUSTER_ADDRESS)", c.RouterID))
	}
	if c.HoldTime != 0 && (c.HoldTime < 3*time.Second || c.HoldTime > 65535*time.Second) {
		errs = append(errs, fmt.Errorf("hold time %v: want 3 to 65535 seconds", c.HoldTime))
	}
	for _, p := range c.Peers {
		// A private AS seen by a public one leaks into routes it should
		// never reach; a router of a public AS expects its peers' own
		// public AS (or strips private ones, and with them the path).
		if IsPrivateASN(c.ASN) && p.ASN != c.ASN && !IsPrivateASN(p.ASN) {
			errs = append(errs, fmt.Errorf("peer %s is in public AS %d but this host's AS %d (BGP_ASN) is private: peer a public AS from your own public AS, or give the router a private one", p.Address, p.ASN, c.ASN))
		}
	}
	return errors.Join(errs...)
}

// NextHop returns the next hop for prefixes of p's family, and whether
// the host has one.
func (c *Config) NextHop(p netip.Prefix) (netip.Addr, bool) {
	for _, a := range c.NextHops {
		if a.Is4() == p.Addr().Is4() {
			return a, true
		}
	}
	return netip.Addr{}, false
}
