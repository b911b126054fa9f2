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
	"net/netip"
	urlpath "path"
	"runtime/debug"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/docker/go-plugins-helpers/sdk"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/driver/netapi"
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

// errorResponse carries an error to Docker, which shows Err to the user:
// "dualstack: " and the error, whose text says what failed, on what, and
// what to do (the drivers' errors carry no prefix of their own).
type errorResponse struct {
	Err string
}

// Docker's plugin client (moby pkg/plugins, Engine 20.10 to this day)
// sends a call again when the connection broke before the answer came (the
// plugin died), for up to 30 seconds, but without its body: the first
// attempt spent the buffer it reads the body from. Such a retry cannot be
// told apart from a call of the same path with every field empty, and a
// request for a default pool (RequestPool with no subnet) is one.
//
// So a call that creates something and arrives without a body is refused
// with the reason, and nothing is done: the operation fails, Docker rolls
// it back (it releases the pools and addresses it holds, which also takes
// what the lost answer committed: see GiveBacks), and running the command again works. A call that
// removes something or only reads is answered as Docker sends it: with no
// field, it names nothing and succeeds, which is what the retry of a
// removal the first attempt did needs; a removal the first attempt did not
// finish is completed by the release that follows it.
var needsBody = map[string]bool{
	"/NetworkDriver.CreateNetwork":  true,
	"/NetworkDriver.CreateEndpoint": true,
	"/NetworkDriver.Join":           true,
	"/IpamDriver.RequestPool":       true,
	"/IpamDriver.RequestAddress":    true,
}

// Server routes plugin requests to the drivers.
type Server struct {
	mux *http.ServeMux
	log logrus.FieldLogger
	// crash, if set, is called after a request to path has been served
	// and before its answer goes out: the test seam that loses an answer
	// after the commit, as a crash does (see CrashAfter).
	crash func(path string)
	// obs, if set, hears of every request of Docker's (Observe).
	obs Observer
}

// Observer hears of every request of Docker's the server answers, for the
// metrics: call is its path without the "/" (NetworkDriver.Join), took
// how long it took, ok whether it succeeded (else it was refused).
type Observer interface {
	Request(call string, took time.Duration, ok bool)
}

// Observe has o hear of every request from now on; set it before Serve.
func (s *Server) Observe(o Observer) { s.obs = o }

// CrashAfter has fn called after each request has been served (its
// changes committed) and before its answer goes out. It is the test seam
// for an answer lost in a crash: fn ends the process for the paths it
// chooses, and Docker retries the call against the restarted plugin.
func (s *Server) CrashAfter(fn func(path string)) { s.crash = fn }

// GiveBacks is a network driver that hears of the pools and addresses
// Docker gives back through the IPAM API, before the address book lets
// them go. Docker releases the pools of a network it gave up on (its
// creation failed after the plugin committed it) and never deletes the
// network, and the addresses of an endpoint it never deletes: the network
// driver removes such networks and endpoints then. The mux, which serves
// both APIs, is where the one hears of the other.
type GiveBacks interface {
	PoolReleased(poolID string)
	AddressReleased(addr netip.Addr)
}

// JoinerFrom is a network driver that wants to know which process a Join
// comes from: its SandboxKey is a path in that process's (dockerd's) mount
// namespace.
type JoinerFrom interface {
	// JoinFrom is Join from the process pid, 0 where the socket does not
	// tell it (or the process is outside the plugin's pid namespace).
	// Its answer may name the interface in the container (DstName).
	JoinFrom(pid int, req *network.JoinRequest) (*netapi.JoinResponse, error)
}

// GwAllocChecker is a network driver that tells Docker, before it creates
// a network, for which families not to reserve a gateway address (Moby's
// /NetworkDriver.GwAllocCheck, asked with CreateNetwork's options when
// GetCapabilities answers GwAllocChecker; Engine 20.10 never asks).
type GwAllocChecker interface {
	GwAllocCheck(options map[string]interface{}) (skip4, skip6 bool, err error)
}

// capabilities is the answer to /NetworkDriver.GetCapabilities with what
// go-plugins-helpers' response lacks.
type capabilities struct {
	network.CapabilitiesResponse
	GwAllocChecker bool
}

// gwAllocCheck is /NetworkDriver.GwAllocCheck's request and answer. A
// request without a body (Docker resending it) names no option: the
// answer is that of a network with none, and a gateway reserved after all
// is given back at CreateNetwork.
type (
	gwAllocCheckRequest struct {
		Options map[string]interface{}
	}
	gwAllocCheckResponse struct {
		SkipIPv4, SkipIPv6 bool
	}
)

// handleCapabilities routes GetCapabilities, and GwAllocCheck for a
// driver that answers it.
func handleCapabilities(s *Server, nd network.Driver) {
	gc, ok := nd.(GwAllocChecker)
	if !ok {
		handle(s, "/NetworkDriver.GetCapabilities", noRequest(nd.GetCapabilities))
		return
	}
	handle(s, "/NetworkDriver.GetCapabilities", func(*struct{}) (*capabilities, error) {
		c, err := nd.GetCapabilities()
		if err != nil {
			return nil, err
		}
		return &capabilities{CapabilitiesResponse: *c, GwAllocChecker: true}, nil
	})
	handle(s, "/NetworkDriver.GwAllocCheck", func(req *gwAllocCheckRequest) (*gwAllocCheckResponse, error) {
		skip4, skip6, err := gc.GwAllocCheck(req.Options)
		if err != nil {
			return nil, err
		}
		return &gwAllocCheckResponse{SkipIPv4: skip4, SkipIPv6: skip6}, nil
	})
}

