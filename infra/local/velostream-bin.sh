# Sourced by the scripts in infra/local: builds the debug `velostream` binary
# when needed (quietly; cargo's lock serializes parallel builds) and sets
# VELOSTREAM_BIN to it. VELOSTREAM_BIN already set: that binary is used as is.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
if [[ -z "${VELOSTREAM_BIN:-}" ]]; then
    (cd "$REPO_ROOT" && cargo build -q -p velostream >&2)
    VELOSTREAM_BIN="${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/velostream"
fi
