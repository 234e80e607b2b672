package rendezvous

import (
	"sort"
	"time"

	"github.com/xp2p/xp2p/internal/wire"
	"github.com/xp2p/xp2p/relay"
)

// Snapshot is a read-only copy of the server's state at one moment, for the dashboard, its JSON
// API and metrics. Taking one copies; nothing in it points into the running server.
type Snapshot struct {
	Version  string
	Started  time.Time
	Taken    time.Time
	Clients  []ClientSnapshot
	Proxies  []ProxySnapshot
	Sessions []SessionSnapshot // paired P2P sessions, the oldest first
	Ended    []SessionSnapshot // recently ended P2P sessions, the latest first
	Counters Counters

	TimeToDirect HistogramSnapshot
	TimeToReady  HistogramSnapshot
}

// Counters are the server's event counters.
type Counters struct {
	AuthFailures int64
	P2PPaired    int64
	P2PActive    int64
	P2PDirect    int64
	P2PRelayed   int64
	P2PFailed    int64
}

// ClientSnapshot is one logged-in client.
type ClientSnapshot struct {
	ID        string    // the server's id for this session of the client
	RunID     string    // the client process's id (stays the same across reconnects)
	Hostname  string    // as the client reported it
	User      string    // frp's user prefix
	Version   string    // the client's version
	Addr      string    // the client's address as the server sees it
	Transport string    // "quic" or "tcp"
	NAT       string    // the client's own view of its NAT ("" if it did not measure it)
	Private   []string  // the client's reported LAN candidates
	Since     time.Time // login time
	Proxies   []string  // the names of its proxies and services (with user prefix), sorted
	Sessions  int       // P2P sessions it is a side of
}

// ProxySnapshot is one proxy or xp2p service the server has seen: online (some client has it
// registered) or offline (its traffic figures are kept for when it comes back).
type ProxySnapshot struct {
	relay.StatsSnapshot
	Online   bool
	Owners   []string // ids of the clients that registered it (several for a load-balancing group)
	Sessions int      // active P2P sessions of an xp2p service
	// P2P traffic of an xp2p service as its clients report it (both directions together).
	RelayBytes  int64
	DirectBytes int64
}

// SessionSnapshot is one P2P session: the server's pairing and both sides' latest reports.
type SessionSnapshot struct {
	ID       string // hex session id
	Service  string
	Created  time.Time
	Updated  time.Time // the latest report (zero: none yet)
	Ended    time.Time // zero while active
	Visitor  SessionSide
	Provider SessionSide
	// Path is "direct" when either side reports a direct path, "relay" when the sides report the
	// relay, "connecting" before any report.
	Path             string
	RTT              time.Duration
	TimeToReady      time.Duration // the visitor's request → first usable byte
	TimeToDirect     time.Duration // session creation → first direct path (0: none yet)
	RelayBytes       int64         // reported by the clients (the larger side's count)
	DirectBytes      int64
	ServerRelayBytes int64 // relayed bytes as the server itself counted them
}

// SessionSide is one side of a P2P session.
type SessionSide struct {
	ClientID string
	Hostname string
	User     string
	Public   string // its address as the server observes it
	NAT      string
	// Addr is the side's address on the session's path: as the other side sees it on a direct
	// path, else its public address.
	Addr     string
	Path     string // the path this side reports
	Reported bool   // whether this side has reported yet
}

// Snapshot copies the server's state.
func (s *Server) Snapshot() *Snapshot {
	snap := &Snapshot{Version: Version, Started: s.started, Taken: time.Now()}

	s.mu.Lock()
	clients := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		clients = append(clients, c)
	}
	sessionsOf := make(map[*client]int, len(clients))
	paired := make([]*p2pSession, 0, len(s.sessions))
	for _, ps := range s.sessions {
		paired = append(paired, ps)
	}
	for _, c := range clients {
		sessionsOf[c] = len(c.sessions)
	}
	// Owners come from the name registry, the one truth of who receives a name's users.
	online := s.onlineOwnersLocked()
	s.mu.Unlock()

	owners := map[string][]string{}
	proxiesOf := map[*client][]string{}
	for name, cs := range online {
		for _, c := range cs {
			owners[name] = append(owners[name], c.id)
			proxiesOf[c] = append(proxiesOf[c], name)
		}
	}
	serviceSessions := map[string]int{}
	for _, ps := range paired {
		serviceSessions[ps.service]++
	}
	for _, c := range clients {
		cs := ClientSnapshot{
			ID:        c.id,
			RunID:     c.login.RunID,
			Hostname:  c.login.Hostname,
			User:      c.login.User,
			Version:   c.login.Version,
			Addr:      c.remote.String(),
			Transport: c.sess.Transport(),
			NAT:       c.natName(),
			Private:   append([]string(nil), c.privateAddrs()...),
			Since:     c.since,
			Sessions:  sessionsOf[c],
		}
		if pub := c.publicAddr(); pub != "" {
			cs.Addr = pub // QUIC may have migrated to a new address since the login
		}
		cs.Proxies = proxiesOf[c]
		sort.Strings(cs.Proxies)
		snap.Clients = append(snap.Clients, cs)
	}
	sort.Slice(snap.Clients, func(i, j int) bool {
		a, b := snap.Clients[i], snap.Clients[j]
		return a.Since.Before(b.Since) || (a.Since.Equal(b.Since) && a.ID < b.ID)
	})

	p2p := s.Events.ServiceTraffic()
	for _, st := range s.Stats.Snapshot() {
		ps := ProxySnapshot{StatsSnapshot: st, Owners: owners[st.Name], Sessions: serviceSessions[st.Name]}
		ps.Online = len(ps.Owners) > 0
		sort.Strings(ps.Owners)
		if wire.IsP2PKind(st.Type) {
			t := p2p[st.Name]
			ps.RelayBytes, ps.DirectBytes = t.RelayBytes, t.DirectBytes
		}
		snap.Proxies = append(snap.Proxies, ps)
	}

	reports := s.Events.sessionReports()
	for _, ps := range paired {
		r, ok := reports[string(ps.id)]
		if !ok {
			// Paired a moment ago; the hook has not run yet.
			r = (&sessionReport{ps: ps}).snapshot()
		}
		snap.Sessions = append(snap.Sessions, r)
	}
	sort.Slice(snap.Sessions, func(i, j int) bool {
		a, b := snap.Sessions[i], snap.Sessions[j]
		return a.Created.Before(b.Created) || (a.Created.Equal(b.Created) && a.ID < b.ID)
	})
	snap.Ended = s.Events.Ended()

	e := s.Events
	snap.Counters = Counters{
		AuthFailures: e.AuthFailures.Load(),
		P2PPaired:    e.P2PPaired.Load(),
		P2PActive:    e.P2PActive.Load(),
		P2PDirect:    e.P2PDirect.Load(),
		P2PRelayed:   e.P2PRelayed.Load(),
		P2PFailed:    e.P2PFailed.Load(),
	}
	snap.TimeToDirect = e.TimeToDirect.Snapshot()
	snap.TimeToReady = e.TimeToReady.Snapshot()
	return snap
}
