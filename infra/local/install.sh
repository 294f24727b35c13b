#!/usr/bin/env bash
# Installs everything VeloStream's tests and benchmark need on a Debian 12
# machine, without Docker. Idempotent: a second run only checks and exits.
#
#   infra/local/install.sh
#
# - Debian packages (apt-get update once, only when something is missing):
#   clickhouse-server, zookeeper + default-jre-headless (the local ClickHouse
#   cluster's coordinator), prometheus, docker-compose (compose validation only),
#   the C toolchain rdkafka's bundled librdkafka needs (libssl-dev for its
#   `ssl` feature), openssl (test certificates), curl, git, python3-venv.
# - The Parquet test corpus (infra/local/testdata.sh): VELOSTREAM_TEST_DATA, else
#   ../shared/testdata/parquet-testing beside the repository, else a pinned
#   shallow clone of apache/parquet-testing; fails at once when none works.
# - tansu 0.6.0 (Kafka-protocol broker) via `cargo install`, only when
#   `tansu --version` does not already report 0.6.0. VELOSTREAM_TANSU_DEBUG=1
#   builds it with --debug (about 6.5 min instead of 13 min on 2 cores).
# - A project-local Python venv at <repo>/.venv with infra/local/requirements.txt.
# - With --airflow only: Apache Airflow (infra/airflow/requirements.txt) in its
#   own venv at <repo>/.venv-airflow, for the DAG tests (about 2 min, ~300 MB;
#   the install time is printed). test.sh passes it, bench.sh does not.
#
# Needs root for apt-get (run as root or have sudo) and a Rust toolchain
# (rustup, rustc >= 1.85) for tansu and for VeloStream itself.
set -Eeuo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
REQUIREMENTS="$REPO_ROOT/infra/local/requirements.txt"
VENV="$REPO_ROOT/.venv"
TANSU_VERSION="0.6.0"
AIRFLOW=0
for arg in "$@"; do
    case "$arg" in
        --airflow) AIRFLOW=1 ;;
        *)
            printf 'install.sh: unknown option %s (known: --airflow)\n' "$arg" >&2
            exit 2
            ;;
    esac
done

step() { printf '\n==> %s\n' "$*" >&2; }
info() { printf '    %s\n' "$*" >&2; }
die() {
    printf '\ninstall.sh: ERROR: %s\n' "$*" >&2
    exit 1
}
trap 'printf "\ninstall.sh: FAILED (exit %s) at line %s: %s\n" "$?" "$LINENO" "$BASH_COMMAND" >&2' ERR

# ------------------------------------------------------------ Debian packages

# package -> command that proves it is usable (empty: dpkg status only)
APT_PACKAGES=(
    "clickhouse-server:clickhouse-server"
    "zookeeper:"
    "default-jre-headless:java"
    "prometheus:prometheus"
    "docker-compose:docker-compose"
    "gcc:gcc"
    "g++:g++"
    "make:make"
    "pkg-config:pkg-config"
    "zlib1g-dev:"
    "libssl-dev:"
    "openssl:openssl"
    "curl:curl"
    "git:git"
    "ca-certificates:"
    "python3:python3"
    "python3-venv:"
    "procps:ps"
    "man-db:man"
    "util-linux:flock"
)

pkg_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

cmd_available() {
    # /usr/sbin is not on every user's PATH (clickhouse-server lives there).
    command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/usr/bin/$1" ]]
}

step "Debian packages"
command -v dpkg-query >/dev/null 2>&1 || die "this installer supports Debian/Ubuntu (dpkg/apt-get) only"
missing=()
for entry in "${APT_PACKAGES[@]}"; do
    pkg="${entry%%:*}"
    cmd="${entry#*:}"
    if pkg_installed "$pkg"; then
        info "ok       $pkg"
    elif [[ -n "$cmd" && "$pkg" != python3-venv ]] && cmd_available "$cmd"; then
        # Provided some other way (e.g. python3 from pyenv, a tarball ClickHouse).
        info "ok       $pkg (found $cmd outside dpkg)"
    else
        info "missing  $pkg"
        missing+=("$pkg")
    fi
done
# python3-venv is only needed when the python3 in use lacks ensurepip.
if [[ " ${missing[*]} " == *" python3-venv "* ]] && command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    info "ok       python3-venv (python3 $(python3 -c 'import sys; print(sys.version.split()[0])') has venv + ensurepip)"
    kept=()
    for pkg in "${missing[@]}"; do [[ "$pkg" == python3-venv ]] || kept+=("$pkg"); done
    missing=("${kept[@]+"${kept[@]}"}")
