#!/usr/bin/env bash
# End-to-end comparison: VeloStream vs the per-row JSON design vs ClickHouse's
# own Native insert vs a bare Parquet decode, all measured side by side in
# ONE run on the same machine and services, then checked against the
# performance targets as ratios (never absolute timings): `velostream bench
# --targets` prints them from the typed report (src: engine/src/bench/targets.rs).
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
    --compare json-rows --compare native-file --compare parquet-decode --targets \
    --report-json "$out.json" --chart "$out.svg" "$@"
echo "report: $out.json  chart: $out.svg"
