package clustertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// TLSFiles are the PEM files of an etcd that serves https and asks its
// clients for a certificate: its CA (ca.pem), and a client certificate
// that CA signed (cert.pem, key.pem), in Dir, the layout of the plugin's
// CLUSTER_TLS_DIR.
type TLSFiles struct {
	Dir                       string
	CA, ClientCert, ClientKey string
}

// EtcdTLS starts a single-member etcd in-process that serves https on
// 127.0.0.1 and requires client certificates signed by a CA of its own,
// and returns its client URL and the files a client needs. It stops when
// tb ends.
func EtcdTLS(tb testing.TB) (endpoint string, files TLSFiles) {
	tb.Helper()
	dir := tb.TempDir()
	files = TLSFiles{Dir: dir, CA: filepath.Join(dir, "ca.pem"), ClientCert: filepath.Join(dir, "cert.pem"), ClientKey: filepath.Join(dir, "key.pem")}
	serverCert, serverKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	ca, caKey := newCert(tb, "clustertest CA", nil, nil, files.CA, "")
	newCert(tb, "etcd", ca, caKey, serverCert, serverKey)
	newCert(tb, "client", ca, caKey, files.ClientCert, files.ClientKey)

	client, peer := freeURL(tb), freeURL(tb)
	client.Scheme = "https"
	cfg := embed.NewConfig()
	cfg.Name = "clustertest"
	cfg.Dir = filepath.Join(dir, "data")
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo.CertFile, cfg.ClientTLSInfo.KeyFile = serverCert, serverKey
	cfg.ClientTLSInfo.TrustedCAFile = files.CA
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		tb.Fatalf("clustertest: start etcd with TLS: %v", err)
	}
	tb.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(15 * time.Second):
		tb.Fatal("clustertest: etcd with TLS did not become ready within 15s")
	}
	return client.String(), files
}

// newCert makes a certificate for name, signed by parent (self-signed
// when nil, a CA), valid for 127.0.0.1, and writes it (and its key when
// keyFile is not empty) as PEM.
func newCert(tb testing.TB, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	signer, signerKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	write := func(file, kind string, b []byte) {
		if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: b}), 0o600); err != nil {
			tb.Fatal(fmt.Errorf("clustertest: %w", err))
		}
	}
	write(certFile, "CERTIFICATE", der)
	if keyFile != "" {
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		write(keyFile, "EC PRIVATE KEY", kb)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert, key
}
