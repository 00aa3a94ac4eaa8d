# Shared helpers for Doppel's scripts (sourced, not run).
# Everything downloaded or built goes under $DOPPEL_CACHE, outside the checkout, keyed by version,
# so a fresh clone (CI) reuses it; each cached item is checked (version, checksum) before use.

DOPPEL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOPPEL_CACHE="${DOPPEL_CACHE:-$HOME/.cache/doppel}"
export DOPPEL_ROOT DOPPEL_CACHE

say()  { printf '\033[1;34m[doppel]\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m[doppel] warning:\033[0m %s\n' "$*" >&2; }
die()  { printf '\033[1;31m[doppel] error:\033[0m %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "$1 needs root (apt-get, network namespaces, tap devices)"
}

# The guest image directory scripts/build-guest produced for the current sources.
guest_dir() {
  readlink -f "$DOPPEL_CACHE/guest/current" 2>/dev/null || true
}

# The real guest disk (Debian 12 with PostgreSQL) scripts/build-real-guest produced for the current sources.
real_guest_image() {
  local d; d=$(readlink -f "$DOPPEL_CACHE/real-guest/current" 2>/dev/null) || true
  [ -n "$d" ] && [ -f "$d/disk.qcow2" ] && echo "$d/disk.qcow2" || true
}

# The QEMU version string of the stock binary, e.g. 10.0.2.
qemu_version() {
  qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9.]*\).*/\1/p'
}

doppel_jar() {
  echo "$DOPPEL_ROOT/doppel-cli/target/doppel.jar"
}

# The Debian mirror this machine already uses (deb822 .sources or classic sources.list), so that
# no host name is ever written into the repository.
debian_mirror() {
  local uri
  uri=$(grep -hs -A3 -E '^Types:.*deb' /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n 's/^URIs:[[:space:]]*//p' | grep -v -- '-security' | grep -E '/debian/?$' | head -1)
  if [ -z "$uri" ]; then
    uri=$(grep -hs -E '^deb[[:space:]]' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' \
          | grep -v -- '-security' | grep -E '/debian/?$' | head -1)
  fi
  [ -n "$uri" ] || die "cannot find the machine's Debian mirror in /etc/apt/sources.list{,.d}"
  echo "$uri"
}

# The machine's Debian security mirror (…/debian-security), or nothing if it has none configured.
debian_security_mirror() {
  { grep -hs -A3 -E '^Types:.*deb' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p'
    grep -hs -E '^deb[[:space:]]' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'
  } | grep -E -- '-security/?$' | head -1 || true
}
