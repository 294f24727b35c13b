#!/usr/bin/env bash
# The one command that runs every VeloStream check on a fresh Debian machine:
#
#   infra/local/test.sh
#
# 1. infra/local/install.sh --airflow (idempotent: services, tansu, Python venv,
#    Apache Airflow venv for the DAG tests; prints its install time)
# 2. cargo fmt --all -- --check
# 3. cargo clippy --workspace --all-targets -- -D warnings
# 4. docker-compose -f infra/docker-compose.yml config -q   (compose validation, no Docker engine needed)
# 5. starts tansu, ClickHouse and Prometheus once (state in a temp dir) and
#    exports VELOSTREAM_TEST_BROKERS / _CLICKHOUSE_URL / _PROMETHEUS_URL /
#    _PROMETHEUS_TARGETS so every test binary shares them
# 6. cargo test --workspace --no-fail-fast   (its summary is the last output)
#
# Services are stopped on exit, also on Ctrl-C; a watchdog stops them if this
# script is killed outright. Works from any directory. Extra arguments go to
# `cargo test` (e.g. infra/local/test.sh -- --test-threads 2).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

step() { printf '\n==> %s\n' "$*" >&2; }
T0=$SECONDS

step "install (infra/local/install.sh --airflow)"
infra/local/install.sh --airflow >&2

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "docker-compose -f infra/docker-compose.yml config -q"
docker-compose -f infra/docker-compose.yml config -q
echo "    compose file valid" >&2

step "start local services"
STATE_DIR="$(mktemp -d "${TMPDIR:-/tmp}/velostream-test-services.XXXXXX")"
cleanup() {
    local rc=$?
    if ! infra/local/services.sh stop all --state-dir "$STATE_DIR" 2>"$STATE_DIR.stop.log"; then
        echo "test.sh: stopping services failed:" >&2
        cat "$STATE_DIR.stop.log" >&2
    fi
    rm -rf "$STATE_DIR" "$STATE_DIR.stop.log"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
endpoints="$(infra/local/services.sh start all --state-dir "$STATE_DIR" --owner-pid $$)"
while IFS='=' read -r key value; do
    case "$key" in
        VELOSTREAM_BROKERS) export VELOSTREAM_TEST_BROKERS="$value" ;;
        VELOSTREAM_CLICKHOUSE_URL) export VELOSTREAM_TEST_CLICKHOUSE_URL="$value" ;;
        VELOSTREAM_PROMETHEUS_URL) export VELOSTREAM_TEST_PROMETHEUS_URL="$value" ;;
        VELOSTREAM_PROMETHEUS_TARGETS) export VELOSTREAM_TEST_PROMETHEUS_TARGETS="$value" ;;
    esac
done <<<"$endpoints"
: "${VELOSTREAM_TEST_BROKERS:?services.sh printed no VELOSTREAM_BROKERS}"
: "${VELOSTREAM_TEST_CLICKHOUSE_URL:?services.sh printed no VELOSTREAM_CLICKHOUSE_URL}"
: "${VELOSTREAM_TEST_PROMETHEUS_URL:?services.sh printed no VELOSTREAM_PROMETHEUS_URL}"
: "${VELOSTREAM_TEST_PROMETHEUS_TARGETS:?services.sh printed no VELOSTREAM_PROMETHEUS_TARGETS}"
# A test run never skips: missing services fail the tests.
unset VELOSTREAM_TEST_ALLOW_SKIP
env | grep '^VELOSTREAM_TEST_' | sed 's/^/    /' >&2

step "cargo test --workspace --no-fail-fast (checks before this took $((SECONDS - T0)) s)"
test_log="$STATE_DIR.cargo-test.log"
set +e
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$test_log"
rc=${PIPESTATUS[0]}
set -e
# One closing line over every test binary (cargo's own last line is the
# doc-test summary, often "0 passed").
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
     END { printf "summary: %d passed, %d failed\n", p, f }' "$test_log"
rm -f "$test_log"
exit "$rc"
