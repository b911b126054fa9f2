package delegation

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// granted is one prefix of an IA_PD as the server sent it.
type granted struct {
	prefix           netip.Prefix
	preferred, valid time.Duration
}

// grant is what an Advertise or a Reply says of our IA_PD.
type grant struct {
	server   string          // the server's DUID, hex
	status   iana.StatusCode // of the IA_PD, or of the message if the IA_PD has none
	message  string          // the status's message
	hasIA    bool            // the message carries our IA_PD
	t1, t2   time.Duration
	prefixes []granted // those with a valid lifetime above 0 and preferred <= valid
	dropped  []netip.Prefix
}

// usable reports whether g delegates a prefix.
func (g grant) usable() bool {
	return g.hasIA && g.status == iana.StatusSuccess && len(g.prefixes) > 0
}

// why says why g delegates no prefix.
func (g grant) why() string {
	switch {
	case !g.hasIA:
		return "no IA_PD in its answer"
	case g.status != iana.StatusSuccess:
		return fmt.Sprintf("status %s %q", g.status, g.message)
	}
	return "no prefix with a valid lifetime"
}

// iaid4 is iaid as the 4 bytes of an IA_PD.
func iaid4(iaid uint32) (b [4]byte) {
	binary.BigEndian.PutUint32(b[:], iaid)
	return b
}

// buildMessage returns a client message of kind with our DUID, an IA_PD of
// iaid with prefixes (lifetimes 0: a hint, or what we hold) and, unless
// nil, the server's DUID. The Elapsed Time is set at each transmission.
func buildMessage(kind dhcpv6.MessageType, duid, server dhcpv6.DUID, iaid uint32, prefixes []netip.Prefix) (*dhcpv6.Message, error) {
	var opts []*dhcpv6.OptIAPrefix
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		opts = append(opts, &dhcpv6.OptIAPrefix{Prefix: &net.IPNet{
			IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 128)}})
	}
	mods := []dhcpv6.Modifier{
		dhcpv6.WithClientID(duid),
		dhcpv6.WithOption(dhcpv6.OptElapsedTime(0)),
		dhcpv6.WithIAPD(iaid4(iaid), opts...),
	}
	if server != nil {
		mods = append(mods, dhcpv6.WithServerID(server))
	}
	m, err := dhcpv6.NewMessage(mods...)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", kind, err)
	}
	m.MessageType = kind
	return m, nil
}

// answers reports whether m answers our message sent: its type is want,
// with sent's transaction ID, our client ID and a server ID.
func answers(m, sent *dhcpv6.Message, want dhcpv6.MessageType) bool {
	if m.MessageType != want || m.TransactionID != sent.TransactionID {
		return false
	}
	cid := m.Options.ClientID()
	return cid != nil && cid.Equal(sent.Options.ClientID()) && m.Options.ServerID() != nil
}

// parseGrant reads what m says of the IA_PD iaid.
func parseGrant(m *dhcpv6.Message, iaid uint32) grant {
	var g grant
	if sid := m.Options.ServerID(); sid != nil {
		g.server = hex.EncodeToString(sid.ToBytes())
	}
	if st := m.Options.Status(); st != nil {
		g.status, g.message = st.StatusCode, st.StatusMessage
	}
	for _, ia := range m.Options.IAPD() {
		if ia.IaId != iaid4(iaid) {
			continue
		}
		g.hasIA, g.t1, g.t2 = true, ia.T1, ia.T2
		if st := ia.Options.Status(); st != nil {
			g.status, g.message = st.StatusCode, st.StatusMessage
		}
		for _, p := range ia.Options.Prefixes() {
			if p.Prefix == nil {
				continue
			}
			pfx, ok := toPrefix(p.Prefix)
			switch {
			case !ok:
			case p.ValidLifetime == 0 || p.PreferredLifetime > p.ValidLifetime:
				g.dropped = append(g.dropped, pfx)
			default:
				g.prefixes = append(g.prefixes, granted{prefix: pfx, preferred: p.PreferredLifetime, valid: p.ValidLifetime})
			}
		}
		break
	}
	return g
}

// toPrefix converts n to a masked netip.Prefix.
func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP.To16())
	bits, size := n.Mask.Size()
	if !ok || size != 128 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, bits).Masked(), true
}
