// Package plugin is dualstack's socket server: one http.ServeMux on one unix
// socket that serves Docker's plugin handshake, the network driver API
// (docker.networkdriver/1.0) and the IPAM API (docker.ipamdriver/1.0).
//
// go-plugins-helpers gives each API its own mux, so it cannot serve both on
// one socket; this package reuses its request and response types with one
// mux of its own.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/ipamdriver"
)

// maxBody bounds a request body. Docker's largest requests (CreateNetwork
// with many options and pools) are a few kilobytes.
const maxBody = 1 << 20

// IPAM is the IPAM driver the server exposes.
type IPAM interface {
	GetCapabilities() (*ipamdriver.Capabilities, error)
	GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error)
	RequestPool(*ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error)
	ReleasePool(*ipam.ReleasePoolRequest) error
	RequestAddress(*ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error)
	ReleaseAddress(*ipam.ReleaseAddressRequest) error
}

// activation is the answer to /Plugin.Activate, which only legacy plugins
// (a socket in /run/docker/plugins) receive; managed plugins declare the
// same in config.json.
type activation struct {
	Implements []string
}

// errorResponse carries an error to Docker, which shows Err to the user.
type errorResponse struct {
	Err string
}

// Server routes plugin requests to the drivers.
type Server struct {
	mux *http.ServeMux
	log logrus.FieldLogger
}

// JoinerFrom is a network driver that wants to know which process a Join
// comes from: its SandboxKey is a path in that process's (dockerd's) mount
// namespace.
type JoinerFrom interface {
	// JoinFrom is Join from the process pid, 0 where the socket does not
	// tell it (or the process is outside the plugin's pid namespace).
	JoinFrom(pid int, req *network.JoinRequest) (*network.JoinResponse, error)
}

// New returns a server for the given drivers.
func New(nd network.Driver, id IPAM, log logrus.FieldLogger) *Server {
	s := &Server{mux: http.NewServeMux(), log: log}
	s.mux.HandleFunc("/", s.notFound)
	handle(s, "/Plugin.Activate", func(*struct{}) (*activation, error) {
		return &activation{Implements: []string{"NetworkDriver", "IpamDriver"}}, nil
	})

	handle(s, "/NetworkDriver.GetCapabilities", noRequest(nd.GetCapabilities))
	handle(s, "/NetworkDriver.CreateNetwork", noReply(nd.CreateNetwork))
	handle(s, "/NetworkDriver.AllocateNetwork", nd.AllocateNetwork)
	handle(s, "/NetworkDriver.DeleteNetwork", noReply(nd.DeleteNetwork))
	handle(s, "/NetworkDriver.FreeNetwork", noReply(nd.FreeNetwork))
	handle(s, "/NetworkDriver.CreateEndpoint", nd.CreateEndpoint)
	handle(s, "/NetworkDriver.DeleteEndpoint", noReply(nd.DeleteEndpoint))
	handle(s, "/NetworkDriver.EndpointOperInfo", nd.EndpointInfo)
	if jf, ok := nd.(JoinerFrom); ok {
		handleFrom(s, "/NetworkDriver.Join", jf.JoinFrom)
	} else {
		handle(s, "/NetworkDriver.Join", nd.Join)
	}
	handle(s, "/NetworkDriver.Leave", noReply(nd.Leave))
	handle(s, "/NetworkDriver.DiscoverNew", noReply(nd.DiscoverNew))
	handle(s, "/NetworkDriver.DiscoverDelete", noReply(nd.DiscoverDelete))
	handle(s, "/NetworkDriver.ProgramExternalConnectivity", noReply(nd.ProgramExternalConnectivity))
	handle(s, "/NetworkDriver.RevokeExternalConnectivity", noReply(nd.RevokeExternalConnectivity))

	handle(s, "/IpamDriver.GetCapabilities", noRequest(id.GetCapabilities))
	handle(s, "/IpamDriver.GetDefaultAddressSpaces", noRequest(id.GetDefaultAddressSpaces))
	handle(s, "/IpamDriver.RequestPool", id.RequestPool)
	handle(s, "/IpamDriver.ReleasePool", noReply(id.ReleasePool))
	handle(s, "/IpamDriver.RequestAddress", id.RequestAddress)
	handle(s, "/IpamDriver.ReleaseAddress", noReply(id.ReleaseAddress))
	return s
}

