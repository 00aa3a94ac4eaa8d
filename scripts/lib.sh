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

# ---------------------------------------------------------------------------------------------
# Docker, for the multi-host tests (doppel-daemon's containers/ tests: one container per host,
# image from scripts/build-host-image). There is no systemd: dockerd is started by hand, detached,
# and keeps running after the script (the next run finds it answering and does nothing).
#
# Flags, and why (measured on Debian 12, kernel 6.18, docker.io 20.10.24, cgroup v1 hybrid, ext4):
#   --iptables=false --ip-forward=false --ip-masq=false
#     This kernel has iptables/nftables and br_netfilter built in, and
#     net.bridge.bridge-nf-call-iptables is already 1: every frame crossing a bridge goes through the
#     iptables FORWARD chain of the bridge's namespace, even with ip_forward=0. With its default
#     --iptables=true, dockerd 20.10 sets net.ipv4.ip_forward=1 and the FORWARD policy to DROP, which
#     would drop the bridged traffic of Doppel's host-namespace bridges (the clone network's bridge, the
#     multicast segments of the remote-fork tests). Measured in a scratch namespace (bridge + two veth
#     peers): FORWARD policy ACCEPT: ping passes; DROP: every ping lost; DROP with
#     bridge-nf-call-iptables=0: passes again. With the three flags dockerd writes no iptables rule and
#     leaves ip_forward alone: `iptables -S` shows only the ACCEPT policies and ip_forward stays 0 while
#     containers run; a ping across a host-namespace bridge between two namespaces passes, and
#     RemoteForkMulticastIntegrationTest (host bridge, multicast) passed with dockerd and containers up.
#     What is lost: NAT to the outside (no container needs it; no registry is reachable anyway). What
#     still works: containers on one Testcontainers network reach each other over their bridge (layer 2,
#     no rules), docker's embedded DNS resolves network aliases (it sets up its own rules inside the
#     container's namespace), published ports work through docker-proxy (userland proxy, local, not
#     forwarded) — all three used by doppel-daemon's containers/ tests.
#   Storage driver overlay2 (ext4 root), cgroupfs driver: dockerd's defaults, nothing to set.
#   dockerd answers within 1 s of its start here.
# Log: $DOPPEL_CACHE/docker/dockerd.log. DOPPEL_DOCKERD_WAIT: seconds to wait for the socket (60).
DOCKERD_FLAGS=(--iptables=false --ip-forward=false --ip-masq=false)

# The docker client from Debian's docker.io (another one may be earlier in PATH, e.g. /usr/local/bin).
docker_cli() {
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || echo docker; fi
}

# Starts dockerd unless one answers already; waits (bounded) until `docker info` answers.
ensure_dockerd() {
  local docker log pid waited=0 limit=${DOPPEL_DOCKERD_WAIT:-60}
  docker=$(docker_cli)
  log="$DOPPEL_CACHE/docker/dockerd.log"
  if "$docker" info >/dev/null 2>&1; then
    pid=$(pgrep -xo dockerd || true)
    if [ -n "$pid" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- '--iptables=false'; then
      warn "dockerd (pid $pid) runs without --iptables=false: it may have set the FORWARD policy to DROP," \
           "which drops bridged traffic of the namespace tests (see ensure_dockerd in scripts/lib.sh)"
    fi
    return 0
  fi
  command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] \
    || die "dockerd is not installed: run ./scripts/setup (installs Debian's docker.io)"
  [ "$(id -u)" -eq 0 ] || die "starting dockerd needs root"
  mkdir -p "$(dirname "$log")"
  if pgrep -x dockerd >/dev/null; then
    say "dockerd runs but does not answer yet; waiting up to $limit s"
  else
    say "starting dockerd ${DOCKERD_FLAGS[*]} (log: $log)"
    echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) ensure_dockerd: dockerd ${DOCKERD_FLAGS[*]}" >>"$log"
    PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH setsid nohup dockerd "${DOCKERD_FLAGS[@]}" >>"$log" 2>&1 </dev/null &
  fi
  until "$docker" info >/dev/null 2>&1; do
    if [ "$waited" -ge $((limit * 2)) ]; then
      tail -15 "$log" >&2 || true
      die "dockerd did not answer on /var/run/docker.sock within $limit s (log above: $log)"
    fi
    if ! pgrep -x dockerd >/dev/null; then
      tail -15 "$log" >&2 || true
      die "dockerd exited during start-up (log above: $log)"
    fi
    sleep 0.5
    waited=$((waited + 1))
  done
  say "dockerd answers ($(( (waited + 1) / 2 )) s)"
}

# The image scripts/build-host-image builds (its tag `current` is moved to the newest build).
HOST_IMAGE_REPO=doppel-host
