package cluster

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// AddrKey is the store key of a single address: its bytes as fixed-width
// lowercase hex, 8 digits for IPv4 and 32 for IPv6. Fixed width makes the
// lexical order of keys of one family the numeric order of addresses, so a
// range of addresses is a range of keys (used to ask etcd, in one compare,
// whether any claim lies inside a block). An IPv4-mapped IPv6 address is
// encoded as the IPv4 address it maps; a zone is dropped.
func AddrKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return hex.EncodeToString(a.Unmap().AsSlice())
}

// ParseAddrKey is the inverse of AddrKey. It accepts only the canonical
// form (lowercase, 8 or 32 digits), so that one address has one key.
func ParseAddrKey(k string) (netip.Addr, error) {
	if len(k) != 8 && len(k) != 32 {
		return netip.Addr{}, fmt.Errorf("address key %q: want 8 (IPv4) or 32 (IPv6) hex digits", k)
	}
	if strings.ToLower(k) != k {
		return netip.Addr{}, fmt.Errorf("address key %q: hex digits must be lowercase", k)
	}
	b, err := hex.DecodeString(k)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address key %q is not hex: %v", k, err)
	}
	a, _ := netip.AddrFromSlice(b)
	return a, nil
}

// BlockKey is the store key of a block: the AddrKey of its first address,
// "_" and its prefix length, for example "c6120040_26" for 198.18.0.64/26.
// Keys of blocks sort by first address too; "_" sorts after every hex digit
// and before "`", which LeaseBlock uses to range over the blocks that start
// inside an address range.
func BlockKey(p netip.Prefix) string {
	p = normPrefix(p)
	if !p.IsValid() {
		return ""
	}
	return AddrKey(p.Addr()) + "_" + strconv.Itoa(p.Bits())
}

// ParseBlockKey is the inverse of BlockKey. It refuses keys whose address
// has bits set past the prefix length: such a key is not one BlockKey
// writes, and accepting it would give one block two keys.
func ParseBlockKey(k string) (netip.Prefix, error) {
	ak, bs, ok := strings.Cut(k, "_")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("block key %q: want <address key>_<prefix length>", k)
	}
	a, err := ParseAddrKey(ak)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("block key %q: %v", k, err)
	}
	bits, err := strconv.Atoi(bs)
	if err != nil || bits < 0 || bits > a.BitLen() || strconv.Itoa(bits) != bs {
		return netip.Prefix{}, fmt.Errorf("block key %q: %q is not a prefix length between 0 and %d", k, bs, a.BitLen())
	}
	p := netip.PrefixFrom(a, bits)
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("block key %q: the address has bits set past /%d", k, bits)
	}
	return p, nil
}

// normPrefix masks p and turns an IPv4-mapped IPv6 prefix into IPv4.
func normPrefix(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return p
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return netip.PrefixFrom(p.Addr().WithZone(""), p.Bits()).Masked()
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nextPrefix is the aligned prefix of p's length that follows p, and false
// when p is the last one of its family.
func nextPrefix(p netip.Prefix) (netip.Prefix, bool) {
	p = p.Masked()
	if p.Bits() == 0 {
		return netip.Prefix{}, false
	}
	b := p.Addr().AsSlice()
	// Add 1 at the prefix's last bit, carrying towards the first byte.
	i := (p.Bits() - 1) / 8
	add := uint(0x80 >> ((p.Bits() - 1) % 8))
	for ; i >= 0 && add != 0; i-- {
		sum := uint(b[i]) + add
		b[i] = byte(sum)
		add = sum >> 8
	}
	if add != 0 {
		return netip.Prefix{}, false
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, p.Bits()), true
}
