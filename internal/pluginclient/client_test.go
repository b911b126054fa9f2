package pluginclient

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestPluginID(t *testing.T) {
	id := strings.Repeat("a1", 32)
	for path, want := range map[string]string{
		"/var/lib/docker/plugins/" + id + "/rootfs/dualstack": id,
		"/srv/docker/plugins/" + id + "/rootfs/dualstack":     id,
		"/usr/local/bin/dualstack":                            "",
		"/var/lib/docker/plugins/short/rootfs/dualstack":      "",
		"/var/lib/docker/other/" + id + "/rootfs/dualstack":   "",
	} {
		if got := pluginID(path); got != want {
			t.Errorf("pluginID(%s) = %q, want %q", path, got, want)
		}
	}
	got, err := Find("", "/var/lib/docker/plugins/"+id+"/rootfs/dualstack")
	if want := filepath.Join(PluginsDir, id, SocketName); err != nil || got != want {
		t.Errorf("Find from the plugin's rootfs = %q, %v; want %s", got, err, want)
	}
	if got, err := Find("/x.sock", ""); err != nil || got != "/x.sock" {
		t.Errorf("Find with --socket = %q, %v", got, err)
	}
}

func TestGetPost(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]string
		_ = json.NewDecoder(r.Body).Decode(&in)
		_ = json.NewEncoder(w).Encode(map[string]string{"method": r.Method, "a": in["a"]})
	})
	mux.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not ready: state not loaded", http.StatusServiceUnavailable)
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	c := New(sock)
	var out map[string]string
	if err := c.Get(context.Background(), "/ok", &out); err != nil || out["method"] != "GET" {
		t.Errorf("Get = %v, %v", out, err)
	}
	if err := c.Post(context.Background(), "/ok", map[string]string{"a": "b"}, &out); err != nil || out["method"] != "POST" || out["a"] != "b" {
		t.Errorf("Post = %v, %v", out, err)
	}
	var se *StatusError
	if err := c.Get(context.Background(), "/bad", nil); !errors.As(err, &se) || se.Status != 503 || !strings.Contains(err.Error(), "state not loaded") {
		t.Errorf("Get /bad = %v, want a 503 naming the reason", err)
	}
	if err := New(filepath.Join(t.TempDir(), "none.sock")).Get(context.Background(), "/ok", nil); err == nil || !strings.Contains(err.Error(), "--socket") {
		t.Errorf("Get from no socket = %v, want how to give it", err)
	}
}
