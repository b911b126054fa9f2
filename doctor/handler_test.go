package doctor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestHandler(t *testing.T) {
	gathered := 0
	h := Handler(func(context.Context) Host { gathered++; return healthy() }, logrus.New())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"findings":[]`) || !strings.Contains(rec.Body.String(), `"checks":["mount-propagation",`) {
		t.Errorf("GET: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, nil))
	if rec.Code != http.StatusMethodNotAllowed || gathered != 1 {
		t.Errorf("POST: %d, gathered %d times", rec.Code, gathered)
	}
}
