# Sourced by the bench scripts: local services started on demand.
# `start_service NAME` runs `infra/local/services.sh start NAME`, exports its
# VELOSTREAM_*= lines and records in `started` what it started (not what it
# reused), so the caller stops only those on exit (`stop_started`).
started=()
start_service() {
    local line
    while IFS= read -r line; do
        case "$line" in
            VELOSTREAM_STARTED=*) started+=("${line#*=}") ;;
            VELOSTREAM_*=*) export "${line?}" ;;
        esac
    done < <(infra/local/services.sh start "$1")
}
stop_started() {
    local svc
    for svc in "${started[@]}"; do
        infra/local/services.sh stop "$svc" >/dev/null 2>&1 || true
    done
}
