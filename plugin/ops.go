package plugin

import (
	"net/http"
	"time"
)

// Operator calls.
//
// Besides Docker's calls (POST, JSON, answered to dockerd), the socket
// serves the operator's: GET /health, GET /metrics and the CLI's calls
// under /dualstack/ (doctor, ipam). They are registered by the plugin's
// main with HandleOps; none of them is ever called by Docker, so they may
// take their time and read the kernel, but they never call Docker either.

// HandleOps registers an operator's call at path (such as /health or
// /dualstack/doctor). One info line per call, as for Docker's.
func (s *Server) HandleOps(path string, h http.Handler) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.log.WithField("path", path).WithField("method", r.Method).WithField("status", rec.status).
			WithField("took", time.Since(start)).Info("operator call")
	})
}

// statusRecorder notes the status an operator's handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}
