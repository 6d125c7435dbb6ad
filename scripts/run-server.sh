#!/usr/bin/env bash
# Fresh machine to running service: installs what is missing, builds, starts an1d in the
# foreground (gRPC on 127.0.0.1:50051, metrics on 127.0.0.1:9464; --listen 0.0.0.0:50051 for
# other hosts). Arguments go to an1d.
# Without a usable GPU, an1d serves on the CPU and says so in its log.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/build.sh
exec build/bin/an1d "$@"
