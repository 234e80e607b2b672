package portmap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
	"github.com/huin/goupnp/ssdp"
)

// UPnP-IGD, through github.com/huin/goupnp: SSDP finds the router's Internet Gateway Device,
// its description names the WAN connection service, and the service's SOAP actions map ports.
// What is this package's own: the search ends at the gateway's first answer (goupnp's HTTPU
// client waits out the whole search window), and every address the router hands out (the
// description's, the service's) must be the gateway's own, with bounded answers: whoever
// answers an M-SEARCH on a LAN gets no requests sent elsewhere, nor a client stuck reading.

const (
	// igdSearchTarget is what the M-SEARCH asks for: IGD version 2 devices answer it too.
	igdSearchTarget = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	ssdpGroup       = "239.255.255.250:1900"
	ssdpPort        = 1900
	// maxUPnPBody bounds a description or a SOAP answer (a router's are a few KiB).
	maxUPnPBody = 256 << 10
	// mappingDescription names the mapping in the router's table.
	mappingDescription = "xp2p"

	upnpConflict       = 718 // ConflictInMappingEntry: the external port is another host's
	upnpPermanentLease = 725 // OnlyPermanentLeasesSupported
)

// igdConnection is what the WAN connection services offer that a mapping needs.
type igdConnection interface {
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string,
		internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
}

var (
	_ igdConnection = (*internetgateway2.WANIPConnection2)(nil)
	_ igdConnection = (*internetgateway2.WANIPConnection1)(nil)
	_ igdConnection = (*internetgateway2.WANPPPConnection1)(nil)
)

// upnpClient maps a port through the gateway's IGD.
type upnpClient struct {
	gateway, local netip.Addr
	http           *http.Client

	conn      igdConnection
	anyPort   *internetgateway2.WANIPConnection2 // IGD v2: AddAnyPortMapping picks a free port
	permanent bool                               // the router grants permanent leases only
}

func newUPnPClient(gateway, local netip.Addr) *upnpClient {
	return &upnpClient{gateway: gateway, local: local, http: &http.Client{
		Transport: limitedBody{&http.Transport{
			Proxy:                  nil, // the router is on the LAN: never through a proxy from the environment
			DialContext:            (&net.Dialer{}).DialContext,
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 16 << 10,
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("the router redirected") },
	}}
}

func (c *upnpClient) protocol() Protocol { return UPnP }

// probe finds the IGD and a WAN connection service of it that tells its external address.
func (c *upnpClient) probe(ctx context.Context) error {
	responses, err := ssdp.RawSearch(ctx, ssdpGateway{c.gateway}, igdSearchTarget, 2)
	if err != nil {
		return fmt.Errorf("SSDP search: %w", err)
	}
	if len(responses) == 0 {
		return fmt.Errorf("no SSDP answer from %s", c.gateway)
	}
	loc, err := responses[0].Location()
	if err != nil {
		return fmt.Errorf("SSDP answer: %w", err)
	}
	root, err := c.describe(ctx, loc)
	if err != nil {
		return err
	}
	conns, err := c.connections(root, loc)
	if err != nil {
		return err
	}
	var errs []error
	for _, conn := range conns {
		if _, err := c.externalAddr(ctx, conn); err != nil {
			errs = append(errs, err)
			continue
		}
		c.conn = conn
		c.anyPort, _ = conn.(*internetgateway2.WANIPConnection2)
		return nil
	}
	return errors.Join(errs...)
}

// describe reads the root device description at loc, which must be on the gateway.
func (c *upnpClient) describe(ctx context.Context, loc *url.URL) (*goupnp.RootDevice, error) {
	if err := c.onGateway(loc); err != nil {
		return nil, fmt.Errorf("device description: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device description: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("device description %s: HTTP %s", loc, resp.Status)
	}
	root := new(goupnp.RootDevice)
	dec := xml.NewDecoder(resp.Body)
	dec.DefaultSpace = goupnp.DeviceXMLNamespace
	// Descriptions are ASCII in practice, whatever charset the declaration names.
	dec.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	if err := dec.Decode(root); err != nil {
		return nil, fmt.Errorf("device description %s: %w", loc, err)
	}
	base := loc
	if root.URLBaseStr != "" {
		if base, err = url.Parse(root.URLBaseStr); err != nil {
			return nil, fmt.Errorf("device description %s: URLBase: %w", loc, err)
		}
	}
	root.SetURLBase(base)
	return root, nil
}

// connections lists the device's WAN connection services whose control URL is on the gateway,
// IGD v2's first.
func (c *upnpClient) connections(root *goupnp.RootDevice, loc *url.URL) ([]igdConnection, error) {
	var conns []igdConnection
	var errs []error
	keep := func(sc *goupnp.ServiceClient, conn igdConnection) {
		if err := c.onGateway(&sc.SOAPClient.EndpointURL); err != nil {
			errs = append(errs, fmt.Errorf("%s control: %w", sc.Service.ServiceType, err))
			return
		}
		sc.SOAPClient.HTTPClient = *c.http
		conns = append(conns, conn)
	}
	ip2, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc)
	for _, s := range ip2 {
		keep(&s.ServiceClient, s)
	}
	ip1, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc)
	for _, s := range ip1 {
		keep(&s.ServiceClient, s)
	}
	ppp, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc)
	for _, s := range ppp {
		keep(&s.ServiceClient, s)
	}
	if len(conns) == 0 {
		errs = append(errs, fmt.Errorf("the device at %s has no WAN connection service", loc))
		return nil, errors.Join(errs...)
	}
	return conns, nil
}

