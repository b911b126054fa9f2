// Package dockerapi is the CLI's small client of the Docker Engine API:
// GET requests over the engine's unix socket or TCP address, with the
// unversioned paths every engine answers at its own API version.
package dockerapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultHost is Docker's default DOCKER_HOST.
const DefaultHost = "unix:///var/run/docker.sock"

// Client calls one engine.
type Client struct {
	Host string
	base string
	http *http.Client
}

// New returns a client for host, as DOCKER_HOST gives it:
// unix:///path/to/docker.sock or tcp://HOST:PORT (plain HTTP).
func New(host string) (*Client, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	c := &Client{Host: host}
	switch u.Scheme {
	case "unix":
		path := u.Path
		c.base = "http://docker"
		c.http = &http.Client{Timeout: time.Minute, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}
	case "tcp", "http":
		c.base = "http://" + u.Host
		c.http = &http.Client{Timeout: time.Minute}
	default:
		return nil, fmt.Errorf("docker host %q: give unix:///path/to/docker.sock or tcp://HOST:PORT (TLS is not supported)", host)
	}
	return c, nil
}

// Get calls GET path and decodes the JSON answer into out.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Docker at %s: %w (is it running? give its address with --docker-host or DOCKER_HOST)", c.Host, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("GET %s from Docker: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: Docker answered %d: %s", path, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("GET %s from Docker: %w", path, err)
	}
	return nil
}
