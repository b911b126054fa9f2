package allocator

import (
	"encoding/binary"
	"net/netip"
)

// u128 is an address as an unsigned 128-bit integer, so that the allocator
// can compare and step addresses with a few machine instructions. An IPv4
// address is held as its 32-bit value (hi is 0), an IPv6 address as its 128
// bits. Zones are dropped.
type u128 struct{ hi, lo uint64 }

// less reports whether x < y.
func (x u128) less(y u128) bool {
	return x.hi < y.hi || x.hi == y.hi && x.lo < y.lo
}

// inc returns x+1. Callers only step inside the pool bounds, so it never
// wraps in practice (it would wrap to 0 past the last IPv6 address).
func (x u128) inc() u128 {
	x.lo++
	if x.lo == 0 {
		x.hi++
	}
	return x
}

// dec returns x-1. Like inc, it is only used inside the pool bounds.
func (x u128) dec() u128 {
	if x.lo == 0 {
		x.hi--
	}
	x.lo--
	return x
}

// fromAddr converts a valid address to its integer. The caller checks the
// family: an IPv4 address and the IPv4-mapped IPv6 address of a different
// family would otherwise be confused.
func fromAddr(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// toAddr converts x back to an address of the given family.
func (x u128) toAddr(is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}
