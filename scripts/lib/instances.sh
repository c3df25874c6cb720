# Private service instances for one test run (sourced by scripts/test, not run):
# PostgreSQL (initdb into a temporary directory), Redis, a 3-master Redis Cluster and
# NATS with JetStream, each on a free loopback port with its own data, whatever
# system services exist or listen on the standard ports (those are left alone).
# `instances_start DIR` starts them and exports where they are; `instances_stop`
# (in the caller's exit trap) stops them and deletes their data.
#
# Exported for the consumers: BOXOFFICE_TEST_DATABASE_URL, BOXOFFICE_TEST_REDIS_URL,
# BOXOFFICE_TEST_REDIS_CLUSTER, BOXOFFICE_TEST_NATS_URL (the Rust tests), and
# PGHOST/PGPORT/PGUSER, REDIS_PORT, NATS_PORT (psql, the README's distributed
# example, scripts/services, which then finds them answering and starts nothing).

instances_pids=()
instances_pg=""      # the PostgreSQL directory (data, socket, log)
instances_pg_bin=""

# initdb and postgres refuse to run as root: as root they run as `postgres` (the
# Debian package's user) or, without it, `nobody`.
instances_as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id postgres >/dev/null 2>&1 || user=nobody
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

instances_pg_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

# instances_await PID PORT: until the port answers, or fails if the process died
# (a port taken in between: the caller retries on another).
instances_await() {
  for _ in $(seq 300); do
    kill -0 "$1" 2>/dev/null || return 1
    port_open "$2" && return 0
    sleep 0.1
  done
  return 1
}

instances_postgres() {
  instances_pg_bin=$(instances_pg_bindir) || { install_packages postgresql; instances_pg_bin=$(instances_pg_bindir); } ||
    die "PostgreSQL's initdb not found after installing postgresql"
  instances_pg=$(mktemp -d /tmp/boxoffice-pg.XXXXXX)
  chmod 755 "$instances_pg"
  [ "$(id -u)" -ne 0 ] || chown "$(id -u postgres 2>/dev/null || id -u nobody)" "$instances_pg"
  instances_as_pg "$instances_pg_bin/initdb" -D "$instances_pg/data" -U postgres -A trust -E UTF8 \
    --no-locale --no-sync >"$instances_pg/initdb.log" 2>&1 ||
    { cat "$instances_pg/initdb.log" >&2; die "initdb failed"; }
  local port
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    # A throwaway database: no fsync; enough connections for the parallel tests.
    if instances_as_pg "$instances_pg_bin/pg_ctl" -D "$instances_pg/data" -l "$instances_pg/postgres.log" \
      -w -t 60 -o "-p $port -h 127.0.0.1 -k $instances_pg -F -c max_connections=300 -c full_page_writes=off -c synchronous_commit=off" \
      start >/dev/null; then
      export BOXOFFICE_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
      export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
      return 0
    fi
  done
  tail -20 "$instances_pg/postgres.log" >&2
  die "PostgreSQL did not start"
}

# instances_redis DIR [extra redis-server arguments]: sets instances_port.
instances_redis() {
  local dir=$1 port pid; shift
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" \
      --logfile "$dir/redis.log" "$@" >/dev/null 2>&1 &
    pid=$!
    if instances_await "$pid" "$port"; then
      instances_pids+=("$pid")
      instances_port=$port
      return 0
    fi
    kill "$pid" 2>/dev/null || true
  done
  die "redis-server did not start (see $dir/redis.log)"
}

instances_nats() {
  local dir=$1 port pid
  mkdir -p "$dir"
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir/store" -l "$dir/nats.log" &
    pid=$!
    if instances_await "$pid" "$port"; then
      instances_pids+=("$pid")
      export BOXOFFICE_TEST_NATS_URL="nats://127.0.0.1:$port" NATS_PORT=$port
      return 0
    fi
    kill "$pid" 2>/dev/null || true
  done
  die "nats-server did not start (see $dir/nats.log)"
}

instances_start() {
  local dir=$1 n port cluster=()
  need redis-server redis-server
  need redis-cli redis-tools
  need nats-server nats-server
  need psql postgresql-client
  instances_postgres
  instances_redis "$dir/redis"
  export BOXOFFICE_TEST_REDIS_URL="redis://127.0.0.1:$instances_port" REDIS_PORT=$instances_port
  for n in 1 2 3; do
    instances_redis "$dir/cluster$n" --cluster-enabled yes --cluster-config-file "$dir/cluster$n/nodes.conf"
    cluster+=("$instances_port")
  done
  redis-cli --cluster create "${cluster[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
    >"$dir/cluster.log" 2>&1 || { cat "$dir/cluster.log" >&2; die "redis cluster create failed"; }
  # Every node must agree before a client connects.
  for port in "${cluster[@]}"; do
    for _ in $(seq 300); do
      redis-cli -p "$port" cluster info | grep -q "cluster_state:ok" && break
      sleep 0.1
    done
    redis-cli -p "$port" cluster info | grep -q "cluster_state:ok" || die "redis cluster on $port never became ok"
  done
  BOXOFFICE_TEST_REDIS_CLUSTER=$(printf 'redis://127.0.0.1:%s,' "${cluster[@]}")
  export BOXOFFICE_TEST_REDIS_CLUSTER=${BOXOFFICE_TEST_REDIS_CLUSTER%,}
  instances_nats "$dir/nats"
  log "private instances: postgres :$PGPORT, redis :$REDIS_PORT, redis cluster :${cluster[*]}, nats :$NATS_PORT"
}

instances_stop() {
  local pid
  for pid in "${instances_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${instances_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  instances_pids=()
  if [ -n "$instances_pg" ]; then
    [ ! -f "$instances_pg/data/postmaster.pid" ] ||
      instances_as_pg "$instances_pg_bin/pg_ctl" -D "$instances_pg/data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$instances_pg"
    instances_pg=""
  fi
}
