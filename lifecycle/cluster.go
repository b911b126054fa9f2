package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/routes"
)

// rejoinCluster, at start, confirms the definitions of this host's cluster
// networks in the store (putting back one that went with the last block
// of its network) and has the IPAM adopt the blocks it leased but did not
// record before a crash, and stop allocating from those the store no
// longer gives this host, trying until the store answers; then, until ctx
// ends, it gives back what the store did not take while it was away, and
// checks again that the host's blocks are still its own.
func rejoinCluster(ctx context.Context, d *driver.Driver, book *addrbook.Book, log logrus.FieldLogger) {
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := d.DefineClusterNetworks(ctx)
		var mismatch *cluster.MismatchError
		if errors.As(err, &mismatch) {
			// Not the store's absence: trying again changes nothing.
			log.WithError(err).Error("a cluster network of this host is defined differently in the cluster store now: its new blocks cannot be leased until the definitions agree")
			err = nil
		}
		if err == nil {
			var lost []addrbook.LostBlock
			lost, err = book.AdoptLeasedBlocks()
			reportLost(lost, d, log)
		}
		if err == nil {
			break
		}
		log.WithError(err).Warn("check the blocks this host holds in the cluster store (trying again)")
		if !sleep(ctx, wait) {
			return
		}
	}
	for {
		if err := book.RetryPendingReleases(); err != nil {
			log.WithError(err).Warn("give back what the cluster store did not take back (trying again)")
		}
		lost, err := book.CheckBlocks()
		reportLost(lost, d, log)
		if err != nil {
			log.WithError(err).Debug("check that the blocks this host allocates from are still its own (trying again)")
		}
		if !sleep(ctx, pendingRetryInterval) {
			return
		}
	}
}

// pendingRetryInterval is how often what the store did not take back is
// offered again.
const pendingRetryInterval = 30 * time.Second

// sleep waits d, or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// watchClusterRoutes keeps the host's routes to the other hosts' blocks
// current until ctx ends, and has the IPAM stop allocating from a block
// as soon as the store shows it is not this host's any more. The store
// gives only blocks that passed its checks (inside their network's
// definition, of its block length), each with its holder's registered
// addresses as the only next hops.
func watchClusterRoutes(ctx context.Context, store *cluster.Store, d *driver.Driver, book *addrbook.Book, log logrus.FieldLogger) {
	store.WatchBlocks(ctx, func(blocks []cluster.Block) {
		hb := make([]routes.HostBlock, 0, len(blocks))
		mine := map[string][]netip.Prefix{}
		for _, b := range blocks {
			if b.Mine {
				mine[b.Network] = append(mine[b.Network], b.Prefix)
			}
			if b.Node == store.Node() && !b.Mine {
				// This host's name without its identity: not its own, and
				// no route leads to a host of that name elsewhere.
				continue
			}
			hb = append(hb, routes.HostBlock{Network: b.Network, Prefix: b.Prefix, Node: b.Node, Via: b.NodeAddresses})
		}
		if err := d.Routes().ClusterBlocks(store.Node(), hb); err != nil {
			log.WithError(err).Warn("routes to the other hosts' blocks")
		}
		if book.MayHaveLost(mine) {
			lost, err := book.CheckBlocks()
			reportLost(lost, d, log)
			if err != nil {
				log.WithError(err).Warn("check that the blocks this host allocates from are still its own (checked again within 30 s)")
			}
		}
	})
}

// reportLost says, for each block the host lost, which containers still
// have addresses there: another host may hand those addresses out now.
func reportLost(lost []addrbook.LostBlock, d *driver.Driver, log logrus.FieldLogger) {
	for _, l := range lost {
		entry := log.WithField("network", l.Network).WithField("block", l.Block)
		holders := d.EndpointsIn(l.Block)
		if len(holders) == 0 {
			for _, a := range slices.SortedFunc(maps.Keys(l.InUse), netip.Addr.Compare) {
				holders = append(holders, fmt.Sprintf("address %s (MAC %s)", a, l.InUse[a]))
			}
		}
		if len(holders) == 0 {
			entry.Warnf("block %s of cluster network %s is no longer this host's in the cluster store (forgotten, or leased by another host since): nothing more is allocated from it; no container has an address there", l.Block, l.Network)
			continue
		}
		entry.WithField("containers", len(holders)).Errorf("block %s of cluster network %s is no longer this host's in the cluster store (forgotten, or leased by another host since): nothing more is allocated from it, and these keep their addresses there, which another host may hand out too: %s; recreate their containers to move them to a block of this host's (`docker network inspect` names the container of each endpoint)",
			l.Block, l.Network, strings.Join(holders, "; "))
	}
}
