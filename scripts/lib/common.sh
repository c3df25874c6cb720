# Helpers the scripts share (sourced, not run): logging, ports, and installing a
# missing package the way this machine allows (apt-get as root, sudo apt-get as a
# user who may, else a message saying what to install).

log() { echo "${LOG_TAG:-boxoffice}: $*" >&2; }
die() { log "$*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A TCP port on loopback that nothing answers on, with its cluster-bus twin
# (port + 10000, which Redis Cluster uses) free too, taken below the kernel's
# ephemeral range: a port there may be the local end of some connection, which
# nothing answers on and yet cannot be bound. A race with another process is still
# possible; the callers retry a start that fails (or listen on port 0).
free_port() {
  local p low=32768
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
  for _ in $(seq 200); do
    p=$((20000 + RANDOM % (low - 20000 - 10)))
    port_open "$p" || port_open $((p + 10000)) || { echo "$p"; return 0; }
  done
  die "no free port found on 127.0.0.1"
}

# served_at LOG PID: the base URL a boxoffice started with BOXOFFICE_LISTEN=…:0
# prints once it listens (fails if it died first).
served_at() {
  local line
  until line=$(grep -om1 'serving on http://[0-9.:]*' "$1"); do
    kill -0 "$2" 2>/dev/null || { cat "$1" >&2; return 1; }
    sleep 0.1
  done
  echo "http://${line#serving on http://}"
}

# Installs Debian packages: as root directly, else with sudo when it is there and
# may run without a password prompt that nobody can answer; else says what to do.
install_packages() {
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get)
  command -v apt-get >/dev/null || die "missing: $* (no apt-get here: install them with your package manager)"
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && { [ -t 0 ] || sudo -n true 2>/dev/null; }; then
      apt=(sudo "${apt[@]}")
    else
      die "missing: $*. Install them (sudo apt-get install $*) and run this again."
    fi
  fi
  log "installing $*"
  "${apt[@]}" update -qq >/dev/null && "${apt[@]}" install -y -qq "$@" >/dev/null ||
    die "could not install $*: install them (sudo apt-get install $*) and run this again"
}

# need COMMAND PACKAGE...: installs the packages unless COMMAND is found.
need() {
  local cmd=$1; shift
  command -v "$cmd" >/dev/null || install_packages "$@"
  command -v "$cmd" >/dev/null || die "$cmd still missing after installing $*"
}
