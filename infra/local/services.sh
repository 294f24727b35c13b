#!/usr/bin/env bash
# Local VeloStream services without Docker: a tansu Kafka broker, a
# ClickHouse server and a Prometheus server, each on a free 127.0.0.1 port with
# its data under a state directory.
#
#   infra/local/services.sh start|stop|status <kafka|clickhouse|prometheus|all>
#                           [--state-dir DIR] [--owner-pid PID] [--timeout SECONDS]
#                           [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
#
# stdout carries only KEY=VALUE endpoint lines (for scripts and for
# velostream::local); human-readable logs go to stderr.
#
#   VELOSTREAM_BROKERS=127.0.0.1:PORT
#   VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:PORT
#   VELOSTREAM_PROMETHEUS_URL=http://127.0.0.1:PORT
#   VELOSTREAM_PROMETHEUS_TARGETS=DIR/prometheus/targets.json   (file_sd target file)
#   VELOSTREAM_STARTED=<svc>          (only when this call started it; absent on reuse)
#
# With --tls-cert/--tls-key (server certificate and key, PEM):
# - kafka serves TLS only (security.protocol=ssl) on the printed port, through
#   infra/local/tansu_tls_proxy.py in front of tansu (tansu 0.6.0 cannot take
#   --cert and --key together);
# - clickhouse keeps its plain HTTP port (health checks) and also serves
#   HTTPS, printed as VELOSTREAM_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:PORT.
# --tls-client-ca: Kafka clients that present a certificate must present one
#   signed by this CA (clients without one are still accepted).
# A running instance is reused only when its TLS setting matches the request.
#
# Behaviour:
# - start is idempotent: a healthy running instance is reused and its
#   endpoints are printed again; a stale pid file (process gone) is replaced.
# - stop is idempotent: it stops the whole process group (SIGTERM, wait, then
#   SIGKILL) and removes the pid files.
# - --owner-pid PID starts a watchdog that stops the service once PID exits
#   (tests pass their own pid so services die with the test process).
# - Exit status: 0 ok, 1 failure, 2 usage error, 3 a service binary is not
#   installed (run infra/local/install.sh).
#
# Layout of the state directory (default <repo>/.velostream/local):
#   <svc>/pid  <svc>/port  <svc>/endpoints  <svc>/log  <svc>/watchdog.pid  <svc>/lock
#   clickhouse/{config.xml,users.xml,data/,tmp/,...}   prometheus/{prometheus.yml,targets.json,targets.d/,data/}
set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$(dirname "$SCRIPT_PATH")/../.." && pwd)"
INSTALL_HINT="run infra/local/install.sh (as root) to install it"

log() { printf '[services] %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage() {
    sed -n '2,13p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- utilities

now_ms() { date +%s%3N; }

# Prints a free TCP port on 127.0.0.1 (the kernel picks it; the tiny race
# until the service binds is handled by retrying the start).
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
        return
    fi
    local port
    for _ in $(seq 1 200); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found on 127.0.0.1"
}

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_get URL: prints the body; fails on HTTP errors or timeouts.
http_get() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 3 "$1" 2>/dev/null
    else
        python3 - "$1" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    sys.stdout.write(r.read().decode())
PY
    fi
}

# Start time of a process (field 22 of /proc/PID/stat), to detect pid reuse.
proc_start_time() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    # After the comm field: state is field 1 here, starttime is field 20.
    # shellcheck disable=SC2086
    set -- $stat
    echo "${20}"
}

