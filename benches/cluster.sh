#!/usr/bin/env bash
# The bench against a ClickHouse cluster: 2 shards x 2 replicas
# (clickhouse-server processes with ZooKeeper, `velostream local start
# clickhouse-cluster`) and tansu, started here unless given, then
# `velostream bench` with one --clickhouse-url per shard and --cluster.
# The report gives the rows and insert rate per shard; the native-file
# comparison runs against the first server.
#
#   benches/cluster.sh                     # 4M rows, 4 partitions, exactly-once
#   ROWS=1000000 benches/cluster.sh        # quicker
#   benches/cluster.sh --consumers 2       # extra arguments go to `velostream bench`
#
# Given services: VELOSTREAM_BROKERS and VELOSTREAM_CLICKHOUSE_CLUSTER_URLS
# (shards separated by spaces, replicas by commas) and
# VELOSTREAM_CLICKHOUSE_CLUSTER (the remote_servers name).
# Writes benches/results/cluster-<rows>-<timestamp>.json.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
ROWS="${ROWS:-4000000}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="benches/results/cluster-${ROWS}-${stamp}"
mkdir -p benches/results

infra/local/install.sh >&2
cargo build --release -p velostream >&2
bin="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/velostream"

source benches/services.sh
trap stop_started EXIT
[[ -n "${VELOSTREAM_BROKERS:-}" ]] || start_service kafka
[[ -n "${VELOSTREAM_CLICKHOUSE_CLUSTER_URLS:-}" ]] || start_service clickhouse-cluster
shard_flags=()
for shard in $VELOSTREAM_CLICKHOUSE_CLUSTER_URLS; do shard_flags+=(--clickhouse-url "$shard"); done

"$bin" bench --rows "$ROWS" --partitions 4 --exactly-once --clickhouse-compression none \
    --brokers "$VELOSTREAM_BROKERS" "${shard_flags[@]}" \
    --cluster "${VELOSTREAM_CLICKHOUSE_CLUSTER:-velostream}" \
    --compare native-file --report-json "$out.json" "$@"
echo "report: $out.json"
