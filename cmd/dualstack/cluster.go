package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/settings"
	"github.com/dualstack-net/dualstack/state"
)

// openCluster opens the cluster store the settings name; nil without
// CLUSTER_STORE. The store need not answer yet: the plugin serves its
// local networks either way. The host's identity in the cluster is a
// secret kept in the state file db; calls hears of every call to the
// store (the metrics).
func openCluster(cfg *settings.Settings, db state.Store, calls cluster.Observer, log logrus.FieldLogger) (*cluster.Store, error) {
	if len(cfg.ClusterStore) == 0 {
		return nil, nil
	}
	token, err := cluster.LoadToken(db)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := clusterTLS(cfg.ClusterStore, cfg.ClusterTLSDir)
	if err != nil {
		return nil, err
	}
	addrs := cfg.ClusterAddress
	if len(addrs) == 0 {
		a, err := sourceAddress(cfg.ClusterStore[0])
		if err != nil {
			return nil, fmt.Errorf("CLUSTER_ADDRESS is not set and %w: set it with `docker plugin set dualstack CLUSTER_ADDRESS=ADDRESS`", err)
		}
		addrs = []netip.Addr{a}
	}
	return cluster.Open(cluster.Config{
		Endpoints: cfg.ClusterStore,
		TLS:       tlsConfig,
		Node:      cfg.ClusterNode,
		Addresses: addrs,
		Log:       log,
		Token:     token,
		Calls:     calls,
	})
}

// clusterTLS reads the client certificate and CA for https:// endpoints
// from dir (cert.pem, key.pem, ca.pem; each optional but the pair).
func clusterTLS(endpoints []string, dir string) (*tls.Config, error) {
	https := false
	for _, e := range endpoints {
		https = https || strings.HasPrefix(e, "https://")
	}
	if !https {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := os.Stat(cert); err == nil {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("cluster store client certificate in %s: %w", dir, err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if pem, err := os.ReadFile(filepath.Join(dir, "ca.pem")); err == nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster store CA %s holds no PEM certificate", filepath.Join(dir, "ca.pem"))
		}
		c.RootCAs = pool
	}
	return c, nil
}

// sourceAddress is the host's source address on its route to endpoint.
func sourceAddress(endpoint string) (netip.Addr, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return netip.Addr{}, err
	}
	ips, err := net.LookupIP(u.Hostname())
	if err != nil || len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("the store endpoint %s does not resolve (%v)", endpoint, err)
	}
	a, _ := netip.AddrFromSlice(ips[0])
	src, err := sourceTo(a.Unmap())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("the store endpoint %s: %w", endpoint, err)
	}
	return src, nil
}

// clusterCommand is `dualstack cluster status|forget NODE`, which reads
// and changes the cluster store directly, from any host that reaches it.
func clusterCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dualstack cluster", flag.ContinueOnError)
	store := fs.String("store", os.Getenv("CLUSTER_STORE"), "etcd endpoints, comma-separated (default $CLUSTER_STORE)")
	tlsDir := fs.String("tls-dir", settings.DefaultClusterTLSDir, "directory of ca.pem, cert.pem and key.pem for https:// endpoints")
	asJSON := fs.Bool("json", false, "status: print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: dualstack cluster [--store URLS] [--json] status\n       dualstack cluster [--store URLS] forget NODE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	// Flags after the command, as in `status --json`.
	if len(rest) > 1 && rest[0] == "status" {
		if err := fs.Parse(rest[1:]); err != nil {
			return err
		}
		rest = append([]string{"status"}, fs.Args()...)
	}
	if len(rest) == 0 || *store == "" {
		fs.Usage()
		return errors.New("name a command, and the store with --store or CLUSTER_STORE")
	}
	endpoints := strings.Split(*store, ",")
	tlsConfig, err := clusterTLS(endpoints, *tlsDir)
	if err != nil {
		return err
	}
	// The command is no node: it registers nothing.
	s, err := cluster.Open(cluster.Config{Endpoints: endpoints, TLS: tlsConfig, Node: "dualstack-cli", Observer: true})
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case rest[0] == "status" && len(rest) == 1:
		st, err := s.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		printStatus(stdout, st)
		return nil
	case rest[0] == "forget" && len(rest) == 2:
		blocks, claims, err := s.Forget(ctx, rest[1])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "node %s forgotten: %d blocks and %d addresses released\n", rest[1], blocks, claims)
		return nil
	}
	fs.Usage()
	return fmt.Errorf("unknown command %q", strings.Join(rest, " "))
}

// printStatus writes the nodes, then each network's blocks by node with
// how much of each subnet they hold.
func printStatus(w io.Writer, st *cluster.Status) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "STORE\t%s\n\n", strings.Join(st.Endpoints, ","))
	fmt.Fprintln(tw, "NODE\tADDRESSES\tLEASE")
	for _, n := range st.Nodes {
		lease := "dead (forget it with `dualstack cluster forget " + n.Name + "`)"
		if n.Alive {
			lease = fmt.Sprintf("alive, %s left", n.TTL.Round(time.Second))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", n.Name, joinAddrs(n.Addresses), lease)
	}
	printBGP(tw, st.Nodes)
	for _, nw := range st.Networks {
		fmt.Fprintf(tw, "\nNETWORK %s", nw.Name)
		if nw.Definition != nil {
			fmt.Fprintf(tw, "\t%s", nw.Definition.Summary())
		} else if nw.DefinitionError != "" {
			fmt.Fprintf(tw, "\t%s", nw.DefinitionError)
		}
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "  NODE\tBLOCKS\tCLAIMED ADDRESSES\tUSAGE")
		byNode := map[string][]cluster.Block{}
		for _, b := range nw.Blocks {
			byNode[b.Node] = append(byNode[b.Node], b)
		}
		claims := map[string]int{}
		for _, c := range nw.Claims {
			claims[c.Node]++
		}
		var nodes []string
		for n := range byNode {
			nodes = append(nodes, n)
		}
		for n := range claims {
			if byNode[n] == nil {
				nodes = append(nodes, n)
			}
		}
		sort.Strings(nodes)
		for _, node := range nodes {
			var names []string
			var usage []string
			held := map[netip.Prefix]float64{}
			for _, b := range byNode[node] {
				names = append(names, b.Prefix.String())
				if nw.Definition != nil {
					for _, sub := range nw.Definition.Subnets {
						if sub.Contains(b.Prefix.Addr()) {
							held[sub] += 1 / float64(uint64(1)<<min(63, b.Prefix.Bits()-sub.Bits()))
						}
					}
				}
			}
			for sub, share := range held {
				usage = append(usage, fmt.Sprintf("%.2g%% of %s", 100*share, sub))
			}
			sort.Strings(usage)
			fmt.Fprintf(tw, "  %s\t%s\t%d\t%s\n", node, strings.Join(names, ","), claims[node], strings.Join(usage, ", "))
		}
		for _, i := range nw.Ignored {
			fmt.Fprintf(tw, "  ignored: %s\n", i)
		}
	}
	tw.Flush()
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}
