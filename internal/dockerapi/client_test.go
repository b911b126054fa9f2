package dockerapi

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	for host, ok := range map[string]bool{
		"unix:///var/run/docker.sock": true,
		"tcp://127.0.0.1:2375":        true,
		"ssh://user@host":             false,
		"npipe:////./pipe/docker":     false,
	} {
		if _, err := New(host); (err == nil) != ok {
			t.Errorf("New(%q): %v, want ok %v", host, err, ok)
		}
	}
}

// TestGet: over the unix socket and over TCP, an answer is decoded and
// another status is an error with Docker's text.
func TestGet(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/networks", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`[{"Name":"web"}]`)) })
	mux.HandleFunc("/networks/gone", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"message":"network gone not found"}`, http.StatusNotFound)
	})
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	tcp := httptest.NewServer(mux)
	t.Cleanup(tcp.Close)

	for _, host := range []string{"unix://" + sock, "tcp://" + strings.TrimPrefix(tcp.URL, "http://")} {
		c, err := New(host)
		if err != nil {
			t.Fatal(err)
		}
		var nets []struct{ Name string }
		if err := c.Get(context.Background(), "/networks", &nets); err != nil || len(nets) != 1 || nets[0].Name != "web" {
			t.Errorf("%s: GET /networks = %v, %v", host, nets, err)
		}
		if err := c.Get(context.Background(), "/networks/gone", &nets); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("%s: GET of a missing network: %v", host, err)
		}
	}
}
