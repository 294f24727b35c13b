#!/usr/bin/env bash
# Soak: a long run with separate processes and a fault, checked row for row.
#
#   benches/soak.sh                       # 20M rows, 4 partitions, 2 consumers
#   ROWS=2000000 benches/soak.sh          # quicker
#   PROFILES="small" benches/soak.sh      # one memory profile only
#   TOPOLOGY=replicated benches/soak.sh   # into a replicated, partitioned table
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
# TOPOLOGY=replicated: the table is a ReplicatedMergeTree partitioned by
# day of pickup (inserts span several partitions: several parts each) on the
# two replicas of the local cluster's first shard (with ZooKeeper); the
# consumers get both replica URLs, and at the fault replica 1 (where inserts
# go) is SIGKILLed together with consumer B and restarted 5 s later (then B);
# both replicas are verified.
#
# Uses the services in VELOSTREAM_BROKERS / VELOSTREAM_CLICKHOUSE_URL
# (replicated: VELOSTREAM_CLICKHOUSE_CLUSTER_URLS), or starts local ones
# (infra/local/services.sh). Writes
# benches/results/soak-<rows>-<timestamp>.md and prints it.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

ROWS="${ROWS:-20000000}"
PROFILES="${PROFILES:-default small}"
FAULTS="${FAULTS:-1}"
TOPOLOGY="${TOPOLOGY:-single}"
[[ "$TOPOLOGY" == single || "$TOPOLOGY" == replicated ]] ||
    { echo "soak.sh: TOPOLOGY is single or replicated, not $TOPOLOGY" >&2; exit 2; }
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="benches/results/soak-${ROWS}-${stamp}.md"
work="$(mktemp -d)"
mkdir -p benches/results

[[ -x /usr/bin/time ]] || { echo "soak.sh: GNU time (/usr/bin/time) is needed: apt-get install time" >&2; exit 1; }
cargo build --release -p velostream >&2
bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/velostream"

