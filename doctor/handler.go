package doctor

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/sirupsen/logrus"
)

// Path is where the plugin serves the doctor on its socket.
const Path = "/dualstack/doctor"

// Handler answers GET with the Report of the host gather reads, as JSON.
func Handler(gather func(context.Context) Host, log logrus.FieldLogger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "the doctor answers GET only", http.StatusMethodNotAllowed)
			return
		}
		rep := Run(gather(r.Context()))
		for _, f := range rep.Findings {
			log.WithField("check", f.Check).WithField("object", f.Object).Debug(f.Problem)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(rep)
	})
}
