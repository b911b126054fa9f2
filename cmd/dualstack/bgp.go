package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/sirupsen/logrus"
	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/settings"
)

// startBGP starts the BGP speaker the settings ask for. It returns nil
// without BGP_ASN, and nil with the reason when the settings are wrong:
// the plugin runs on without BGP, says why in its log and in the host's
// record in the cluster store (`dualstack cluster status`), and refuses
// the networks that need BGP with that reason.
func startBGP(cfg *settings.Settings, store *cluster.Store, log logrus.FieldLogger) (*bgp.Speaker, error) {
	sp, err := newSpeaker(cfg, store, log)
	if err != nil {
		log.WithError(err).Error("BGP does not run: networks with cluster_routes=bgp or announce=true are refused until the settings are fixed; local networks are served")
		if store != nil {
			raw, _ := json.Marshal(bgp.Status{Error: err.Error()})
			store.SetBGPStatus(raw)
		}
		return nil, err
	}
	if sp != nil && store != nil {
		sp.OnStatus(func(st bgp.Status) {
			raw, _ := json.Marshal(st)
			store.SetBGPStatus(raw)
		})
	}
	return sp, nil
}

func newSpeaker(cfg *settings.Settings, store *cluster.Store, log logrus.FieldLogger) (*bgp.Speaker, error) {
	if cfg.BGPError != nil {
		return nil, cfg.BGPError
	}
	if cfg.BGP == nil {
		return nil, nil
	}
	c := *cfg.BGP
	c.Log = log
	c.NextHops = cfg.ClusterAddress
	if store != nil {
		c.NextHops = store.Addresses()
	}
	if !c.RouterID.IsValid() {
		for _, a := range c.NextHops {
			if a.Is4() {
				c.RouterID = a
				break
			}
		}
	}
	if !c.RouterID.IsValid() {
		for _, p := range c.Peers {
			if a, err := sourceTo(p.Address); err == nil && a.Is4() {
				c.RouterID = a
				break
			}
		}
	}
	if !c.RouterID.IsValid() {
		return nil, errors.New("BGP is off: no router ID: set BGP_ROUTER_ID, or an IPv4 CLUSTER_ADDRESS")
	}
	sp, err := bgp.Start(c)
	if err != nil {
		return nil, fmt.Errorf("BGP is off: %w", err)
	}
	return sp, nil
}

// sourceTo is the host's source address on its route to a.
func sourceTo(a netip.Addr) (netip.Addr, error) {
	routes, err := netlink.RouteGet(a.AsSlice())
	if err != nil || len(routes) == 0 || routes[0].Src == nil {
		return netip.Addr{}, fmt.Errorf("no route with a source address to %s (%v)", a, err)
	}
	src, _ := netip.AddrFromSlice(routes[0].Src)
	return src.Unmap(), nil
}

// printBGP writes each node's BGP status, as it reported it.
func printBGP(w io.Writer, nodes []cluster.Node) {
	header := false
	for _, n := range nodes {
		if len(n.BGP) == 0 {
			continue
		}
		if !header {
			fmt.Fprintln(w, "\nNODE\tBGP")
			header = true
		}
		var st bgp.Status
		line := "unreadable"
		if err := json.Unmarshal(n.BGP, &st); err == nil {
			line = st.String()
		}
		fmt.Fprintf(w, "%s\t%s\n", n.Name, line)
	}
}
