#!/usr/bin/env bash
# Provides the Parquet test corpus (apache/parquet-testing) and records where it
# is, for the test harness: one line, the directory, in <repo>/.velostream/testdata.path.
# Run by infra/local/install.sh; usable alone.
#
#   infra/local/testdata.sh [--repo-root DIR]
#
# The first that works, in this order:
#   1. $VELOSTREAM_TEST_DATA, when set (a copy you point at; it must hold data/);
#   2. <repo>/../shared/testdata/parquet-testing, when present (development
#      machines, which have no internet access);
#   3. a shallow clone of https://github.com/apache/parquet-testing pinned to
#      commit 1a2a75127be06fc0123f03ebd36c966f7beda27d in the git-ignored cache
#      <repo>/.velostream/testdata/parquet-testing, checked by commit (an
#      existing clone at that commit is reused).
# When none works, it fails at once naming the three ways.
set -euo pipefail

COMMIT="1a2a75127be06fc0123f03ebd36c966f7beda27d"
URL="https://github.com/apache/parquet-testing"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [[ "${1:-}" == "--repo-root" ]]; then
    REPO_ROOT="$(cd "${2:?--repo-root needs a directory}" && pwd)"
fi
SHARED="$REPO_ROOT/../shared/testdata/parquet-testing"
CACHE="$REPO_ROOT/.velostream/testdata/parquet-testing"
RECORD="$REPO_ROOT/.velostream/testdata.path"

info() { printf '    %s\n' "$*" >&2; }

# Records DIR as the corpus and says why.
use() {
    mkdir -p "$(dirname "$RECORD")"
    printf '%s\n' "$1" >"$RECORD.tmp" && mv "$RECORD.tmp" "$RECORD"
    info "ok       Parquet test corpus: $1 ($2)"
    exit 0
}

fail() {
    cat >&2 <<EOF

testdata.sh: ERROR: no Parquet test corpus ($1). Provide it in one of three ways:
  1. set VELOSTREAM_TEST_DATA to a copy of apache/parquet-testing (with data/ and bad_data/);
  2. place a copy at $SHARED;
  3. allow this machine to reach $URL, so that commit $COMMIT is
     cloned into $CACHE.
EOF
    exit 1
}

if [[ -n "${VELOSTREAM_TEST_DATA:-}" ]]; then
    [[ -d "$VELOSTREAM_TEST_DATA/data" ]] || fail "VELOSTREAM_TEST_DATA=$VELOSTREAM_TEST_DATA has no data/ directory"
    use "$(cd "$VELOSTREAM_TEST_DATA" && pwd)" "VELOSTREAM_TEST_DATA"
fi
if [[ -d "$SHARED/data" ]]; then
    use "$(cd "$SHARED" && pwd)" "the shared copy beside the repository"
fi
command -v git >/dev/null 2>&1 || fail "no shared copy, and git is not installed to clone one"
if [[ -d "$CACHE/data" && "$(git -C "$CACHE" rev-parse HEAD 2>/dev/null || true)" == "$COMMIT" ]]; then
    use "$CACHE" "cached clone at $COMMIT"
fi
info "cloning $URL at $COMMIT into $CACHE"
tmp="$CACHE.partial.$$"
rm -rf "$tmp" "$CACHE"
mkdir -p "$tmp"
if git -C "$tmp" init -q &&
    git -C "$tmp" remote add origin "$URL" &&
    git -C "$tmp" fetch -q --depth 1 origin "$COMMIT" &&
    git -C "$tmp" checkout -q FETCH_HEAD; then
    got="$(git -C "$tmp" rev-parse HEAD 2>/dev/null || true)"
    if [[ "$got" == "$COMMIT" && -d "$tmp/data" ]]; then
        mv "$tmp" "$CACHE"
        use "$CACHE" "cloned at $COMMIT"
    fi
    rm -rf "$tmp"
    fail "the clone of $URL is at '${got:-nothing}', not $COMMIT"
fi
rm -rf "$tmp"
fail "no shared copy, and cloning $URL failed (offline?)"
