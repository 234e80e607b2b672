#!/bin/sh
# Installs xp2p: the binary, config skeletons and the systemd units (xp2p-server,
# xp2p-client@NAME). Idempotent: running it again gives the same files. --uninstall removes
# what it installed and leaves your configs (/etc/xp2p/*.toml) alone.
#
#   scripts/install.sh [--prefix /usr/local] [--root DIR] [--binary PATH] [--no-reload]
#   scripts/install.sh --uninstall [--prefix ...] [--root DIR]
set -eu

prefix=/usr/local
root=
binary=
uninstall=0
reload=1

usage() {
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
	cat <<USAGE

Options:
  --prefix DIR    where bin/xp2p goes (default /usr/local)
  --root DIR      install under DIR instead of / (packaging, tests); units and configs too
  --binary PATH   install this xp2p binary instead of building one with 'go build'
  --uninstall     remove what install put in place (your /etc/xp2p/*.toml stay)
  --no-reload     do not run 'systemctl daemon-reload'
  -h, --help      this text
USAGE
}

while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
	--prefix=*) prefix=${1#*=}; shift ;;
	--root|--destdir) root=${2:?$1 needs a directory}; shift 2 ;;
	--root=*|--destdir=*) root=${1#*=}; shift ;;
	--binary) binary=${2:?--binary needs a path}; shift 2 ;;
	--binary=*) binary=${1#*=}; shift ;;
	--uninstall) uninstall=1; shift ;;
	--no-reload|--no-systemd-reload) reload=0; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done

case "$prefix" in
/*) ;;
*) echo "install.sh: --prefix must be an absolute path, not $prefix" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
bindir=$prefix/bin
unitdir=/etc/systemd/system
confdir=/etc/xp2p
units="xp2p-server.service xp2p-client@.service"
skeletons="server.toml.example client.toml.example"

daemon_reload() {
	# Only for a real install on a machine where systemd runs.
	if [ "$reload" = 1 ] && [ -z "$root" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
		systemctl daemon-reload
	fi
}

if [ "$uninstall" = 1 ]; then
	for u in $units; do
		rm -f "$root$unitdir/$u"
	done
	for s in $skeletons; do
		rm -f "$root$confdir/$s"
	done
	rm -f "$root$bindir/xp2p"
	# The config directory goes only if nothing of yours is left in it.
	rmdir "$root$confdir" 2>/dev/null || true
	daemon_reload
	echo "xp2p uninstalled from ${root:-/} (configs in $confdir kept)"
	exit 0
fi

if [ -z "$binary" ]; then
	command -v go >/dev/null || { echo "install.sh: no --binary given and no Go toolchain to build one" >&2; exit 1; }
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$here/.." && CGO_ENABLED=0 go build -trimpath -o "$tmp/xp2p" ./cmd/xp2p)
	binary=$tmp/xp2p
fi
[ -x "$binary" ] || { echo "install.sh: $binary is not an executable" >&2; exit 1; }

install -d -m 0755 "$root$bindir" "$root$unitdir"
install -d -m 0750 "$root$confdir"
install -m 0755 "$binary" "$root$bindir/xp2p"
for u in $units; do
	# The units name the binary where this install put it.
	sed "s|@BINDIR@|$bindir|g" "$here/systemd/$u" > "$root$unitdir/$u.tmp"
	chmod 0644 "$root$unitdir/$u.tmp"
	mv -f "$root$unitdir/$u.tmp" "$root$unitdir/$u"
done
for s in $skeletons; do
	install -m 0640 "$here/config/$s" "$root$confdir/$s"
done
daemon_reload

cat <<DONE
xp2p installed in ${root:-/}: $bindir/xp2p, units in $unitdir, config skeletons in $confdir.
Next:
  server: cp $confdir/server.toml.example $confdir/server.toml, edit it, then
          systemctl enable --now xp2p-server
  client: cp $confdir/client.toml.example $confdir/NAME.toml, edit it, then
          systemctl enable --now xp2p-client@NAME
DONE
