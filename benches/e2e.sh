#!/usr/bin/env bash
# End-to-end comparison: VeloStream vs the per-row JSON design vs ClickHouse's
# own Native insert vs a bare Parquet decode, all measured side by side in
# ONE run on the same machine and services, then checked against the
# performance targets as ratios (never absolute timings).
#
#   benches/e2e.sh                      # 20M rows, 4 partitions
#   ROWS=2000000 benches/e2e.sh         # quicker
#   benches/e2e.sh --consumers 2        # extra arguments go to `velostream bench`
#
# Writes benches/results/e2e-<rows>-<timestamp>.{json,svg} and prints the ratios.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"
ROWS="${ROWS:-20000000}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="benches/results/e2e-${ROWS}-${stamp}"
mkdir -p benches/results

# Inserts go uncompressed: on loopback, compressing only burns CPU on both
# ends of the same two cores (every side of the comparison uses the same setting).
infra/local/bench.sh --rows "$ROWS" --partitions 4 --clickhouse-compression none \
    --compare json-rows --compare native-file --compare parquet-decode \
    --report-json "$out.json" --chart "$out.svg" "$@"

python3 - "$out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ratios = r.get("ratios", {})
def check(name, value, op, target, what):
    ok = value >= target if op == ">=" else value <= target
    print(f"  {'MET ' if ok else 'MISS'} {what:<58} {value:8.3f} (target {op} {target})")
print("Targets (ratios measured in this run):")
check("e2e/native", ratios.get("end_to_end_vs_native_file", 0), ">=", 0.8, "end-to-end rows/s vs ClickHouse native-file insert")
check("e2e/json", ratios.get("end_to_end_vs_json_rows", 0), ">=", 10, "end-to-end rows/s vs per-row JSON pipeline")
if "native_file_vs_json_rows" in ratios:
    print(f"       (ClickHouse's own Native insert is {ratios['native_file_vs_json_rows']:.2f} x the JSON pipeline:"
          " the most any pipeline into this server can reach)")
check("bytes", ratios.get("wire_bytes_per_row_vs_json_rows", 1), "<=", 0.2, "Kafka bytes/row vs JSON")
check("producer", ratios.get("producer_vs_parquet_decode", 0), ">=", 0.8, "producer rows/s vs bare Parquet decode")
check("cpu", ratios.get("consumer_cpu_vs_json_rows", 1), "<=", 0.1, "consumer CPU s/Mrow vs JSON")
print(f"  consumer CPU seconds per million rows: {r['consumer']['cpu_seconds_per_million_rows']:.3f}"
      f" (JSON: {r['compare']['json-rows']['consumer']['cpu_seconds_per_million_rows']:.3f})")
b = r.get("cpu_budget")
if b:
    print(f"  CPU s per million rows: producer {b['producer']:.3f}, consumer {b['consumer']:.3f},"
          f" librdkafka {b['kafka_client']:.3f}, tansu {b['tansu']:.3f}, ClickHouse {b['clickhouse']:.3f}"
          f" = {b['total']:.3f} on {b['cpus']:.0f} cores (machine busy {r['machine_busy_cores']:.2f} cores)")
    print(f"  CPU-bound ceiling: {b['end_to_end_ceiling_rows_per_s']:.0f} rows/s end to end;"
          f" ratio vs native-file at most {b.get('end_to_end_vs_native_file_ceiling', float('nan')):.3f}")
print(f"  validated: {r['validated']}, rows: {r['rows_clickhouse']}")
PY
echo "report: $out.json  chart: $out.svg"