# True when PID exists and is not a zombie.
pid_alive() {
    local pid="$1" state
    [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
    state="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    state="${state##*) }"
    [[ "${state:0:1}" != "Z" ]]
}

# True when any non-zombie process is in process group PGID.
group_alive() {
    ps -e -o pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# ------------------------------------------------------------ service table

ALL_SERVICES=(kafka clickhouse prometheus)

# Prints the binary of a service, or exits with status 3.
service_bin() {
    local svc="$1" bin=""
    case "$svc" in
        kafka)
            bin="${VELOSTREAM_TANSU_BIN:-}"
            [[ -n "$bin" ]] || bin="$(command -v tansu 2>/dev/null || true)"
            [[ -n "$bin" || ! -x "$HOME/.cargo/bin/tansu" ]] || bin="$HOME/.cargo/bin/tansu"
            ;;
        clickhouse)
            bin="${VELOSTREAM_CLICKHOUSE_BIN:-}"
            [[ -n "$bin" ]] || bin="$(command -v clickhouse-server 2>/dev/null || true)"
            [[ -n "$bin" || ! -x /usr/sbin/clickhouse-server ]] || bin=/usr/sbin/clickhouse-server
            [[ -n "$bin" || ! -x /usr/bin/clickhouse-server ]] || bin=/usr/bin/clickhouse-server
            ;;
        prometheus)
            bin="${VELOSTREAM_PROMETHEUS_BIN:-}"
            [[ -n "$bin" ]] || bin="$(command -v prometheus 2>/dev/null || true)"
            ;;
    esac
    if [[ -z "$bin" || ! -x "$bin" ]]; then
        log "error: $svc: binary not installed ($(service_pkg "$svc")): $INSTALL_HINT"
        exit 3
    fi
    echo "$bin"
}

service_pkg() {
    case "$1" in
        kafka) echo "tansu 0.6.0, cargo install" ;;
        clickhouse) echo "clickhouse-server" ;;
        prometheus) echo "prometheus" ;;
    esac
}

# Name fragment expected in /proc/PID/cmdline (guards against pid reuse).
service_proc_name() {
    case "$1" in
        kafka) echo "tansu" ;;
        clickhouse) echo "clickhouse" ;;
        prometheus) echo "prometheus" ;;
    esac
}

svc_dir() { echo "$STATE_DIR/$1"; }

# Prints the pid recorded for SVC when that process is alive and is the service.
running_pid() {
    local svc="$1" dir pid cmdline
    dir="$(svc_dir "$svc")"
    [[ -f "$dir/pid" ]] || return 1
    pid="$(cat "$dir/pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    pid_alive "$pid" || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"$(service_proc_name "$svc")"* ]] || return 1
    echo "$pid"
}

# ------------------------------------------------------------ health checks

healthy() {
    local svc="$1" port="$2"
    case "$svc" in
        clickhouse) [[ "$(http_get "http://127.0.0.1:$port/ping")" == "Ok." ]] ;;
        prometheus) http_get "http://127.0.0.1:$port/-/ready" >/dev/null ;;
        kafka)
            if [[ "$(tls_mode kafka)" == tls ]]; then
                tcp_open "$port" && kafka_metadata_ok "$port" ssl
            else
                tcp_open "$port" && kafka_metadata_ok "$port"
            fi
            ;;
    esac
}

# A real Kafka metadata request through the project venv's confluent-kafka
# when that venv exists (it is what install.sh creates); a TCP connect
# otherwise.
kafka_metadata_ok() {
    local py="$REPO_ROOT/.venv/bin/python" protocol="${2:-plaintext}"
    [[ -x "$py" ]] || return 0
    "$py" - "127.0.0.1:$1" "$protocol" <<'PY' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
conf = {"bootstrap.servers": sys.argv[1], "security.protocol": sys.argv[2]}
if sys.argv[2] == "ssl":
    # Liveness only: the certificate is checked by the clients under test.
    conf["enable.ssl.certificate.verification"] = "false"
md = AdminClient(conf).list_topics(timeout=3)
sys.exit(0 if md.brokers else 1)
PY
}

# "tls" when SVC's instance in the state directory was started with TLS.
tls_mode() {
    if [[ -f "$(svc_dir "$1")/tls" ]]; then echo tls; else echo plain; fi
}

requested_tls_mode() {
    if [[ -n "$TLS_CERT" ]]; then echo tls; else echo plain; fi
}

