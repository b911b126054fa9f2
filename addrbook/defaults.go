package addrbook

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dualstack-net/dualstack/validate"
)

// DefaultPool is one entry of the DEFAULT_POOLS_V4 setting: Base is split
// into pools of length Size, handed out in order.
type DefaultPool struct {
	Base netip.Prefix
	Size int
}

// DefaultPoolsV4 is the built-in value of the DEFAULT_POOLS_V4 setting. It
// stays clear of the ranges Docker's own default pools use (172.17.0.0/16 to
// 172.31.0.0/16 and 192.168.0.0/16) so the two can coexist.
const DefaultPoolsV4 = "10.201.0.0/16:24,10.202.0.0/16:24"

// ParseDefaultPools parses a DEFAULT_POOLS_V4 value: a comma-separated list of
// CIDR:size, for example "10.201.0.0/16:24". A missing :size means the CIDR is
// one pool.
func ParseDefaultPools(s string) ([]DefaultPool, error) {
	var out []DefaultPool
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		cidr, sizeStr, hasSize := strings.Cut(item, ":")
		base, err := netip.ParsePrefix(cidr)
		if err != nil || !base.Addr().Is4() {
			return nil, fmt.Errorf("DEFAULT_POOLS_V4: %q is not an IPv4 CIDR such as 10.201.0.0/16:24", item)
		}
		base = base.Masked()
		if base.Bits() < validate.MinBits4 {
			return nil, fmt.Errorf("DEFAULT_POOLS_V4: %q is shorter than /%d: give ranges of /%d or longer (several, comma-separated, for more)", item, validate.MinBits4, validate.MinBits4)
		}
		// The range is a subnet of sorts: none of it may be reserved.
		if err := validate.Subnet(base); err != nil {
			return nil, fmt.Errorf("DEFAULT_POOLS_V4: %q: %w", item, err)
		}
		if base.Bits() > 30 {
			return nil, fmt.Errorf("DEFAULT_POOLS_V4: %q is too small for a network (a gateway and a container need a /30): give a prefix length of 30 or less", item)
		}
		size := base.Bits()
		if hasSize {
			size, err = strconv.Atoi(sizeStr)
			if err != nil || size < base.Bits() || size > 30 {
				return nil, fmt.Errorf("DEFAULT_POOLS_V4: %q: the pool size must be a prefix length between %d and 30", item, base.Bits())
			}
		}
		if size-base.Bits() > 24 {
			return nil, fmt.Errorf("DEFAULT_POOLS_V4: %q splits into more than 2^24 pools: use a larger pool size", item)
		}
		out = append(out, DefaultPool{Base: base, Size: size})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("DEFAULT_POOLS_V4 is empty: give at least one CIDR:size, for example %s", DefaultPoolsV4)
	}
	return out, nil
}

// ULAPrefix derives the host's unique local /48 (RFC 4193) from its machine
// ID: fd00::/8 followed by 40 bits of a hash of the ID. The same machine ID
// always gives the same /48, so pools keep their prefixes across restarts and
// reboots, and two hosts almost never collide.
func ULAPrefix(machineID string) netip.Prefix {
	sum := sha256.Sum256([]byte("dualstack ula/48 " + strings.TrimSpace(machineID)))
	var b [16]byte
	b[0] = 0xfd
	copy(b[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(b), 48)
}

// nthSubnet returns the n-th subnet of length size inside base. The caller
// keeps n below 2^(size-base.Bits()).
func nthSubnet(base netip.Prefix, size int, n uint64) netip.Prefix {
	a := base.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		v := binary.BigEndian.Uint32(b[:]) + uint32(n)<<(32-size)
		binary.BigEndian.PutUint32(b[:], v)
		return netip.PrefixFrom(netip.AddrFrom4(b), size)
	}
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var addHi, addLo uint64
	if shift := 128 - size; shift >= 64 {
		addHi = n << (shift - 64)
	} else {
		addLo = n << shift
		if shift > 0 {
			addHi = n >> (64 - shift)
		}
	}
	lo, carry := bits.Add64(lo, addLo, 0)
	hi, _ = bits.Add64(hi, addHi, carry)
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	return netip.PrefixFrom(netip.AddrFrom16(b), size)
}