// ServeHTTP makes the server an http.Handler (for tests and custom listeners).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers requests on l until l is closed or srv is shut down.
func (s *Server) Serve(srv *http.Server, l net.Listener) error {
	srv.Handler = s.mux
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, peerKey{}, peerPID(c))
	}
	err := srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// peerKey holds, in a connection's context, the peer's process ID.
type peerKey struct{}

// peerPID is the process ID of the process at the other end of a unix
// socket connection (SO_PEERCRED), 0 if not known: another kind of
// connection, or a process outside the plugin's pid namespace.
func peerPID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	_ = raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.log.WithField("path", r.URL.Path).Info("unknown plugin call: 404")
	reply(w, http.StatusNotFound, errorResponse{Err: fmt.Sprintf("dualstack does not implement %s", r.URL.Path)})
}

// handle registers fn at path: it decodes the JSON body into a Req, calls fn,
// and encodes the reply or the error. One info line per request; the bodies
// at debug.
func handle[Req, Resp any](s *Server, path string, fn func(*Req) (Resp, error)) {
	serve(s, path, func(_ *http.Request, req *Req) (Resp, error) { return fn(req) })
}

// handleFrom is handle for a call that wants the process ID of the process
// the request comes from (see peerPID).
func handleFrom[Req, Resp any](s *Server, path string, fn func(int, *Req) (Resp, error)) {
	serve(s, path, func(r *http.Request, req *Req) (Resp, error) {
		pid, _ := r.Context().Value(peerKey{}).(int)
		return fn(pid, req)
	})
}

func serve[Req, Resp any](s *Server, path string, fn func(*http.Request, *Req) (Resp, error)) {
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		log := s.log.WithField("path", path)
		defer func() {
			if v := recover(); v != nil {
				log.WithField("stack", string(debug.Stack())).Errorf("panic: %v", v)
				reply(w, http.StatusInternalServerError, errorResponse{Err: fmt.Sprintf("dualstack: internal error serving %s: %v (see the plugin's log)", path, v)})
			}
		}()
		if r.Method != http.MethodPost {
			log.Infof("refused: method %s", r.Method)
			reply(w, http.StatusMethodNotAllowed, errorResponse{Err: fmt.Sprintf("%s takes POST, not %s", path, r.Method)})
			return
		}
		req := new(Req)
		if err := decode(r.Body, req); err != nil {
			log.WithField("took", time.Since(start)).Infof("bad request: %v", err)
			reply(w, http.StatusBadRequest, errorResponse{Err: fmt.Sprintf("malformed request body for %s: %v", path, err)})
			return
		}
		log.WithField("request", debugJSON{req}).Debug("request")
		resp, err := fn(r, req)
		log = log.WithField("took", time.Since(start))
		if err != nil {
			log.Infof("error: %v", err)
			reply(w, http.StatusInternalServerError, errorResponse{Err: err.Error()})
			return
		}
		log.WithField("response", debugJSON{resp}).Debug("response")
		log.Info("ok")
		reply(w, http.StatusOK, resp)
	})
}

// decode reads one JSON value into req. An empty body or `null` (what Docker
// sends for calls without arguments) leaves req at its zero value.
func decode(body io.Reader, req any) error {
	data, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(data) > maxBody {
		return fmt.Errorf("body larger than %d bytes", maxBody)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(req); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return errors.New("truncated JSON")
		}
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// debugJSON defers marshalling to when the debug line is printed.
type debugJSON struct{ v any }

func (d debugJSON) String() string {
	b, err := json.Marshal(d.v)
	if err != nil {
		return fmt.Sprintf("%+v", d.v)
	}
	return string(b)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", sdk.DefaultContentTypeV1_1)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// noRequest adapts a call that takes no arguments.
func noRequest[Resp any](fn func() (Resp, error)) func(*struct{}) (Resp, error) {
	return func(*struct{}) (Resp, error) { return fn() }
}

// noReply adapts a call that answers only success or an error; success is
// the empty object.
func noReply[Req any](fn func(*Req) error) func(*Req) (struct{}, error) {
	return func(r *Req) (struct{}, error) { return struct{}{}, fn(r) }
}
