package ndp

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/kernel"
)

// An on-link prefix changes when the provider renumbers: its router
// advertises a new prefix and the old one with a preferred lifetime of 0,
// and the host's SLAAC addresses follow (a new one, the old one
// deprecated until its valid lifetime ends). Prefixes reads what the
// host's addresses say of that; Watch says when they change.

// Timed is an on-link /64 with the times its lifetimes end, as the
// host's addresses in it have them. Permanent (a static address): they
// never end, and Preferred and Valid are zero.
type Timed struct {
	Prefix           netip.Prefix
	Preferred, Valid time.Time
	Permanent        bool
}

// Deprecated reports whether t's preferred lifetime has ended at now.
func (t Timed) Deprecated(now time.Time) bool { return !t.Permanent && !t.Preferred.After(now) }

// forever is the kernel's infinite lifetime.
const forever = 0xffffffff

// Prefixes lists the global /64s of link's addresses (temporary and
// tentative ones aside), each with the longest lifetimes of the host's
// addresses in it, the one preferred longest first.
func Prefixes(link string, now time.Time) ([]Timed, error) {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", link, err)
	}
	addrs, err := kernel.Addrs(l, netlink.FAMILY_V6)
	if err != nil {
		return nil, fmt.Errorf("list the addresses of %s: %w", link, err)
	}
	var out []Timed
	for _, a := range addrs {
		p, ok := kernel.Prefix(a.IPNet)
		if !ok || p.Bits() != 64 || !p.Addr().IsGlobalUnicast() || a.Flags&(unix.IFA_F_TEMPORARY|unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			continue
		}
		t := Timed{Prefix: p, Permanent: a.Flags&unix.IFA_F_PERMANENT != 0 || a.ValidLft == forever}
		if !t.Permanent {
			t.Preferred = now.Add(time.Duration(a.PreferedLft) * time.Second)
			t.Valid = now.Add(time.Duration(a.ValidLft) * time.Second)
			if a.PreferedLft == forever {
				t.Preferred = t.Valid
			}
		}
		i := slices.IndexFunc(out, func(o Timed) bool { return o.Prefix == p })
		switch {
		case i < 0:
			out = append(out, t)
		case t.Permanent:
			out[i] = t
		case !out[i].Permanent:
			out[i].Preferred = later(out[i].Preferred, t.Preferred)
			out[i].Valid = later(out[i].Valid, t.Valid)
		}
	}
	slices.SortStableFunc(out, func(a, b Timed) int { return rank(b).Compare(rank(a)) })
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// rank orders prefixes by how long they stay preferred.
func rank(t Timed) time.Time {
	if t.Permanent {
		return time.Unix(1<<40, 0)
	}
	return t.Preferred
}

// Watch follows the addresses in the calling thread's namespace, and
// calls changed, on a goroutine of its own, whenever an IPv6 address of the interface with index idx is
// added, removed or has its lifetimes refreshed (each router
// advertisement refreshes those of SLAAC addresses), until stop is
// closed.
func Watch(idx int, changed func(), stop <-chan struct{}) error {
	updates := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(updates, stop, netlink.AddrSubscribeOptions{}); err != nil {
		return fmt.Errorf("follow the addresses of interface %d: %w", idx, err)
	}
	go func() {
		for u := range updates {
			if u.LinkIndex == idx && u.LinkAddress.IP.To4() == nil {
				changed()
			}
		}
	}()
	return nil
}