# Services: the ones given, or local ones started here (and stopped again on
# exit, but only those this script started).
source benches/services.sh
if [[ "$TOPOLOGY" == replicated ]]; then
    [[ -n "${VELOSTREAM_BROKERS:-}" ]] || start_service kafka
    [[ -n "${VELOSTREAM_CLICKHOUSE_CLUSTER_URLS:-}" ]] || start_service clickhouse-cluster
    [[ -n "${VELOSTREAM_BROKERS:-}" && -n "${VELOSTREAM_CLICKHOUSE_CLUSTER_URLS:-}" ]] \
        || { echo "soak.sh: starting local services failed (see above)" >&2; exit 1; }
    # The replicas of the first shard.
    IFS=, read -r -a REPLICAS <<<"${VELOSTREAM_CLICKHOUSE_CLUSTER_URLS%% *}"
    (( ${#REPLICAS[@]} >= 2 )) || { echo "soak.sh: the cluster's first shard has fewer than 2 replicas" >&2; exit 1; }
    VELOSTREAM_CLICKHOUSE_URL="${REPLICAS[0]}"
elif [[ -z "${VELOSTREAM_BROKERS:-}" || -z "${VELOSTREAM_CLICKHOUSE_URL:-}" ]]; then
    start_service kafka
    start_service clickhouse
    [[ -n "${VELOSTREAM_BROKERS:-}" && -n "${VELOSTREAM_CLICKHOUSE_URL:-}" ]] \
        || { echo "soak.sh: starting local services failed (see above)" >&2; exit 1; }
    REPLICAS=("$VELOSTREAM_CLICKHOUSE_URL")
else
    REPLICAS=("$VELOSTREAM_CLICKHOUSE_URL")
fi
# A replica this script restarted itself.
restarted_pid=""
on_exit() {
    local rc=$? svc
    # Stop any of our velostream processes still running (after a failure).
    jobs -p | xargs -r kill 2>/dev/null || true
    if (( rc != 0 )); then
        for f in "$work"/*.err; do
            [[ -s "$f" ]] && { echo "--- ${f##*/} (last lines)"; tail -n 20 "$f"; }
        done >&2
    fi
    # A replica restarted here belongs to a cluster started here: stop it;
    # in a cluster that was given, it keeps running like its peers.
    if [[ -n "$restarted_pid" && " ${started[*]} " == *" clickhouse-cluster "* ]]; then
        kill "$restarted_pid" 2>/dev/null || true
    fi
    stop_started
    rm -rf "$work"
}
trap on_exit EXIT
B="$VELOSTREAM_BROKERS"
C="$VELOSTREAM_CLICKHOUSE_URL"
URLS="$(IFS=,; echo "${REPLICAS[*]}")"
q() { curl -sf "$1/" --data-binary "$2"; }

# The clickhouse-server process serving HTTP at URL $1: "pid config-file".
server_of() {
    local port="${1##*:}" pid cfg
    port="${port%%/*}"
    while read -r pid cfg; do
        cfg="${cfg#*--config-file=}"
        grep -q "<http_port>$port</http_port>" "$cfg" 2>/dev/null && { echo "$pid $cfg"; return; }
    done < <(pgrep -af clickhouse-server | awk '{print $1, $3}')
    echo "soak.sh: no clickhouse-server process serves $1" >&2
    return 1
}

# Creates $1 (db.table) for topic $2: replicated mode, a ReplicatedMergeTree
# partitioned by day of pickup on every replica, with the exactly-once
# columns (from a `provision` template); single mode, left to --create-table.
create_table() {
    local table="$1" topic="$2" r first
    [[ "$TOPOLOGY" == replicated ]] || return 0
    first="$(find "$data" -name '*.parquet' | sort | head -n 1)"
    for r in "${REPLICAS[@]}"; do
        q "$r" "CREATE DATABASE IF NOT EXISTS velostream_soak" >/dev/null
        "$bin" provision --brokers "$B" --topic "$topic" --partitions 4 --clickhouse-url "$r" \
            --table "${table}_template" --exactly-once --schema-from "$first" >&2
        q "$r" "CREATE TABLE $table AS ${table}_template ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/${table}', '{replica}') PARTITION BY toYYYYMMDD(tpep_pickup_datetime) ORDER BY tuple()" >/dev/null
    done
}

# SIGKILLs the replica at $1 and restarts it after 5 s (in the background).
kill_replica() {
    local pid cfg
    read -r pid cfg < <(server_of "$1")
    echo "soak: SIGKILL replica $1 (pid $pid)" >&2
    kill -KILL "$pid"
    sleep 5
    # In a subshell: not one of this script's jobs (those are killed on exit).
    (setsid "$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)" \
        --config-file="$cfg" >/dev/null 2>&1 &)
    for _ in $(seq 1 120); do q "$1" "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
    read -r restarted_pid _ < <(server_of "$1")
    echo "soak: replica $1 restarted (pid $restarted_pid)" >&2
}

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
    echo "Reproduce: \`ROWS=$ROWS PROFILES=\"$PROFILES\" FAULTS=$FAULTS TOPOLOGY=$TOPOLOGY benches/soak.sh\`"
    echo "(release build; tansu 0.6 and ClickHouse $(curl -s "$C/?query=SELECT%20version()") on this machine)."
    if [[ "$TOPOLOGY" == replicated ]]; then
        echo
        echo "Topology: \`ReplicatedMergeTree\` partitioned by day of pickup on 2 replicas (${REPLICAS[*]}) with ZooKeeper; the fault SIGKILLs consumer B and replica 1, restarted 5 s later; verify runs on each replica."
    fi
    echo
    echo "| profile | consumer memory settings | rows (table / source) | lost | duplicates | faults | verify | seconds | peak RSS MiB: producer / consumer A / consumer B (before kill, after restart) |"
    echo "|---|---|---|---|---|---|---|---|---|"
} >"$out"

for profile in $PROFILES; do
    flags="$(consumer_flags "$profile")"
    topic="soak_${profile}_${stamp}"
    table="velostream_soak.t_${profile}_${stamp}"
    curl -s "$C/" --data-binary "CREATE DATABASE IF NOT EXISTS velostream_soak" >/dev/null
    create_table "$table" "$topic"
    common=(--brokers "$B" --topic "$topic" --group "$topic" --clickhouse-url "$URLS"
            --table "$table" --exactly-once --exit-when-idle 20)
    [[ "$TOPOLOGY" == replicated ]] || common+=(--create-table)
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
        if [[ "$TOPOLOGY" == replicated ]]; then
            # Consumer A fails over to replica 2 meanwhile. B restarts once
            # the replica is back: a consumer starts only when every server
            # it is given answers (README, Clusters).
            kill_replica "${REPLICAS[0]}"
            faults=2
        fi
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
    verdict="equal"
    for r in "${REPLICAS[@]}"; do
        [[ "$TOPOLOGY" == single ]] || q "$r" "SYSTEM SYNC REPLICA $table" >/dev/null
        if ! "$bin" verify --clickhouse-url "$r" --table "$table" "$data" >"$work/v.out" 2>&1; then
            verdict="DIFFERENT on $r"
            cat "$work/v.out" >&2
        fi
    done
    (( ${#REPLICAS[@]} == 1 )) || verdict="$verdict (each of ${#REPLICAS[@]} replicas)"
    lost=$(( n < ROWS ? ROWS - n : 0 ))
    dup=$(( n > ROWS ? n - ROWS : 0 ))
    rss_b1="$(peak_mib "$work/b1.time")"
    [[ -f "$work/b2.time" && "$faults" != 0 ]] && rss_b2="$(peak_mib "$work/b2.time")"
    secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')"
    echo "| $profile | ${flags:-defaults} | $n / $ROWS | $lost | $dup | $faults SIGKILL + restart | $verdict | $secs | $(peak_mib "$work/p.time") / $(peak_mib "$work/a.time") / $rss_b1, $rss_b2 |" >>"$out"
    for r in "${REPLICAS[@]}"; do
        q "$r" "DROP TABLE IF EXISTS $table" >/dev/null || true
        q "$r" "DROP TABLE IF EXISTS ${table}_template" >/dev/null || true
    done
    rm -f "$work"/*.time
    [[ "$verdict" == equal* ]] || { cat "$out"; exit 1; }
done

cat "$out"
echo "written: $out" >&2
