package driver

import (
	"errors"
	"fmt"
	"slices"

	"github.com/dualstack-net/dualstack/driver/portmap"
	"github.com/dualstack-net/dualstack/firewall"
)

// Published ports.
//
// Docker passes a container's port bindings in the options of each
// endpoint it creates for it, and calls ProgramExternalConnectivity only
// for the endpoint that is the container's gateway (the highest
// gw_priority, Docker 28; the first with a gateway before), and
// RevokeExternalConnectivity when it stops being it. So dualstack, as
// Docker's bridge does, publishes at ProgramExternalConnectivity and
// revokes at RevokeExternalConnectivity, Leave or DeleteEndpoint: the
// published ports follow the container's gateway, whatever network it is
// on, in the families the endpoint is the gateway of (gwpriority.go).
// Join only records the container (the sandbox). A container with
// gateway endpoints on two dualstack networks publishes each family
// through one of them: an endpoint leaves the bindings alone when another
// of the container publishes them in its family already.
//
// Docker passes the bindings in CreateEndpoint's options only while no
// endpoint of the container reports port mappings (current engines leave
// them out of a dualstack endpoint created after a Docker bridge one);
// current engines also pass them in the container's options, which come
// with Join and ProgramExternalConnectivity: the latter's, when present,
// are the ones published.
//
// A binding without a host address is published on every family the
// endpoint has an address of; 0.0.0.0 or an IPv4 address only for IPv4,
// :: or an IPv6 address only for IPv6.

// families returns the families of ep that binding b is published on.
func families(b portmap.Binding, ep *endpoint) ([]firewall.Family, error) {
	has := map[firewall.Family]bool{firewall.IPv4: ep.IPv4.IsValid(), firewall.IPv6: ep.IPv6.IsValid()}
	if !b.HostIP.IsValid() {
		var out []firewall.Family
		for _, f := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
			if has[f] {
				out = append(out, f)
			}
		}
		return out, nil
	}
	f := firewall.IPv4
	if b.HostIP.Is6() {
		f = firewall.IPv6
	}
	if !has[f] {
		return nil, fmt.Errorf("cannot publish %s: the container has no %s address on this network: publish on a host address of the other family", b, f)
	}
	return []firewall.Family{f}, nil
}

// publish publishes ep's ports for the container whose sandbox is
// sandbox, in family only (both if 0): it picks and reserves the host
// ports, then adds the rules. On failure nothing stays reserved or
// programmed.
func (d *Driver) publish(n *network, ep *endpoint, sandbox string, only firewall.Family) (err error) {
	if !d.plane(n).publishes(n) || len(ep.Ports) == 0 {
		return nil
	}
	for _, other := range d.endpoints {
		if other.ID != ep.ID && other.Sandbox == sandbox && len(other.Published) > 0 &&
			(only == 0 || other.PublishedOnly == 0 || other.PublishedOnly == only) {
			return nil // published through the container's other network
		}
	}
	var (
		ports []firewall.Port
		held  []*portmap.Reservation
	)
	defer func() {
		if err != nil {
			for _, r := range held {
				_ = r.Close()
			}
		}
	}()
	for _, b := range ep.Ports {
		fams, err := families(b, ep)
		if err != nil {
			return err
		}
		if only != 0 {
			fams = slices.DeleteFunc(fams, func(f firewall.Family) bool { return f != only })
		}
		if len(fams) == 0 {
			continue
		}
		hostPort, rs, err := reserve(b, fams)
		if err != nil {
			return d.explainInUse(b, err)
		}
		held = append(held, rs...)
		for _, f := range fams {
			c := ep.IPv4.Addr()
			if f == firewall.IPv6 {
				c = ep.IPv6.Addr()
			}
			ports = append(ports, firewall.Port{Bridge: n.Options.Bridge, Proto: b.Proto, HostIP: b.HostIP, HostPort: hostPort, Container: c, ContainerPort: b.Port})
		}
	}
	ep.Published = ports
	if err := d.applyFirewall(nil); err != nil {
		ep.Published = nil // the restore changed nothing
		return err
	}
	d.reserved[ep.ID] = held
	return nil
}

// reserve picks the first host port of b's candidates that is free in all
// of fams and holds it.
func reserve(b portmap.Binding, fams []firewall.Family) (uint16, []*portmap.Reservation, error) {
	first, last := portmap.Candidates(b)
	var lastErr error
	for p := int(first); p <= int(last); p++ {
		var held []*portmap.Reservation
		var err error
		for _, f := range fams {
			var r *portmap.Reservation
			if r, err = portmap.Reserve(b.Proto, f == firewall.IPv6, b.HostIP, uint16(p)); err != nil {
				break
			}
			held = append(held, r)
		}
		if err == nil {
			return uint16(p), held, nil
		}
		for _, r := range held {
			_ = r.Close()
		}
		lastErr = err
		if !errors.Is(err, portmap.ErrInUse) {
			break
		}
	}
	return 0, nil, lastErr
}

// explainInUse turns a failed reservation into an error that says who
// holds the port and what to do.
func (d *Driver) explainInUse(b portmap.Binding, err error) error {
	if !errors.Is(err, portmap.ErrInUse) {
		return fmt.Errorf("cannot publish %s: reserve the host port: %w", b, err)
	}
	if b.HostPort == 0 {
		return fmt.Errorf("cannot publish %s: no free host port in the ephemeral port range", b)
	}
	for _, other := range d.endpoints {
		for _, p := range other.Published {
			if p.Proto == b.Proto && p.HostPort >= b.HostPort && (p.HostPort == b.HostPort || p.HostPort <= b.HostPortEnd) {
				return fmt.Errorf("cannot publish %s: host port %d/%s is already published by another container (endpoint %s on network %s): choose another host port",
					b, p.HostPort, p.Proto, short(other.ID), short(other.NetworkID))
			}
		}
	}
	return fmt.Errorf("cannot publish %s: the host port is in use on the host (%v), by another program or a container of another network driver: choose another host port", b, err)
}

// unpublish revokes ep's published ports and releases their host ports.
func (d *Driver) unpublish(ep *endpoint) error {
	had := len(ep.Published) > 0
	for _, r := range d.reserved[ep.ID] {
		_ = r.Close()
	}
	delete(d.reserved, ep.ID)
	ep.Published, ep.PublishedOnly = nil, 0
	if had {
		return d.applyFirewall(nil)
	}
	return nil
}

// reservePublished holds the host ports of ports recorded before a
// restart again.
func (d *Driver) reservePublished(ep *endpoint) error {
	var errs []error
	for _, p := range ep.Published {
		host := p.HostIP
		r, err := portmap.Reserve(p.Proto, p.Family() == firewall.IPv6, host, p.HostPort)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p, err))
			continue
		}
		d.reserved[ep.ID] = append(d.reserved[ep.ID], r)
	}
	return errors.Join(errs...)
}

// Close stops the container-side work under way and releases the host
// ports the driver holds, as the end of the process would; the rules and
// the state stay for the next start (which resumes unfinished joins).
func (d *Driver) Close() {
	d.joins.cancelAll()
	d.ra.routers.Close()
	d.leaseMu.Lock()
	if d.leaseChanged != nil {
		close(d.leaseChanged)
		d.leaseChanged = nil
	}
	d.leaseMu.Unlock()
	d.mu.Lock()
	for link := range d.onLinkStop {
		d.onLinkDown(link)
	}
	d.mu.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, rs := range d.reserved {
		for _, r := range rs {
			_ = r.Close()
		}
		delete(d.reserved, id)
	}
}