// onGateway checks that a URL the router handed out leads to the router.
func (c *upnpClient) onGateway(u *url.URL) error {
	if u.Scheme != "http" {
		return fmt.Errorf("%s is not http", u.Redacted())
	}
	if a, err := netip.ParseAddr(u.Hostname()); err != nil || a.Unmap() != c.gateway {
		return fmt.Errorf("%s is not on the gateway %s", u.Redacted(), c.gateway)
	}
	return nil
}

func (c *upnpClient) externalAddr(ctx context.Context, conn igdConnection) (netip.Addr, error) {
	s, err := conn.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("external address: %w", err)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("external address %q: %w", s, err)
	}
	return a.Unmap(), nil
}

func (c *upnpClient) add(ctx context.Context, port uint16, lifetime time.Duration, prev Mapping) (Mapping, error) {
	if c.conn == nil {
		if err := c.probe(ctx); err != nil {
			return Mapping{}, err
		}
	}
	ext, err := c.externalAddr(ctx, c.conn) // asked again each time: the WAN address may change
	if err != nil {
		return Mapping{}, err
	}
	extPort := port
	if prev.External.IsValid() {
		extPort = prev.External.Port()
	}
	lease := uint32(lifetime / time.Second)
	if c.permanent {
		lease = 0
	}
	addMapping := func(extPort uint16, lease uint32) error {
		return c.conn.AddPortMappingCtx(ctx, "", extPort, "UDP", port, c.local.String(), true, mappingDescription, lease)
	}
	err = addMapping(extPort, lease)
	if upnpCode(err) == upnpPermanentLease {
		// It stays until removed: removed when the client stops, and renewed all the same.
		c.permanent, lease = true, 0
		err = addMapping(extPort, lease)
	}
	if upnpCode(err) == upnpConflict && c.anyPort != nil {
		extPort, err = c.anyPort.AddAnyPortMappingCtx(ctx, "", extPort, "UDP", port, c.local.String(), true, mappingDescription, lease)
	}
	if err != nil {
		return Mapping{}, fmt.Errorf("AddPortMapping of udp port %d: %w", port, err)
	}
	return Mapping{Protocol: UPnP, External: netip.AddrPortFrom(ext, extPort), Internal: netip.AddrPortFrom(c.local, port),
		Lifetime: lifetime, Gateway: c.gateway}, nil
}

func (c *upnpClient) remove(ctx context.Context, m Mapping) error {
	if c.conn == nil {
		return nil
	}
	return c.conn.DeletePortMappingCtx(ctx, "", m.External.Port(), "UDP")
}

// upnpCode is the UPnP error code of a SOAP fault (0 for none).
func upnpCode(err error) int {
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		return fault.Detail.UPnPError.Errorcode
	}
	return 0
}

// limitedBody bounds what a router's answer may make the client read.
type limitedBody struct{ http.RoundTripper }

func (l limitedBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.RoundTripper.RoundTrip(req)
	if err == nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxUPnPBody), resp.Body}
	}
	return resp, err
}

// ssdpGateway sends goupnp's M-SEARCH to the SSDP group and to the gateway itself (routers
// answer one or the other), and returns the gateway's first answer to it (goupnp's HTTPU
// client waits out the search's whole window for every device of the LAN; only the gateway's
// matters here). It implements ssdp.HTTPUClientCtx.
type ssdpGateway struct{ gateway netip.Addr }

var _ ssdp.HTTPUClientCtx = ssdpGateway{}

func (s ssdpGateway) DoWithContext(req *http.Request, numSends int) ([]*http.Response, error) {
	ctx := req.Context()
	conn, err := net.ListenUDP("udp4", nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetReadDeadline(dl)
	}
	// As goupnp's HTTPU client writes it: the header names as given (SSDP's are case-sensitive).
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "%s %s HTTP/1.1\r\n", req.Method, req.URL.RequestURI())
	req.Header.Write(&msg)
	msg.WriteString("\r\n")
	group, err := net.ResolveUDPAddr("udp4", ssdpGroup)
	if err != nil {
		return nil, err
	}
	direct := net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.gateway, ssdpPort))
	for range max(numSends, 1) {
		for _, to := range []*net.UDPAddr{direct, group} {
			if _, err := conn.WriteToUDP(msg.Bytes(), to); err != nil && to == direct {
				return nil, err
			}
		}
	}
	// goupnp sets the header under its literal name, which Get would not find.
	var want string
	if st := req.Header["ST"]; len(st) == 1 {
		want = st[0]
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, nil // no answer in time: an empty search
		}
		if err != nil {
			return nil, err
		}
		if from.Addr().Unmap() != s.gateway {
			continue
		}
		if resp := ssdpAnswer(buf[:n], req, want); resp != nil {
			return []*http.Response{resp}, nil
		}
	}
}

// ssdpAnswer decodes a datagram that answers the M-SEARCH req for the search target st (nil if
// it is not one).
func ssdpAnswer(b []byte, req *http.Request, st string) *http.Response {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), req)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("ST") != st || resp.Header.Get("LOCATION") == "" {
		return nil
	}
	return resp
}