python_bin() {
    if [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
        echo "$REPO_ROOT/.venv/bin/python"
    else
        command -v python3 || die "python3 is needed for the Kafka TLS proxy: $INSTALL_HINT"
    fi
}

# ------------------------------------------------------------ configuration

write_clickhouse_config() {
    local dir="$1" http_port="$2" tcp_port="$3" https_port="${4:-}" tls_xml=""
    if [[ -n "$https_port" ]]; then
        tls_xml="<https_port>$https_port</https_port>
    <openSSL>
        <server>
            <certificateFile>$TLS_CERT</certificateFile>
            <privateKeyFile>$TLS_KEY</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>"
    fi
    mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$dir/logs"
    cat >"$dir/users.xml" <<'XML'
<?xml version="1.0"?>
<!-- Generated by infra/local/services.sh: local test server, default user without password, 127.0.0.1 only. -->
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
            <use_uncompressed_cache>0</use_uncompressed_cache>
            <load_balancing>random</load_balancing>
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
XML
    cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<!-- Generated by infra/local/services.sh. Works with ClickHouse 18.16 and newer. -->
<yandex>
    <logger>
        <level>information</level>
        <log>$dir/logs/clickhouse-server.log</log>
        <errorlog>$dir/logs/clickhouse-server.err.log</errorlog>
        <size>100M</size>
        <count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$http_port</http_port>
    <tcp_port>$tcp_port</tcp_port>
    $tls_xml
    <max_connections>1024</max_connections>
    <keep_alive_timeout>10</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>536870912</mark_cache_size>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <format_schema_path>$dir/format_schemas/</format_schema_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
</yandex>
XML
}

write_prometheus_config() {
    local dir="$1"
    mkdir -p "$dir/data" "$dir/targets.d"
    # Scrape targets: the bench writes targets.json, tests write one file
    # each under targets.d/ (no write races between parallel tests).
    [[ -f "$dir/targets.json" ]] || echo '[]' >"$dir/targets.json"
    cat >"$dir/prometheus.yml" <<YML
# Generated by infra/local/services.sh.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: velostream
    file_sd_configs:
      - files:
          - $dir/targets.json
          - $dir/targets.d/*.json
        refresh_interval: 1s
YML
}

# ------------------------------------------------------------ start / stop

# Launches the service in its own session (process group = pid) and prints
# the pid. stdout/stderr go to the service log so that callers reading this
# script's stdout see EOF when the script exits.
launch() {
    local dir="$1"
    shift
    setsid "$@" </dev/null >>"$dir/log" 2>&1 9>&- &
    echo $!
}

# Writes the endpoint lines of SVC for its main PORT.
write_endpoints() {
    local svc="$1" dir="$2" port="$3"
    case "$svc" in
        kafka) echo "VELOSTREAM_BROKERS=127.0.0.1:$port" ;;
        clickhouse)
            echo "VELOSTREAM_CLICKHOUSE_URL=http://127.0.0.1:$port"
            if [[ -f "$dir/tls" ]]; then
                echo "VELOSTREAM_CLICKHOUSE_HTTPS_URL=https://127.0.0.1:$(cat "$dir/https_port")"
            fi
            ;;
        prometheus)
            echo "VELOSTREAM_PROMETHEUS_URL=http://127.0.0.1:$port"
            echo "VELOSTREAM_PROMETHEUS_TARGETS=$dir/targets.json"
            ;;
    esac >"$dir/endpoints.tmp"
    mv "$dir/endpoints.tmp" "$dir/endpoints"
}

# One attempt at starting SVC; prints the pid. Returns 1 when the process
# died during startup (e.g. port taken between probe and bind; retryable),
# 2 when it did not become healthy in time (it is stopped).
start_attempt() {
    local svc="$1" bin="$2" dir port pid deadline
    dir="$(svc_dir "$svc")"
    port="$(free_port)"
    rm -f "$dir/tls"
    [[ -z "$TLS_CERT" ]] || echo tls >"$dir/tls"
    case "$svc" in
        kafka)
            if [[ -n "$TLS_CERT" ]]; then
                # TLS on $port, relayed to tansu on an inner plain port; tansu
                # advertises $port so clients always come back through TLS.
                local inner
                inner="$(free_port)"
                pid="$(launch "$dir" "$(python_bin)" "$REPO_ROOT/infra/local/tansu_tls_proxy.py" \
                    --listen "127.0.0.1:$port" --upstream "127.0.0.1:$inner" \
                    --cert "$TLS_CERT" --key "$TLS_KEY" \
                    ${TLS_CLIENT_CA:+--client-ca "$TLS_CLIENT_CA"} -- "$bin" broker \
                    --listener-url "tcp://127.0.0.1:$inner" \
                    --advertised-listener-url "tcp://127.0.0.1:$port" \
                    --storage-engine "memory://tansu/")"
            else
                # tansu 0.6.0 opens no other port. Memory storage: topics and
                # messages are gone after a restart.
                pid="$(launch "$dir" "$bin" broker \
                    --listener-url "tcp://127.0.0.1:$port" \
                    --advertised-listener-url "tcp://127.0.0.1:$port" \
                    --storage-engine "memory://tansu/")"
            fi
            ;;
        clickhouse)
            local tcp_port https_port=""
            tcp_port="$(free_port)"
            if [[ -n "$TLS_CERT" ]]; then
                https_port="$(free_port)"
                echo "$https_port" >"$dir/https_port"
            fi
            write_clickhouse_config "$dir" "$port" "$tcp_port" "$https_port"
            if [[ "$(basename "$bin")" == "clickhouse" ]]; then
                pid="$(launch "$dir" "$bin" server "--config-file=$dir/config.xml")"
            else
                pid="$(launch "$dir" "$bin" "--config-file=$dir/config.xml")"
            fi
            ;;
        prometheus)
            write_prometheus_config "$dir"
            pid="$(launch "$dir" "$bin" \
                "--config.file=$dir/prometheus.yml" \
                "--storage.tsdb.path=$dir/data" \
                "--storage.tsdb.retention.time=2d" \
                "--web.listen-address=127.0.0.1:$port" \
                --web.enable-lifecycle)"
            ;;
    esac
    echo "$pid" >"$dir/pid"
    echo "$port" >"$dir/port"
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    while ! healthy "$svc" "$port"; do
        if ! pid_alive "$pid"; then
            log "$svc: process $pid exited during startup; last log lines:"
            tail -n 15 "$dir/log" >&2 || true
            [[ "$svc" != clickhouse ]] || tail -n 15 "$dir/logs/clickhouse-server.err.log" >&2 2>/dev/null || true
            rm -f "$dir/pid"
            return 1
        fi
        if (($(now_ms) > deadline)); then
            log "$svc: not healthy within ${TIMEOUT}s (pid $pid, port $port); last log lines:"
            tail -n 15 "$dir/log" >&2 || true
            stop_group "$svc" "$pid"
            rm -f "$dir/pid"
            return 2
        fi
        sleep 0.2
    done
    write_endpoints "$svc" "$dir" "$port"
    echo "$pid"
}

start_one() {
    local svc="$1" dir bin pid t0 attempt rc
    dir="$(svc_dir "$svc")"
    mkdir -p "$dir"
    exec 9>"$dir/lock"
    flock 9
    if pid="$(running_pid "$svc")"; then
        if [[ "$(tls_mode "$svc")" != "$(requested_tls_mode)" ]]; then
            exec 9>&-
            die "$svc: the instance running in $STATE_DIR (pid $pid) was started $(tls_mode "$svc"), not $(requested_tls_mode) as requested; stop it first or use another --state-dir"
        fi
        if [[ -f "$dir/port" && -f "$dir/endpoints" ]] && healthy "$svc" "$(cat "$dir/port")"; then
            log "$svc: already running (pid $pid), reusing it"
            cat "$dir/endpoints"
            exec 9>&-
            return 0
        fi
        log "$svc: pid $pid is running but not healthy; restarting it"
        stop_group "$svc" "$pid"
        rm -f "$dir/pid"
    elif [[ -f "$dir/pid" ]]; then
        log "$svc: stale pid file (pid $(cat "$dir/pid" 2>/dev/null) is not running); replacing it"
        rm -f "$dir/pid" "$dir/endpoints"
    fi
    bin="$(service_bin "$svc")"
    t0=$(now_ms)
    for attempt in 1 2 3; do
        rc=0
        pid="$(start_attempt "$svc" "$bin")" || rc=$?
        if ((rc == 2)); then
            exec 9>&-
            die "$svc did not become healthy within ${TIMEOUT}s; see $dir/log"
        fi
        if ((rc == 0)); then
            log "$svc: started pid $pid in $(($(now_ms) - t0)) ms ($(tr '\n' ' ' <"$dir/endpoints"))"
            if [[ -n "$OWNER_PID" ]]; then
                start_watchdog "$svc"
            fi
            cat "$dir/endpoints"
            echo "VELOSTREAM_STARTED=$svc"
            exec 9>&-
            return 0
        fi
        log "$svc: start attempt $attempt failed"
    done
    exec 9>&-
    die "$svc: could not start; see $dir/log"
}

# SIGTERM to the process group, wait up to 15 s, then SIGKILL.
stop_group() {
    local svc="$1" pid="$2" i
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 150); do
        group_alive "$pid" || return 0
        sleep 0.1
    done
    log "$svc: process group $pid still alive after 15 s; sending SIGKILL"
    kill -KILL -- "-$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        group_alive "$pid" || return 0
        sleep 0.1
    done
    log "$svc: warning: process group $pid survived SIGKILL"
}

stop_one() {
    local svc="$1" dir pid wpid
    dir="$(svc_dir "$svc")"
    if [[ ! -d "$dir" ]]; then
        log "$svc: not running (no state in $dir)"
        return 0
    fi
    exec 9>"$dir/lock"
    flock 9
    if [[ -z "${VELOSTREAM_SERVICES_WATCHDOG:-}" && -f "$dir/watchdog.pid" ]]; then
        wpid="$(cat "$dir/watchdog.pid" 2>/dev/null || true)"
        if [[ "$wpid" =~ ^[0-9]+$ ]] && pid_alive "$wpid"; then
            kill -TERM -- "-$wpid" 2>/dev/null || kill -TERM "$wpid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/watchdog.pid"
    if pid="$(running_pid "$svc")"; then
        stop_group "$svc" "$pid"
        log "$svc: stopped pid $pid"
    elif [[ -f "$dir/pid" ]]; then
        log "$svc: stale pid file removed (pid $(cat "$dir/pid" 2>/dev/null) was not running)"
    else
        log "$svc: not running"
    fi
    rm -f "$dir/pid" "$dir/endpoints"
    exec 9>&-
}

status_one() {
    local svc="$1" dir pid
    dir="$(svc_dir "$svc")"
    if pid="$(running_pid "$svc")" && [[ -f "$dir/port" ]] && healthy "$svc" "$(cat "$dir/port")"; then
        log "$svc: running, pid $pid"
        cat "$dir/endpoints"
        return 0
    elif [[ -n "${pid:-}" ]]; then
        log "$svc: pid $pid running but not healthy"
    elif [[ -f "$dir/pid" ]]; then
        log "$svc: stopped (stale pid file)"
    else
        log "$svc: stopped"
    fi
    return 1
}

# ------------------------------------------------------------ watchdog

start_watchdog() {
    local svc="$1" dir start
    dir="$(svc_dir "$svc")"
    start="$(proc_start_time "$OWNER_PID")" || die "--owner-pid $OWNER_PID: no such process"
    setsid bash "$SCRIPT_PATH" __watchdog "$svc" "$OWNER_PID" "$start" "$STATE_DIR" \
        </dev/null >>"$dir/watchdog.log" 2>&1 9>&- &
    echo $! >"$dir/watchdog.pid"
    log "$svc: watchdog pid $! stops it when pid $OWNER_PID exits"
}

# __watchdog SVC OWNER_PID OWNER_START STATE_DIR
run_watchdog() {
    local svc="$1" owner="$2" start="$3" state="$4"
    while [[ "$(proc_start_time "$owner" 2>/dev/null || true)" == "$start" ]] && pid_alive "$owner"; do
        sleep 0.5
    done
    log "$(date -Is) owner pid $owner exited; stopping $svc"
    VELOSTREAM_SERVICES_WATCHDOG=1 exec bash "$SCRIPT_PATH" stop "$svc" --state-dir "$state"
}

# ------------------------------------------------------------ main

if [[ "${1:-}" == "__watchdog" ]]; then
    shift
    run_watchdog "$@"
    exit 0
fi

ACTION="${1:-}"
TARGET="${2:-}"
[[ -n "$ACTION" && -n "$TARGET" ]] || usage
shift 2
STATE_DIR="$REPO_ROOT/.velostream/local"
OWNER_PID=""
TLS_CERT=""
TLS_KEY=""
TLS_CLIENT_CA=""
TIMEOUT="${VELOSTREAM_SERVICES_TIMEOUT:-60}"
while (($#)); do
    case "$1" in
        --state-dir) STATE_DIR="${2:?--state-dir needs a value}"; shift 2 ;;
        --state-dir=*) STATE_DIR="${1#*=}"; shift ;;
        --owner-pid) OWNER_PID="${2:?--owner-pid needs a value}"; shift 2 ;;
        --owner-pid=*) OWNER_PID="${1#*=}"; shift ;;
        --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
        --timeout=*) TIMEOUT="${1#*=}"; shift ;;
        --tls-cert) TLS_CERT="${2:?--tls-cert needs a value}"; shift 2 ;;
        --tls-key) TLS_KEY="${2:?--tls-key needs a value}"; shift 2 ;;
        --tls-client-ca) TLS_CLIENT_CA="${2:?--tls-client-ca needs a value}"; shift 2 ;;
        -h | --help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[[ -z "$OWNER_PID" || "$OWNER_PID" =~ ^[0-9]+$ ]] || die "--owner-pid must be a pid, got '$OWNER_PID'"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be whole seconds, got '$TIMEOUT'"
[[ -z "$TLS_CERT" && -z "$TLS_KEY" || -n "$TLS_CERT" && -n "$TLS_KEY" ]] || die "--tls-cert and --tls-key go together"
[[ -z "$TLS_CLIENT_CA" || -n "$TLS_CERT" ]] || die "--tls-client-ca needs --tls-cert and --tls-key"
for f in "$TLS_CERT" "$TLS_KEY" "$TLS_CLIENT_CA"; do
    [[ -z "$f" || -r "$f" ]] || die "TLS file $f is not readable"
done
[[ -z "$TLS_CERT" ]] || TLS_CERT="$(cd "$(dirname "$TLS_CERT")" && pwd)/$(basename "$TLS_CERT")"
[[ -z "$TLS_KEY" ]] || TLS_KEY="$(cd "$(dirname "$TLS_KEY")" && pwd)/$(basename "$TLS_KEY")"
[[ -z "$TLS_CLIENT_CA" ]] || TLS_CLIENT_CA="$(cd "$(dirname "$TLS_CLIENT_CA")" && pwd)/$(basename "$TLS_CLIENT_CA")"
mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd)"

case "$TARGET" in
    all) SERVICES=("${ALL_SERVICES[@]}") ;;
    kafka | clickhouse | prometheus) SERVICES=("$TARGET") ;;
    *) log "unknown service: $TARGET"; usage ;;
esac

case "$ACTION" in
    start)
        # Check every binary first so a missing one fails before anything starts.
        for svc in "${SERVICES[@]}"; do service_bin "$svc" >/dev/null; done
        for svc in "${SERVICES[@]}"; do start_one "$svc"; done
        ;;
    stop)
        for svc in "${SERVICES[@]}"; do stop_one "$svc"; done
        ;;
    status)
        rc=0
        for svc in "${SERVICES[@]}"; do status_one "$svc" || rc=1; done
        exit "$rc"
        ;;
    *) log "unknown action: $ACTION"; usage ;;
esac
