// Package scripts holds what deploys xp2p: systemd units (systemd/), config skeletons
// (config/) and install.sh. Its Go test installs into a temporary root and checks the result
// with the xp2p binary and systemd-analyze.
package scripts
