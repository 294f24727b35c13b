#!/usr/bin/env bash
# The VeloStream benchmark in one command:
#
#   infra/local/bench.sh [velostream bench options...]
#
# installs what is missing (infra/local/install.sh), builds the release
# binary and runs `velostream bench "$@"`. Without --brokers/--clickhouse-url
# the bench starts local services itself (velostream::local) and stops them
# afterwards. The report is printed on stdout; progress and logs on stderr.
# Works from any directory. See `target/release/velostream bench --help`.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

printf '==> install (infra/local/install.sh)\n' >&2
infra/local/install.sh >&2

printf '\n==> cargo build --release -p velostream\n' >&2
cargo build --release -p velostream >&2

target_dir="${CARGO_TARGET_DIR:-$REPO_ROOT/target}"
bin="$target_dir/release/velostream"
[[ -x "$bin" ]] || { echo "bench.sh: $bin not found after the build" >&2; exit 1; }

printf '\n==> %s bench %s\n' "$bin" "$*" >&2
exec "$bin" bench "$@"
