#!/usr/bin/env bash
# Soak: a long run with separate processes and a fault, checked row for row.
#
#   benches/soak.sh                       # 20M rows, 4 partitions, 2 consumers
#   ROWS=2000000 benches/soak.sh          # quicker
#   PROFILES="small" benches/soak.sh      # one memory profile only
#
# For each memory profile (PROFILES, default "default small"):
#   - one `velostream produce` process and two `velostream consume` processes
#     (one consumer group, --exactly-once; B joins after A has started, so the
#     group rebalances under load), each under GNU time for its peak RSS;
#   - consumer B is SIGKILLed once while rows are flowing (FAULTS=0 to skip)
#     and restarted, so the group rebalances twice under load;
#   - `velostream verify` then compares the table with the Parquet files
#     (row count + per-column checksums): nothing lost, nothing duplicated.
# The profiles differ only in the consumer's memory settings (insert size,
# insert streams and librdkafka's prefetch limit), to show that the peak RSS
# follows the configuration.
#
# Uses the services in VELOSTREAM_BROKERS / VELOSTREAM_CLICKHOUSE_URL, or
# starts local ones (infra/local/services.sh). Writes
# benches/results/soak-<rows>-<timestamp>.md and prints it.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

ROWS="${ROWS:-20000000}"
PROFILES="${PROFILES:-default small}"
FAULTS="${FAULTS:-1}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="benches/results/soak-${ROWS}-${stamp}.md"
work="$(mktemp -d)"
mkdir -p benches/results

[[ -x /usr/bin/time ]] || { echo "soak.sh: GNU time (/usr/bin/time) is needed: apt-get install time" >&2; exit 1; }
cargo build --release -p velostream >&2
bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/velostream"

# Services: the ones given, or local ones started here (and stopped again on
# exit, but only those this script started).
started=()
start_service() {
    local line
    while IFS= read -r line; do
        case "$line" in
            VELOSTREAM_STARTED=*) started+=("${line#*=}") ;;
            VELOSTREAM_*=*) export "${line?}" ;;
        esac
    done < <(infra/local/services.sh start "$1")
}
if [[ -z "${VELOSTREAM_BROKERS:-}" || -z "${VELOSTREAM_CLICKHOUSE_URL:-}" ]]; then
    start_service kafka
    start_service clickhouse
    [[ -n "${VELOSTREAM_BROKERS:-}" && -n "${VELOSTREAM_CLICKHOUSE_URL:-}" ]] \
        || { echo "soak.sh: starting local services failed (see above)" >&2; exit 1; }
fi
on_exit() {
    local rc=$? svc
    # Stop any of our velostream processes still running (after a failure).
    jobs -p | xargs -r kill 2>/dev/null || true
    if (( rc != 0 )); then
        for f in "$work"/*.err; do
            [[ -s "$f" ]] && { echo "--- ${f##*/} (last lines)"; tail -n 20 "$f"; }
        done >&2
    fi
    for svc in "${started[@]}"; do
        infra/local/services.sh stop "$svc" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap on_exit EXIT
B="$VELOSTREAM_BROKERS"
C="$VELOSTREAM_CLICKHOUSE_URL"

data=".velostream/data/taxi-${ROWS}-seed42"
if [[ ! -f "$data/.complete" ]]; then
    files=$(( ROWS / 5000000 )); (( files < 1 )) && files=1; (( files > 16 )) && files=16
    "$bin" gen --rows "$ROWS" --files "$files" --out "$data" >&2
    touch "$data/.complete"
fi

# Peak RSS in MiB from a GNU time -v log.
peak_mib() { awk -F: '/Maximum resident set size/ {printf "%.0f", $2/1024}' "$1"; }

consumer_flags() {
    case "$1" in
        default) ;;
        small) echo "--insert-rows 100000 --insert-streams 1 -X queued.max.messages.kbytes=16384" ;;
        *) echo "soak.sh: unknown profile $1" >&2; exit 1 ;;
    esac
}

