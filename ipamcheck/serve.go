package ipamcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// Source is the plugin's side: its view, and the release of exactly what
// a request names.
type Source interface {
	View(ctx context.Context) (*PluginView, error)
	Release(ctx context.Context, req Release) (*Released, error)
}

// ViewHandler answers GET /dualstack/ipam with src's view.
func ViewHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		v, err := src.View(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, v)
	})
}

// ReleaseHandler answers POST /dualstack/ipam/release: 200 with what was
// released, 400 for a request it cannot read, 409 with the reasons when
// src refuses any of it (nothing is released then).
func ReleaseHandler(src Source) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		var req Release
		body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err == nil {
			err = req.valid()
		}
		if err != nil {
			http.Error(w, "bad release request: "+err.Error()+`: want {"addresses":[{"pool":ID,"address":ADDR}],"links":[NAME],"routes":[{"dst":PREFIX,"protocol":N}]}`, http.StatusBadRequest)
			return
		}
		out, err := src.Release(r.Context(), req)
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			http.Error(w, err.Error(), http.StatusConflict)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			writeJSON(w, out)
		}
	})
}

func (rel Release) valid() error {
	for _, a := range rel.Addresses {
		if a.Pool == "" || !a.Address.IsValid() {
			return fmt.Errorf("address %q of pool %q: both are needed", a.Address, a.Pool)
		}
	}
	for _, l := range rel.Links {
		if l == "" {
			return errors.New("an empty link name")
		}
	}
	for _, r := range rel.Routes {
		if !r.Dst.IsValid() || r.Protocol <= 0 || r.Protocol > 255 {
			return fmt.Errorf("route %q proto %d: both are needed", r.Dst, r.Protocol)
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Both is what a and b both release: what two checks a moment apart
// found alike (an address whose container was starting during the first
// is held by its endpoint in the second).
func Both(a, b Release) Release {
	type key = PoolAddress
	inB := map[key]bool{}
	for _, x := range b.Addresses {
		inB[x] = true
	}
	links := map[string]bool{}
	for _, l := range b.Links {
		links[l] = true
	}
	routes := map[RouteSpec]bool{}
	for _, r := range b.Routes {
		routes[r] = true
	}
	var out Release
	for _, r := range a.Routes {
		if routes[r] {
			out.Routes = append(out.Routes, r)
		}
	}
	for _, x := range a.Addresses {
		if inB[x] {
			out.Addresses = append(out.Addresses, x)
		}
	}
	for _, l := range a.Links {
		if links[l] {
			out.Links = append(out.Links, l)
		}
	}
	return out
}
