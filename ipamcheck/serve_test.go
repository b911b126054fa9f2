package ipamcheck

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeSource releases what it is asked unless a link named "used" is in
// the request.
type fakeSource struct{ calls int }

func (f *fakeSource) View(context.Context) (*PluginView, error) {
	return &PluginView{Networks: []Network{{ID: "n1"}}}, nil
}

func (f *fakeSource) Release(_ context.Context, req Release) (*Released, error) {
	f.calls++
	for _, l := range req.Links {
		if l == "used" {
			return nil, &RefusedError{Reasons: []string{"link used: endpoint e1 uses it"}}
		}
	}
	return &Released{Addresses: req.Addresses, Links: req.Links}, nil
}

func TestHandlers(t *testing.T) {
	src := &fakeSource{}
	for _, c := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"GET", ViewPath, "", 200, `"id":"n1"`},
		{"POST", ViewPath, "", 405, "use GET"},
		{"GET", ReleasePath, "", 405, "use POST"},
		{"POST", ReleasePath, `{"addresses":[{"pool":"p","address":"198.51.100.9"}],"links":["dsv1"]}`, 200, `"links":["dsv1"]`},
		{"POST", ReleasePath, `{"links":["dsv1","used"]}`, 409, "endpoint e1 uses it"},
		{"POST", ReleasePath, `{"addresses":[{"pool":"p"}]}`, 400, "both are needed"},
		{"POST", ReleasePath, `{"addresses":[{"pool":"p","address":"not-an-address"}]}`, 400, "bad release request"},
		{"POST", ReleasePath, `{"links":[""]}`, 400, "an empty link name"},
		{"POST", ReleasePath, `{"routes":[{"dst":"198.18.9.0/24"}]}`, 400, "both are needed"},
	} {
		mux := http.NewServeMux()
		mux.Handle(ViewPath, ViewHandler(src))
		mux.Handle(ReleasePath, ReleaseHandler(src))
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body, rec.Code, rec.Body, c.status, c.want)
		}
	}
	if src.calls != 2 {
		t.Errorf("the source was asked to release %d times, want 2: a request it cannot read never reaches it", src.calls)
	}
}
