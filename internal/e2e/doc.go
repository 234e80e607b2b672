// Package e2e holds xp2p's in-process integration tests and benchmarks: a real server
// (rendezvous.New) and real clients (peer.New) on loopback sockets, configured from TOML text
// through package config, with local services, users and misbehaving peers played by the tests.
// The package has no non-test code besides this comment.
package e2e
