// Package dockerapi is the CLI's small client of the Docker Engine API:
// GET requests over the engine's unix socket or TCP address, with the
// unversioned paths every engine answers at its own API version.
package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/internal/jsonhttp"
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
		c.http = jsonhttp.UnixClient(path, time.Minute)
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
	err := jsonhttp.Call(ctx, c.http, http.MethodGet, c.base+path, nil, 256<<20, out)
	var unreachable *jsonhttp.Unreachable
	var answer *jsonhttp.Answer
	switch {
	case errors.As(err, &unreachable):
		return fmt.Errorf("cannot reach Docker at %s: %w (is it running? give its address with --docker-host or DOCKER_HOST)", c.Host, unreachable.Err)
	case errors.As(err, &answer):
		return fmt.Errorf("GET %s: Docker answered %d: %s", path, answer.Status, strings.TrimSpace(answer.Body))
	case err != nil:
		return fmt.Errorf("from Docker: %w", err)
	}
	return nil
}
