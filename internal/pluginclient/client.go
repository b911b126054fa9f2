// Package pluginclient is the CLI's way to the running plugin: it finds
// the plugin's unix socket on the host and makes the operator's calls
// (GET /health, /dualstack/...) over it.
//
// The socket is found, in this order: the --socket flag; DUALSTACK_SOCKET;
// when the CLI is the binary inside an installed plugin's rootfs
// (<docker root>/plugins/<ID>/rootfs/dualstack), that plugin's socket,
// /run/docker/plugins/<ID>/dualstack.sock (Docker keeps managed plugins'
// sockets there whatever its --exec-root); otherwise the only
// /run/docker/plugins/*/dualstack.sock there is.
package pluginclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/internal/jsonhttp"
)

// SocketName is the socket's name in config.json ("interface.socket").
const SocketName = "dualstack.sock"

// PluginsDir is where Docker puts managed plugins' sockets, one directory
// per plugin ID.
const PluginsDir = "/run/docker/plugins"

// Client calls the plugin over its socket.
type Client struct {
	Socket string
	http   *http.Client
}

// New returns a client for the socket at path.
func New(path string) *Client {
	return &Client{Socket: path, http: jsonhttp.UnixClient(path, 2*time.Minute)}
}

// Find returns the socket's path: flagValue if set, else as the package
// says. self is the running binary's path (os.Executable).
func Find(flagValue, self string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := os.Getenv("DUALSTACK_SOCKET"); v != "" {
		return v, nil
	}
	if id := pluginID(self); id != "" {
		return filepath.Join(PluginsDir, id, SocketName), nil
	}
	found, _ := filepath.Glob(filepath.Join(PluginsDir, "*", SocketName))
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("no dualstack plugin socket in %s/*/: is the plugin enabled (docker plugin ls)? Give its socket with --socket PATH or DUALSTACK_SOCKET", PluginsDir)
	default:
		return "", fmt.Errorf("several plugin sockets named %s: %s; give the one to use with --socket PATH", SocketName, strings.Join(found, ", "))
	}
}

// pluginID is the plugin ID in a path <root>/plugins/<ID>/rootfs/dualstack,
// "" for any other path.
func pluginID(self string) string {
	dir := filepath.Dir(self)
	if filepath.Base(dir) != "rootfs" {
		return ""
	}
	plugin := filepath.Dir(dir)
	if filepath.Base(filepath.Dir(plugin)) != "plugins" {
		return ""
	}
	id := filepath.Base(plugin)
	if len(id) != 64 {
		return ""
	}
	return id
}

// Get calls GET path and decodes the JSON answer into out (nil: ignored).
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, out)
}

// Post calls POST path with in as JSON and decodes the answer into out.
func (c *Client) Post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, body, out)
}

// StatusError is an answer other than 200, with the plugin's text.
type StatusError struct {
	Path   string
	Status int
	Body   string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("the plugin answered %s with %d: %s", e.Path, e.Status, strings.TrimSpace(e.Body))
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	err := jsonhttp.Call(ctx, c.http, method, "http://plugin"+path, bytes.NewReader(body), 64<<20, out)
	var unreachable *jsonhttp.Unreachable
	var answer *jsonhttp.Answer
	switch {
	case errors.As(err, &unreachable):
		return fmt.Errorf("cannot reach the plugin at %s: %w (is it enabled? give its socket with --socket)", c.Socket, unreachable.Err)
	case errors.As(err, &answer):
		return &StatusError{Path: path, Status: answer.Status, Body: answer.Body}
	case err != nil:
		return fmt.Errorf("%w: are the CLI and the plugin the same version?", err)
	}
	return nil
}
