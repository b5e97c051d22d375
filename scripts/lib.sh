# Shared helpers for scripts/services.d/*: sourced, not run.
# Every service keeps its state (pid file, data, log) under $VELTRIX_SERVICES_DIR/<name>.

: "${VELTRIX_SERVICES_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.services}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Python of the project's venv when present (servers written in Python run with it).
if [ -x "$REPO_ROOT/.venv/bin/python" ]; then PYTHON="$REPO_ROOT/.venv/bin/python"; else PYTHON="${PYTHON:-python3}"; fi

log() { echo "[services] $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {  # apt_install PACKAGE... (only those missing)
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq >&2; apt_updated=1; fi
  log "installing ${missing[*]} from Debian"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

wait_for_port() {  # wait_for_port HOST PORT SECONDS
  local host=$1 port=$2 deadline=$(( $(date +%s) + $3 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "nothing listens on $host:$port after $3 s"; return 1
}

port_taken() {  # port_taken PORT : true when something accepts connections on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

require_free_port() {  # require_free_port PORT VARIABLE : exit at once if PORT is in use
  # Called after stop_daemon (our own server is gone) and before start_daemon: a port held by
  # another program would otherwise look like our server starting, then time out much later.
  if port_taken "$1"; then
    log "port $1 on 127.0.0.1 is in use by another program: stop it, or set $2 to a free port"
    exit 1
  fi
}

zk_four() {  # zk_four PORT WORD: a ZooKeeper four-letter command's answer, or nothing
  (exec 3<>"/dev/tcp/127.0.0.1/$1" && printf '%s' "$2" >&3 && timeout 2 cat <&3) 2>/dev/null || true
}

start_daemon() {  # start_daemon NAME COMMAND... : runs in background, pid in $dir/pid
  local name=$1; shift
  local dir="$VELTRIX_SERVICES_DIR/$name"
  mkdir -p "$dir"
  nohup "$@" >"$dir/log" 2>&1 &
  echo $! >"$dir/pid"
}

stop_daemon() {  # stop_daemon NAME : TERM, then KILL after 5 s
  local pidfile="$VELTRIX_SERVICES_DIR/$1/pid"
  [ -f "$pidfile" ] || return 0
  local pid; pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
