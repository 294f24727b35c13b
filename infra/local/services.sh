#!/usr/bin/env bash
# Local services without Docker, a wrapper around `velostream local` (the
# supervisor lives in the engine: engine/src/local/):
#
#   infra/local/services.sh start|stop|status [kafka|clickhouse|zookeeper|clickhouse-cluster|prometheus|all]
#       [--state-dir DIR] [--owner-pid PID] [--timeout S] [--shards N --replicas N]
#       [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
#
# stdout: VELOSTREAM_*=… endpoint lines; logs on stderr. See `velostream local --help`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/velostream-bin.sh"
exec "$VELOSTREAM_BIN" local "$@"
