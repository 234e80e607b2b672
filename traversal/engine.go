package traversal

import (
	"net/netip"
	"sync"
)

// Engine is the traversal of one client: it hands the probes its socket receives to their
// sessions, and holds what the sessions share (the client, the slots of birthday punching).
type Engine struct {
	client Client
	// birthdaySlots bounds the sessions that hold birthday punching's extra sockets at once.
	birthdaySlots chan struct{}

	mu       sync.Mutex
	sessions map[string]*Session // by session id in hex
}

// NewEngine makes the engine of a client.
func NewEngine(c Client) *Engine {
	return &Engine{client: c, birthdaySlots: make(chan struct{}, maxBirthdays), sessions: map[string]*Session{}}
}

// HandleSTUN takes a STUN message the client's socket received from from: a probe of one of
// the sessions, or an answer to one. Anything else is ignored. An invalid from stands for the
// relay (HandleRelayed).
func (e *Engine) HandleSTUN(data []byte, from netip.AddrPort) {
	msg, id, role, ok := parseProbe(data)
	if !ok {
		return
	}
	e.mu.Lock()
	s := e.sessions[id]
	e.mu.Unlock()
	if s == nil || role == s.cfg.Role {
		return // unknown session, or our own probe reflected back at us
	}
	if from.IsValid() {
		from = unmap(from)
	}
	s.handle(msg, from)
}

// HandleRelayed takes a STUN message that came through the server's relay (the path MTU
// probes of the relay, and their answers).
func (e *Engine) HandleRelayed(data []byte) { e.HandleSTUN(data, netip.AddrPort{}) }

func (e *Engine) add(s *Session) {
	e.mu.Lock()
	e.sessions[s.idHex] = s
	e.mu.Unlock()
}

func (e *Engine) remove(s *Session) {
	e.mu.Lock()
	if e.sessions[s.idHex] == s {
		delete(e.sessions, s.idHex)
	}
	e.mu.Unlock()
}

// takeBirthdaySlot reserves one of the client's birthday slots; false when all are taken.
func (e *Engine) takeBirthdaySlot() (release func(), ok bool) {
	select {
	case e.birthdaySlots <- struct{}{}:
	default:
		return nil, false
	}
	var once sync.Once
	return func() { once.Do(func() { <-e.birthdaySlots }) }, true
}
