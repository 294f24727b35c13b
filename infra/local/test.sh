#!/usr/bin/env bash
# Every VeloStream check in one command (what CI runs): install what is missing,
# fmt, clippy, compose validation, then `cargo test --workspace` with every local
# service started once by `velostream local run` (endpoints exported as
# VELOSTREAM_TEST_*; stopped afterwards, or by the watchdog if this is killed).
# Extra arguments go to `cargo test`. The last line sums up every test binary.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/velostream-bin.sh" && cd "$REPO_ROOT"
infra/local/install.sh --airflow >&2 # Apache Airflow in its own venv for the DAG tests (install time printed)
cargo fmt --all -- --check && cargo clippy --workspace --all-targets -- -D warnings
docker-compose -f infra/docker-compose.yml config -q && docker-compose -f infra/docker-compose.yml --profile cluster --profile pipeline config -q
state="$(mktemp -d "${TMPDIR:-/tmp}/velostream-test-services.XXXXXX")" && log="$state.cargo-test.log" && trap 'rm -rf "$state" "$log"' EXIT
set +e
"$VELOSTREAM_BIN" local run all --state-dir "$state" --env-prefix VELOSTREAM_TEST_ -- cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
