package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/cluster/clustertest"
)

// TestClusterTLS: with an https:// store, the CA and the client
// certificate come from CLUSTER_TLS_DIR, and the store answers; without
// the client certificate it refuses the host; a broken pair is an error
// naming the directory.
func TestClusterTLS(t *testing.T) {
	endpoint, files := clustertest.EtcdTLS(t)
	define := func(tlsDir string) error {
		tlsConfig, err := clusterTLS([]string{endpoint}, tlsDir)
		if err != nil {
			return err
		}
		s, err := cluster.Open(cluster.Config{Endpoints: []string{endpoint}, TLS: tlsConfig, Node: "tls-host", Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.2")}, Timeout: 2 * time.Second})
		if err != nil {
			return err
		}
		defer s.Close()
		def := cluster.Definition{Mode: cluster.ModeBridge, Subnets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16")}, HostBlock4: 26, Routes: cluster.RoutesHostGW}
		_, err = s.Define(context.Background(), "tls", def)
		return err
	}
	if err := define(files.Dir); err != nil {
		t.Fatalf("with the CA and a client certificate: %v", err)
	}

	onlyCA := t.TempDir()
	data, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(onlyCA, "ca.pem"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := define(onlyCA); err == nil {
		t.Fatal("the store answered a host without a client certificate")
	}

	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "cert.pem"), []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := clusterTLS([]string{endpoint}, broken); err == nil || !strings.Contains(err.Error(), broken) {
		t.Fatalf("a broken client certificate: %v, want an error naming %s", err, broken)
	}
	if c, err := clusterTLS([]string{"http://198.51.100.1:2379"}, broken); c != nil || err != nil {
		t.Fatalf("http:// endpoints read TLS files: %v, %v", c, err)
	}
}