{
    echo "# Soak, $ROWS rows, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Reproduce: \`ROWS=$ROWS PROFILES=\"$PROFILES\" FAULTS=$FAULTS benches/soak.sh\`"
    echo "(release build; tansu 0.6 and ClickHouse $(curl -s "$C/?query=SELECT%20version()") on this machine)."
    echo
    echo "| profile | consumer memory settings | rows (table / source) | lost | duplicates | faults | verify | seconds | peak RSS MiB: producer / consumer A / consumer B (before kill, after restart) |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$out"

for profile in $PROFILES; do
    flags="$(consumer_flags "$profile")"
    topic="soak_${profile}_${stamp}"
    table="velostream_soak.t_${profile}_${stamp}"
    curl -s "$C/" --data-binary "CREATE DATABASE IF NOT EXISTS velostream_soak" >/dev/null
    common=(--brokers "$B" --topic "$topic" --group "$topic" --clickhouse-url "$C"
            --table "$table" --create-table --exactly-once --exit-when-idle 20)
    t0=$(date +%s.%N)
    echo "soak: profile $profile: $ROWS rows through $topic into $table" >&2
    # The producer creates the topic (4 partitions) and starts sending; consumer
    # A starts, then B joins the group (one rebalance under load).
    /usr/bin/time -v -o "$work/p.time" "$bin" produce --brokers "$B" --topic "$topic" \
        --partitions 4 "$data" >"$work/p.out" 2>"$work/p.err" &
    prod=$!
    sleep 1
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$work/a.time" "$bin" consume "${common[@]}" $flags \
        >"$work/a.out" 2>"$work/a.err" &
    ca=$!
    sleep 2
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$work/b1.time" "$bin" consume "${common[@]}" $flags \
        >"$work/b1.out" 2>"$work/b1.err" &
    cb=$!
    faults=0
    rss_b2="-"
    if [[ "$FAULTS" == 1 ]]; then
        # Kill B once a quarter of the rows are in the table (rows are flowing).
        target=$(( ROWS / 4 )) n=0
        until (( n >= target )); do
            for pid in "$ca" "$cb"; do
                kill -0 "$pid" 2>/dev/null || { echo "soak: a consumer ended before $target rows were in $table" >&2; exit 1; }
            done
            sleep 0.25
            n="$(curl -s "$C/" --data-binary "SELECT count() FROM $table" 2>/dev/null || true)"
            [[ "$n" =~ ^[0-9]+$ ]] || n=0
        done
        # The velostream process is the only child of its GNU time wrapper.
        echo "soak: SIGKILL consumer B at $n rows" >&2
        pkill -KILL -P "$cb"
        wait "$cb" || true
        faults=1
        # shellcheck disable=SC2086
        /usr/bin/time -v -o "$work/b2.time" "$bin" consume "${common[@]}" $flags \
            >"$work/b2.out" 2>"$work/b2.err" &
        cb=$!
    fi
    wait "$prod" || { echo "soak: producer failed:"; cat "$work/p.err"; exit 1; } >&2
    wait "$ca" || { echo "soak: consumer A failed:"; cat "$work/a.err"; exit 1; } >&2
    wait "$cb" || { echo "soak: consumer B failed:"; cat "$work"/b*.err; exit 1; } >&2
    t1=$(date +%s.%N)
    n="$(curl -s "$C/" --data-binary "SELECT count() FROM $table")"
    messages="$(curl -s "$C/" --data-binary "SELECT uniqExact(_velostream_partition, _velostream_offset) FROM $table")"
    echo "soak: $n rows from $messages messages in $table; verifying" >&2
    if "$bin" verify --clickhouse-url "$C" --table "$table" "$data" >"$work/v.out" 2>&1; then
        verdict="equal"
    else
        verdict="DIFFERENT"
        cat "$work/v.out" >&2
    fi
    lost=$(( n < ROWS ? ROWS - n : 0 ))
    dup=$(( n > ROWS ? n - ROWS : 0 ))
    rss_b1="$(peak_mib "$work/b1.time")"
    [[ -f "$work/b2.time" && "$faults" == 1 ]] && rss_b2="$(peak_mib "$work/b2.time")"
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
    echo "| $profile | ${flags:-defaults (500k-row inserts, 2 streams, 256 MiB prefetch)} | $n / $ROWS | $lost | $dup | $faults SIGKILL + restart | $verdict | $secs | $(peak_mib "$work/p.time") / $(peak_mib "$work/a.time") / $rss_b1, $rss_b2 |" >>"$out"
    curl -s "$C/" --data-binary "DROP TABLE IF EXISTS $table" >/dev/null
    rm -f "$work"/*.time
    [[ "$verdict" == equal ]] || { cat "$out"; exit 1; }
done

cat "$out"
echo "written: $out" >&2
