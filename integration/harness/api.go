//go:build integration

package harness

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// EngineAPI calls the engine's API directly, so that the docker CLI's own
// start-up does not blur a measurement.
type EngineAPI struct {
	client  *http.Client
	version string
}

// NewEngineAPI is Eng's API, at the version the engine speaks.
func NewEngineAPI(b testing.TB) *EngineAPI {
	sock := strings.TrimPrefix(Eng.Host, "unix://")
	return &EngineAPI{
		client: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}},
		version: "v" + Docker(b, "version", "-f", "{{.Server.APIVersion}}"),
	}
}

// Post posts body to the API's path and returns the answer, failing b
// unless it is a success.
func (a *EngineAPI) Post(b testing.TB, path, body string) []byte {
	b.Helper()
	resp, err := a.client.Post("http://docker/"+a.version+path, "application/json", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		b.Fatalf("POST %s: %s: %s", path, resp.Status, out)
	}
	return out
}

// Create creates a container from body (the API's JSON) and returns its
// ID; query ("?name=…") may name it.
func (a *EngineAPI) Create(b testing.TB, query, body string) string {
	b.Helper()
	out := a.Post(b, "/containers/create"+query, body)
	var created struct{ Id string }
	if err := json.Unmarshal(out, &created); err != nil {
		b.Fatalf("create a container: %v: %s", err, out)
	}
	return created.Id
}
