package firewall

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Following the host's rules as they change.
//
// dualstack's guarantees hold only while its hooks sit where they belong
// and its rules know every Docker network: Docker puts its FORWARD jump
// back on top whenever dockerd starts, makes a network's rules when the
// network is created, and a firewall manager may flush or reorder
// anything. A periodic check closes such a hole only at its next round.
//
// With the nft backend every change to the host's packet filter, by
// iptables-nft (Docker's rules, a firewall manager's) or by nft itself
// (Docker's nftables backend), is one nf_tables transaction, and the
// kernel tells every listener of the NFNLGRP_NFTABLES group when one
// commits: a NEWGEN message naming the process that made it. Follow
// listens there and, for every transaction that was not one of this
// Firewall's own restores, has the caller apply its state again, which
// changes nothing when all is still in place. That costs nothing while
// nothing changes, and follows a change within milliseconds. The legacy
// backend (xtables) tells no one: there Follow compares iptables-save's
// output every legacyPoll (also after this Firewall's own changes: the
// sync then finds nothing to do).

// legacyPoll is how often Watch reads the legacy backend's rules.
const legacyPoll = 300 * time.Millisecond

// ownChanges remembers the pids of the last restores a Firewall ran, so
// that Follow does not count the Firewall's own changes.
type ownChanges struct {
	mu   sync.Mutex
	pids []int
}

func (o *ownChanges) add(pid int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pids = append(o.pids, pid)
	if len(o.pids) > 16 {
		o.pids = o.pids[len(o.pids)-16:]
	}
}

func (o *ownChanges) has(pid int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Contains(o.pids, pid)
}

// Follow calls sync on the calling goroutine, so in its thread's network
// namespace, whenever the host's rules change by another hand than this
// Firewall's (a burst of changes gathered into one call), at least every
// every, and a second after a sync that failed, until ctx is done. When
// it cannot listen to nf_tables (or the listening breaks) it says so
// through watchFailed and compares the rules every legacyPoll instead.
func (fw *Firewall) Follow(ctx context.Context, every time.Duration, sync func() error, watchFailed func(error)) {
	var changes <-chan struct{}
	if fw.backend != BackendLegacy {
		c, err := fw.subscribe(ctx)
		if err != nil {
			watchFailed(err)
		}
		changes = c
	}
	var poll <-chan time.Time
	var last []byte
	startPolling := func() {
		t := time.NewTicker(legacyPoll)
		context.AfterFunc(ctx, t.Stop)
		poll, last = t.C, fw.rulesText()
	}
	if changes == nil {
		startPolling()
	}
	periodic := time.NewTicker(every)
	defer periodic.Stop()
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-periodic.C:
		case <-retry:
		case _, ok := <-changes:
			if !ok {
				if ctx.Err() != nil {
					return
				}
				changes = nil
				watchFailed(errors.New("the nf_tables notifications stopped"))
				startPolling()
			}
			time.Sleep(followCoalesce)
			drain(changes)
		case <-poll:
			now := fw.rulesText()
			if bytes.Equal(now, last) {
				continue
			}
			last = now
		}
		retry = nil
		if sync() != nil {
			retry = time.After(time.Second)
		}
	}
}

// followCoalesce gathers the changes of one burst (dockerd makes a
// network's rules with several commands) into one sync.
const followCoalesce = 20 * time.Millisecond

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

// subscribe listens to the nf_tables transactions of the calling thread's
// network namespace: the channel receives (at most one pending value)
// when one that is not this Firewall's own commits, and is closed when
// ctx is done or the socket fails.
func (fw *Firewall) subscribe(ctx context.Context) (<-chan struct{}, error) {
	s, err := nl.Subscribe(unix.NETLINK_NETFILTER, unix.NFNLGRP_NFTABLES)
	if err != nil {
		return nil, fmt.Errorf("listen to nf_tables changes: %w", err)
	}
	context.AfterFunc(ctx, s.Close)
	c := make(chan struct{}, 1)
	changed := func() {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(c)
		for {
			msgs, _, err := s.Receive()
			switch {
			case ctx.Err() != nil:
				return
			case errors.Is(err, unix.ENOBUFS):
				// Changes came faster than they were read.
				changed()
				continue
			case err != nil:
				return
			}
			for _, m := range msgs {
				if pid, ok := generation(m); ok && !fw.own.has(pid) {
					changed()
				}
			}
		}
	}()
	return c, nil
}

// generation reports whether m is the message the kernel sends when an
// nf_tables transaction commits (NFT_MSG_NEWGEN), and the pid of the
// process that made it (0 when the kernel does not say).
func generation(m syscall.NetlinkMessage) (pid int, ok bool) {
	if m.Header.Type != unix.NFNL_SUBSYS_NFTABLES<<8|unix.NFT_MSG_NEWGEN {
		return 0, false
	}
	// struct nfgenmsg, then attributes.
	const nfgenmsgLen = 4
	if len(m.Data) < nfgenmsgLen {
		return 0, true
	}
	attrs, err := nl.ParseRouteAttr(m.Data[nfgenmsgLen:])
	if err != nil {
		return 0, true
	}
	for _, a := range attrs {
		if a.Attr.Type == unix.NFTA_GEN_PROC_PID && len(a.Value) == 4 {
			return int(binary.BigEndian.Uint32(a.Value)), true
		}
	}
	return 0, true
}

// counterText matches the packet and byte counters of iptables-save's
// chain lines, which traffic changes.
var counterText = regexp.MustCompile(`\[\d+:\d+\]`)

// rulesText is both families' rules without counters, to compare (nil
// when they cannot be read: compared as a change once they can).
func (fw *Firewall) rulesText() []byte {
	outs, errs := fw.saveAll()
	if errors.Join(errs...) != nil {
		return nil
	}
	return counterText.ReplaceAll(bytes.Join(outs, nil), nil)
}
