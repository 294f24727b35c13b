#!/usr/bin/env bash
# The VeloStream benchmark in one command: installs what is missing, builds the
# release binary and runs `velostream bench "$@"` (local services are started by
# the binary itself when no --brokers/--clickhouse-url are given).
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
"$REPO_ROOT/infra/local/install.sh" >&2
(cd "$REPO_ROOT" && cargo build --release -p velostream >&2)
exec "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/release/velostream" bench "$@"