fi
if ((${#missing[@]} > 0)); then
    SUDO=""
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "need root to install: ${missing[*]} (re-run as root)"
        SUDO="sudo"
    fi
    info "installing: ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    # The Debian package may start a system-wide server on 8123/9000; the
    # local launcher uses its own config and free ports, so it is not needed.
else
    info "all present; apt-get not run"
fi

# ------------------------------------------------------------ test corpus

step "Parquet test corpus (infra/local/testdata.sh)"
"$REPO_ROOT/infra/local/testdata.sh"

# ------------------------------------------------------------ Rust toolchain

step "Rust toolchain"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust with rustup (https://rustup.rs), rustc >= 1.85; Debian's cargo package is too old"
rustc_version="$(rustc --version | awk '{print $2}')"
IFS=. read -r rmaj rmin _ <<<"$rustc_version"
((rmaj > 1 || (rmaj == 1 && rmin >= 85))) || die "rustc $rustc_version is too old; need >= 1.85 (rustup update stable)"
info "ok       rustc $rustc_version, $(cargo --version)"

# ------------------------------------------------------------ tansu

step "tansu $TANSU_VERSION (Kafka-protocol broker)"
tansu_bin="$(command -v tansu 2>/dev/null || true)"
tansu_reported="$([[ -n "$tansu_bin" ]] && "$tansu_bin" --version 2>/dev/null || true)"
if [[ "$tansu_reported" == *"$TANSU_VERSION"* ]]; then
    info "ok       $tansu_bin ($tansu_reported)"
else
    [[ -z "$tansu_bin" ]] || info "found $tansu_bin reporting '${tansu_reported:-nothing}'; reinstalling $TANSU_VERSION"
    args=(install tansu --version "$TANSU_VERSION" --features dynostore --locked)
    if [[ "${VELOSTREAM_TANSU_DEBUG:-0}" == 1 ]]; then
        args+=(--debug)
        info "debug build (VELOSTREAM_TANSU_DEBUG=1), about 6.5 min on 2 cores"
    else
        info "release build, about 13 min on 2 cores (VELOSTREAM_TANSU_DEBUG=1 for a faster debug build)"
    fi
    [[ -z "$tansu_bin" ]] || args+=(--force)
    info "cargo ${args[*]}"
    cargo "${args[@]}"
    tansu_reported="$(tansu --version 2>&1 || true)"
    [[ "$tansu_reported" == *"$TANSU_VERSION"* ]] ||
        die "tansu installed but 'tansu --version' reports '$tansu_reported', expected $TANSU_VERSION"
    info "ok       $(command -v tansu) ($tansu_reported)"
fi

# ------------------------------------------------------------ Python venv

step "Python venv $VENV"
[[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"
if [[ ! -x "$VENV/bin/python" ]]; then
    info "creating venv with $(command -v python3)"
    python3 -m venv "$VENV"
fi

# True when every pinned requirement is installed at exactly that version.
requirements_satisfied() {
    local freeze line name want
    freeze="$("$VENV/bin/python" -m pip freeze 2>/dev/null | tr '[:upper:]_' '[:lower:]-')" || return 1
    while IFS= read -r line; do
        line="${line%%#*}"
        line="$(echo "$line" | tr -d '[:space:]' | tr '[:upper:]_' '[:lower:]-')"
        [[ -n "$line" ]] || continue
        name="${line%%==*}"
        want="${line#*==}"
        grep -qx "$name==$want" <<<"$freeze" || {
            info "needs    $name==$want"
            return 1
        }
    done <"$REQUIREMENTS"
}

if requirements_satisfied; then
    info "ok       $(grep -v '^#' "$REQUIREMENTS" | grep -v '^\s*$' | tr '\n' ' ')"
else
    "$VENV/bin/python" -m pip install --disable-pip-version-check -r "$REQUIREMENTS"
    requirements_satisfied || die "pip install finished but $REQUIREMENTS is still not satisfied"
    info "ok       requirements installed"
fi
"$VENV/bin/python" -c 'import pyarrow, confluent_kafka, chdb, polars, duckdb' || die "venv imports failed (pyarrow, confluent_kafka, chdb, polars, duckdb)"

# ------------------------------------------------------------ Airflow venv (--airflow)

if ((AIRFLOW)); then
    AIRFLOW_VENV="$REPO_ROOT/.venv-airflow"
    AIRFLOW_REQUIREMENTS="$REPO_ROOT/infra/airflow/requirements.txt"
    step "Apache Airflow venv $AIRFLOW_VENV (--airflow)"
    [[ -f "$AIRFLOW_REQUIREMENTS" ]] || die "missing $AIRFLOW_REQUIREMENTS"
    want="$(grep -m1 '^apache-airflow==' "$AIRFLOW_REQUIREMENTS")"
    have="$([[ -x "$AIRFLOW_VENV/bin/python" ]] && "$AIRFLOW_VENV/bin/python" -m pip freeze 2>/dev/null | grep -ix "$want" || true)"
    if [[ -n "$have" && -x "$AIRFLOW_VENV/bin/airflow" ]]; then
        info "ok       $have"
    else
        t0=$SECONDS
        [[ -x "$AIRFLOW_VENV/bin/python" ]] || python3 -m venv "$AIRFLOW_VENV"
        "$AIRFLOW_VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$AIRFLOW_REQUIREMENTS"
        "$AIRFLOW_VENV/bin/python" -m pip freeze 2>/dev/null | grep -qix "$want" ||
            die "pip install finished but $want is not installed in $AIRFLOW_VENV"
        info "ok       $want installed in $((SECONDS - t0)) s ($(du -sh "$AIRFLOW_VENV" | cut -f1))"
    fi
fi

step "done: clickhouse-server, zookeeper, prometheus, tansu $TANSU_VERSION, the test corpus and $VENV are ready"
