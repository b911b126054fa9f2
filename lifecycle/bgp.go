package lifecycle

import (
	"context"
	"net/netip"

	"github.com/sirupsen/logrus"
)

// followBGP has the driver announce the host's prefixes and the routes
// route what the speaker learns (BGP_IMPORT_ROUTES), or remove the routes
// learned before when the host no longer learns. The speaker stops as
// soon as ctx ends.
func followBGP(ctx context.Context, l *Loops, c Config, log logrus.FieldLogger) {
	rt, sp := c.Driver.Routes(), c.Speaker
	if sp == nil || !c.Import {
		if err := rt.ForgetLearned(); err != nil {
			log.WithError(err).Warn("remove the routes BGP learned before")
		}
	}
	if sp == nil {
		return
	}
	if c.Import {
		// The speaker tells all it learned at once, then each change:
		// the routes change for those only.
		sp.OnLearned(func(set map[netip.Prefix]netip.Addr, withdrawn []netip.Prefix) {
			if err := rt.Learned(set, withdrawn); err != nil {
				log.WithError(err).Warn("BGP: routes learned from the peers")
			}
		})
	}
	c.Driver.SyncBGP()
	l.run(func() {
		<-ctx.Done()
		sp.Stop()
	})
}

// announceBlocks has the driver announce the host's prefixes again each
// time the address book's cluster pools come to hold a new block.
func announceBlocks(ctx context.Context, c Config) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.Book.BlocksChanged():
			c.Driver.SyncBGP()
		}
	}
}
