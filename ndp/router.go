package ndp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/ndp"
	"github.com/sirupsen/logrus"
	"golang.org/x/net/ipv6"

	"github.com/dualstack-net/dualstack/internal/netns"
)

// Routers learns the routers of links from their router advertisements:
// a macvlan network whose IPv6 subnet has no gateway of the user's gets
// the one its parent's LAN advertises. For each link some user (a
// network) follows, it solicits the routers once and then keeps every
// router that advertises on the link (its link-local address and the end
// of its router lifetime), refreshed by the advertisements it hears until
// the link's last user stops following it.
type Routers struct {
	log logrus.FieldLogger
	// Resolicit is the least time between two solicitations on a link
	// that has no router known.
	Resolicit time.Duration

	mu    sync.Mutex
	links map[string]*routerWatch
}

// routerWatch is what Routers keeps of one link.
type routerWatch struct {
	// users are the link's users, each with when it started following.
	users   map[string]time.Time
	conn    *ndp.Conn
	ifindex int
	// asked is when the last solicitation went out.
	asked time.Time
	// routers are the link's routers by link-local address, each with
	// the end of its router lifetime.
	routers map[netip.Addr]time.Time
	// heard is closed at the first advertisement of a router.
	heard chan struct{}
}

// DefaultResolicit is a Routers' Resolicit unless set otherwise.
const DefaultResolicit = 10 * time.Second

// NewRouters returns Routers following no link.
func NewRouters(log logrus.FieldLogger) *Routers {
	return &Routers{log: log, Resolicit: DefaultResolicit, links: map[string]*routerWatch{}}
}

// Follow has user follow link's routers: the first user of a link opens
// an NDP socket on it, in the calling thread's namespace, solicits the
// routers and listens for their advertisements in the background; a
// later one solicits them again if none is known.
func (r *Routers) Follow(link, user string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w, ok := r.links[link]; ok {
		if _, ok := w.users[user]; !ok {
			w.users[user] = time.Now()
		}
		if _, known := w.best(time.Now()); !known {
			r.solicit(link, w)
		}
		return nil
	}
	c, ifi, err := listenRA(link)
	if err != nil {
		return err
	}
	w := &routerWatch{users: map[string]time.Time{user: time.Now()}, conn: c, ifindex: ifi.Index,
		routers: map[netip.Addr]time.Time{}, heard: make(chan struct{})}
	r.links[link] = w
	r.solicit(link, w)
	netns.Go(func() { r.listen(link, w) })
	return nil
}

// Unfollow ends user's following of link; the last user's closes the
// link's socket.
func (r *Routers) Unfollow(link, user string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.links[link]
	if !ok {
		return
	}
	delete(w.users, user)
	if len(w.users) == 0 {
		delete(r.links, link)
		w.conn.Close()
	}
}

// Close stops following every link.
func (r *Routers) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for link, w := range r.links {
		delete(r.links, link)
		w.conn.Close()
	}
}

// Router returns, for user, the link-local address of the router of
// link whose router lifetime ends last. When none is known, it waits
// for a first advertisement until wait has passed since user started
// following link (the first container of a new network waits at most
// that long, later ones not at all), and then, with none known still,
// solicits the routers again if the last solicitation is older than
// Resolicit, for the next question.
func (r *Routers) Router(link, user string, wait time.Duration) (netip.Addr, bool) {
	r.mu.Lock()
	w, ok := r.links[link]
	if !ok {
		r.mu.Unlock()
		return netip.Addr{}, false
	}
	since, ok := w.users[user]
	if !ok {
		since = time.Now().Add(-wait)
	}
	heard, until := w.heard, time.Until(since.Add(wait))
	r.mu.Unlock()
	if until > 0 {
		t := time.NewTimer(until)
		select {
		case <-heard:
		case <-t.C:
		}
		t.Stop()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := w.best(time.Now())
	if !ok && r.links[link] == w && time.Since(w.asked) >= r.Resolicit {
		r.solicit(link, w)
	}
	return a, ok
}

// best is the router whose lifetime ends last, of those not expired at
// now.
func (w *routerWatch) best(now time.Time) (netip.Addr, bool) {
	var a netip.Addr
	var end time.Time
	for r, e := range w.routers {
		if e.After(now) && (e.After(end) || e.Equal(end) && r.Less(a)) {
			a, end = r, e
		}
	}
	return a, a.IsValid()
}

// solicit sends a router solicitation on link, with r.mu held. One that
// cannot go out is logged: the routers' own advertisements come anyway,
// later.
func (r *Routers) solicit(link string, w *routerWatch) {
	w.asked = time.Now()
	if err := w.conn.WriteTo(&ndp.RouterSolicitation{}, nil, netip.IPv6LinkLocalAllRouters()); err != nil {
		r.log.WithField("interface", link).WithError(err).Debug("solicit the routers (their periodic advertisements are waited for)")
	}
}

// listen takes in the advertisements of link's routers until its socket
// is closed.
func (r *Routers) listen(link string, w *routerWatch) {
	for {
		m, cm, src, err := w.conn.ReadFrom()
		if err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) {
				return // closed: the link's last user went
			}
			continue // a message that does not parse
		}
		ra, ok := m.(*ndp.RouterAdvertisement)
		// RFC 4861 6.1.2: from a link-local address, never forwarded.
		if !ok || cm == nil || cm.IfIndex != w.ifindex || cm.HopLimit != HopLimit || !src.IsLinkLocalUnicast() || own(link, src) {
			continue
		}
		src = src.WithZone("")
		r.mu.Lock()
		if ra.RouterLifetime == 0 {
			delete(w.routers, src) // a router that stops being one
		} else {
			if _, known := w.routers[src]; !known {
				r.log.WithField("interface", link).WithField("router", src).WithField("lifetime", ra.RouterLifetime).Debug("router learned from its advertisement")
			}
			w.routers[src] = time.Now().Add(ra.RouterLifetime)
			select {
			case <-w.heard:
			default:
				close(w.heard)
			}
		}
		r.mu.Unlock()
	}
}

// HopLimit is the hop limit of every NDP message: one that arrives with
// less was forwarded.
const HopLimit = ndp.HopLimit

// own reports whether a is an address of link's own (the host's
// advertisements, looped back).
func own(link string, a netip.Addr) bool {
	ifi, err := net.InterfaceByName(link)
	if err != nil {
		return false
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if b, ok := netip.AddrFromSlice(n.IP); ok && b.Unmap() == a.WithZone("") {
				return true
			}
		}
	}
	return false
}

// listenRA opens an NDP socket on link for router advertisements, from
// its link-local address, or from :: if it has none that is usable (a
// parent without IPv6 addresses of its own, or whose link-local address
// is still tentative), with the interface and hop limit of each message.
func listenRA(link string) (*ndp.Conn, *net.Interface, error) {
	c, ifi, err := open(link, []ndp.Addr{ndp.LinkLocal, ndp.Unspecified}, []ipv6.ICMPType{ipv6.ICMPTypeRouterAdvertisement}, " to learn its routers")
	if err != nil {
		return nil, nil, err
	}
	if err := c.SetControlMessage(ipv6.FlagInterface|ipv6.FlagHopLimit, true); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("read the interface of messages on %s: %w", link, err)
	}
	return c, ifi, nil
}
