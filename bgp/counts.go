package bgp

import (
	"context"
	"net/netip"
	"slices"

	"github.com/osrg/gobgp/v4/api"
)

// PeerCounts is one session as the metrics read it at scrape time.
type PeerCounts struct {
	Address netip.Addr
	// Up: the session is established.
	Up bool
	// Sent and Received count the prefixes advertised to the peer and
	// received from it, both families together (0 while it is down).
	Sent, Received uint64
}

// Counts reads every session's state and prefix counts from the speaker,
// by peer address.
func (s *Speaker) Counts(ctx context.Context) ([]PeerCounts, error) {
	var out []PeerCounts
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		var c PeerCounts
		if p.State != nil {
			c.Address, _ = netip.ParseAddr(p.State.NeighborAddress)
			c.Up = p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
		}
		if !c.Address.IsValid() && p.Conf != nil {
			c.Address, _ = netip.ParseAddr(p.Conf.NeighborAddress)
		}
		for _, af := range p.AfiSafis {
			if af.State != nil {
				c.Sent += af.State.Advertised
				c.Received += af.State.Received
			}
		}
		c.Address = c.Address.Unmap()
		out = append(out, c)
	})
	slices.SortFunc(out, func(a, b PeerCounts) int { return a.Address.Compare(b.Address) })
	return out, err
}
