# A fresh server (perf build) for the benchmarks of docs/benchmarks.md (sourced, not
# run). `bench_start MODE [VAR=value...]` starts it, embedded or distributed (on the
# local PostgreSQL, Redis and NATS, or BOXOFFICE_TEST_*_URL, with the test gateway on
# its own as a shared store needs), the extra settings given; sets `bench_base`
# (its URL) and `bench_pid`. `bench_stop` stops everything and drops the database.
# Needs common.sh.
bench_pids=()
bench_work=$(mktemp -d)
bench_db=
bench_pg=
bench_stop() {
  kill "${bench_pids[@]}" 2>/dev/null; wait 2>/dev/null || true; bench_pids=()
  if [[ -n $bench_db ]]; then psql "$bench_pg" -qc "DROP DATABASE $bench_db WITH (FORCE)" || true; bench_db=; fi
  rm -rf "$bench_work"
}
trap bench_stop EXIT

bench_start() {
  local mode=$1; shift
  local extra=()
  cargo build --locked -q --profile perf -p boxoffice -p boxoffice-loadgen
  if [[ $mode == distributed ]]; then
    bench_pg=${BOXOFFICE_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
    bench_db="boxoffice_bench_$RANDOM$RANDOM"
    psql "$bench_pg" -qc "CREATE DATABASE $bench_db"
    BOXOFFICE_DATA_DIR="$bench_work/gateway" BOXOFFICE_GATEWAY_LISTEN=127.0.0.1:0 BOXOFFICE_LOG=warn \
      target/perf/boxoffice test-gateway >"$bench_work/gateway.log" 2>&1 &
    bench_pids+=($!)
    local gateway
    until gateway=$(grep -om1 'on http://[0-9.:]*' "$bench_work/gateway.log"); do
      kill -0 "${bench_pids[-1]}" 2>/dev/null || { cat "$bench_work/gateway.log" >&2; die "the test gateway died"; }
      sleep 0.1
    done
    extra=(BOXOFFICE_DATABASE_URL="${bench_pg%/*}/$bench_db" BOXOFFICE_DATABASE_POOL_SIZE="${BOXOFFICE_DATABASE_POOL_SIZE:-32}"
      BOXOFFICE_GATEWAY=stripe BOXOFFICE_STRIPE_URL="http://${gateway#on http://}"
      BOXOFFICE_STRIPE_SECRET_KEY=sk_test_boxoffice
      BOXOFFICE_REDIS_URL="${BOXOFFICE_TEST_REDIS_URL:-redis://127.0.0.1:6379}" BOXOFFICE_REDIS_PREFIX="bench$RANDOM:"
      BOXOFFICE_NATS_URL="${BOXOFFICE_TEST_NATS_URL:-nats://127.0.0.1:4222}" BOXOFFICE_NATS_PREFIX="BENCH$RANDOM")
  elif [[ $mode != embedded ]]; then
    die "mode is embedded or distributed, not $mode"
  fi
  env "${extra[@]}" BOXOFFICE_LISTEN=127.0.0.1:0 BOXOFFICE_DATA_DIR="$bench_work/server" BOXOFFICE_DEMO=false \
    BOXOFFICE_ADMIN_PASSWORD=bench-admin-pw BOXOFFICE_LOG=warn "$@" target/perf/boxoffice >"$bench_work/server.log" 2>&1 &
  bench_pids+=($!)
  bench_pid=${bench_pids[-1]}
  bench_base=$(served_at "$bench_work/server.log" "$bench_pid") || die "the server died"
  until curl -sf "$bench_base/ready" >/dev/null; do sleep 0.2; done
  ulimit -n 65536 2>/dev/null || true
}
