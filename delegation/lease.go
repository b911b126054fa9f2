// Package delegation is the DHCPv6 prefix-delegation client (RFC 8415) of
// the host's uplinks.
package delegation

import (
	"net/netip"
	"time"
)

// Prefix is one delegated prefix with the times its lifetimes end.
type Prefix struct {
	Prefix    netip.Prefix `json:"prefix"`
	Preferred time.Time    `json:"preferred"` // end of the preferred lifetime
	Valid     time.Time    `json:"valid"`     // end of the valid lifetime
}

// Lease is what the client of one uplink holds now.
type Lease struct {
	Uplink  string    `json:"uplink"`
	State   string    `json:"state"`
	Current *Prefix   `json:"current,omitempty"`
	Stale   []Prefix  `json:"stale,omitempty"`
	Renew   time.Time `json:"renew,omitempty"`
	Rebind  time.Time `json:"rebind,omitempty"`
	Server  string    `json:"server,omitempty"`
	DUID    string    `json:"duid"`
	IAID    uint32    `json:"iaid"`
	Error   string    `json:"error,omitempty"`
}