// New returns a server for the given drivers.
func New(nd network.Driver, id IPAM, log logrus.FieldLogger) *Server {
	s := &Server{mux: http.NewServeMux(), log: log}
	s.mux.HandleFunc("/", s.notFound)
	handle(s, "/Plugin.Activate", func(*struct{}) (*activation, error) {
		return &activation{Implements: []string{"NetworkDriver", "IpamDriver"}}, nil
	})

	handleCapabilities(s, nd)
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
	handle(s, "/IpamDriver.RequestAddress", id.RequestAddress)
	releasePool, releaseAddress := id.ReleasePool, id.ReleaseAddress
	if gb, ok := nd.(GiveBacks); ok {
		releasePool, releaseAddress = givenBack(gb, id)
	}
	handle(s, "/IpamDriver.ReleasePool", noReply(releasePool))
	handle(s, "/IpamDriver.ReleaseAddress", noReply(releaseAddress))
	return s
}

// givenBack returns the IPAM's release calls, with gb told of each first.
func givenBack(gb GiveBacks, id IPAM) (func(*ipam.ReleasePoolRequest) error, func(*ipam.ReleaseAddressRequest) error) {
	pool := func(req *ipam.ReleasePoolRequest) error {
		gb.PoolReleased(req.PoolID)
		return id.ReleasePool(req)
	}
	addr := func(req *ipam.ReleaseAddressRequest) error {
		// A malformed address is the IPAM's to refuse.
		if a, err := addrbook.ParseAddr(req.Address); err == nil {
			gb.AddressReleased(a)
		}
		return id.ReleaseAddress(req)
	}
	return pool, addr
}

// ServeHTTP makes the server an http.Handler (for tests and custom
// listeners). A path that is not clean ("//x", "/a/../b") is unknown, as
// every path Docker sends is clean: answered 404 in JSON like any unknown
// call, not redirected by the mux.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != urlpath.Clean(r.URL.Path) {
		s.notFound(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Serve answers requests on l until ctx is done (the plugin's SIGTERM),
// then takes no new connection and returns once every request under way
// has finished and answered, or grace has passed. Docker retries a call
// whose answer it did not get, so a request cut short costs a retry; one
// that finishes never leaves a commit without its answer.
func (s *Server) Serve(ctx context.Context, srv *http.Server, l net.Listener, grace time.Duration) error {
	srv.Handler = s
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, peerKey{}, peerPID(c))
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: finishing the requests under way")
	stopping, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := srv.Shutdown(stopping)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("stop serving: %w", err)
	}
	return nil
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
	reply(w, http.StatusNotFound, errorResponse{Err: fmt.Sprintf("dualstack: does not implement %s", r.URL.Path)})
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
	call := path[1:]
	s.mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		log := s.log.WithField("path", path)
		ok := false
		defer func() {
			if s.obs != nil {
				s.obs.Request(call, time.Since(start), ok)
			}
			if v := recover(); v != nil {
				log.WithField("stack", string(debug.Stack())).Errorf("panic: %v", v)
				reply(w, http.StatusInternalServerError, errorResponse{Err: fmt.Sprintf("dualstack: internal error serving %s: %v (see the plugin's log)", path, v)})
			}
		}()
		if r.Method != http.MethodPost {
			log.Infof("refused: method %s", r.Method)
			reply(w, http.StatusMethodNotAllowed, errorResponse{Err: fmt.Sprintf("dualstack: %s takes POST, not %s", path, r.Method)})
			return
		}
		req := new(Req)
		empty, err := decode(r.Body, req)
		if err != nil {
			log.WithField("took", time.Since(start)).Infof("bad request: %v", err)
			reply(w, http.StatusBadRequest, errorResponse{Err: fmt.Sprintf("dualstack: malformed request body for %s: %v", path, err)})
			return
		}
		if empty && needsBody[path] {
			log.WithField("took", time.Since(start)).Warn("refused: no request body (Docker resending a call whose answer a plugin restart lost)")
			reply(w, http.StatusBadRequest, errorResponse{Err: fmt.Sprintf("dualstack: %s arrived without its request, as Docker sends a call again "+
				"when the plugin restarted before answering it; dualstack cannot tell what it asks and did nothing: run the command again", path)})
			return
		}
		log.WithField("request", debugJSON{req}).Debug("request")
		resp, err := fn(r, req)
		log = log.WithField("took", time.Since(start))
		if err != nil {
			log.WithError(err).Info("refused")
			reply(w, http.StatusInternalServerError, errorResponse{Err: "dualstack: " + err.Error()})
			return
		}
		log.WithField("response", debugJSON{resp}).Debug("response")
		log.Info("ok")
		ok = true
		if s.crash != nil {
			s.crash(path)
		}
		reply(w, http.StatusOK, resp)
	})
}

// decode reads one JSON value into req. An empty body (what Docker sends
// for calls without arguments, and when it resends a call: see needsBody)
// leaves req at its zero value and reports empty; so does `null`.
func decode(body io.Reader, req any) (empty bool, err error) {
	data, err := io.ReadAll(io.LimitReader(body, maxBody+1))
	if err != nil {
		return false, fmt.Errorf("read body: %w", err)
	}
	if len(data) > maxBody {
		return false, fmt.Errorf("body larger than %d bytes", maxBody)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		return true, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(req); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return false, errors.New("truncated JSON")
		}
		return false, err
	}
	if dec.More() {
		return false, errors.New("trailing data after the JSON value")
	}
	return false, nil
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
