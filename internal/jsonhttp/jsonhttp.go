// Package jsonhttp is what the CLI's clients share: an HTTP client over a
// unix socket, and one call that reads the whole answer and decodes JSON
// from a 200. internal/pluginclient (the plugin's socket) and
// internal/dockerapi (the Docker Engine API) are made of it.
package jsonhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// UnixClient is an HTTP client whose every connection goes to the unix
// socket at path, whatever host a URL names.
func UnixClient(path string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
}

// Answer is a server's answer other than 200.
type Answer struct {
	Status int
	Body   string
}

// Unreachable is a call that got no answer.
type Unreachable struct{ Err error }

func (u *Unreachable) Error() string { return u.Err.Error() }
func (u *Unreachable) Unwrap() error { return u.Err }

// Call sends method url with body (nil: none), reads at most limit bytes
// of the answer and decodes a 200's JSON into out (nil: ignored). It
// fails with *Unreachable when no answer came, *Answer for another
// status, and an error naming the call otherwise.
func Call(ctx context.Context, c *http.Client, method, url string, body io.Reader, limit int64, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return &Unreachable{Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return &Answer{Status: resp.StatusCode, Body: string(data)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, err)
	}
	return nil
}

func (a *Answer) Error() string { return fmt.Sprintf("answered %d: %s", a.Status, a.Body) }
