package portmap

import (
	"net/http"
	"net/netip"
	"net/url"
	"testing"
)

// miniupnpdAnswer is miniupnpd 2.3.1's answer to an M-SEARCH for an IGD (seen in the lab).
const miniupnpdAnswer = "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n" +
	"USN: uuid:3d3c1b2a-0000-4000-8000-000000000001::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nEXT:\r\n" +
	"SERVER: Debian/6.18.44-fc-v669 UPnP/1.1 MiniUPnPd/2.3.1\r\nLOCATION: http://10.1.0.1:5000/rootDesc.xml\r\n" +
	"OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n01-NLS: 1796170093\r\nBOOTID.UPNP.ORG: 1796170093\r\nCONFIGID.UPNP.ORG: 1337\r\n\r\n"

var search = &http.Request{Method: "M-SEARCH", URL: &url.URL{Opaque: "*"}}

func TestSSDPAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		ok        bool
	}{
		{"miniupnpd", miniupnpdAnswer, true},
		{"another search target", "HTTP/1.1 200 OK\r\nST: upnp:rootdevice\r\nLOCATION: http://10.1.0.1:5000/x\r\n\r\n", false},
		{"no location", "HTTP/1.1 200 OK\r\nST: " + igdSearchTarget + "\r\n\r\n", false},
		{"an error", "HTTP/1.1 500 Oops\r\nST: " + igdSearchTarget + "\r\nLOCATION: http://10.1.0.1/\r\n\r\n", false},
		{"a notification", "NOTIFY * HTTP/1.1\r\nNT: " + igdSearchTarget + "\r\n\r\n", false},
		{"garbage", "\x00\x01garbage", false},
	} {
		if got := ssdpAnswer([]byte(tc.msg), search, igdSearchTarget); (got != nil) != tc.ok {
			t.Errorf("%s: ssdpAnswer = %v, want ok %v", tc.name, got, tc.ok)
		}
	}
	if loc, _ := ssdpAnswer([]byte(miniupnpdAnswer), search, igdSearchTarget).Location(); loc.String() != "http://10.1.0.1:5000/rootDesc.xml" {
		t.Errorf("location %v", loc)
	}
}

// FuzzSSDPAnswer: whatever answers an M-SEARCH, the client takes only a success for its search
// target with a location, and never panics.
func FuzzSSDPAnswer(f *testing.F) {
	f.Add([]byte(miniupnpdAnswer))
	f.Add([]byte("HTTP/1.1 200 OK\r\nST: " + igdSearchTarget + "\r\nLOCATION: ::\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp := ssdpAnswer(b, search, igdSearchTarget)
		if resp != nil && (resp.StatusCode != http.StatusOK || resp.Header.Get("ST") != igdSearchTarget || resp.Header.Get("Location") == "") {
			t.Fatalf("took %q", b)
		}
	})
}

func TestOnGateway(t *testing.T) {
	c := newUPnPClient(netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2"))
	for u, ok := range map[string]bool{
		"http://10.1.0.1:5000/rootDesc.xml": true,
		"http://10.1.0.1/ctl/IPConn":        true,
		"http://10.1.0.9:5000/rootDesc.xml": false, // another host of the LAN
		"http://169.254.169.254/latest/":    false,
		"http://router.lan:5000/x":          false,
		"https://10.1.0.1/x":                false,
		"file:///etc/passwd":                false,
	} {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.onGateway(parsed); (err == nil) != ok {
			t.Errorf("onGateway(%s) = %v, want ok %v", u, err, ok)
		}
	}
}
