#!/usr/bin/env bash
# Runs every test. Integration tests use the RabbitMQ and PostgreSQL on loopback that scripts/start-services.sh
# starts (this script starts them when run as root; set JOBLOG_START_SERVICES=0 to skip). Without them the
# integration tests are ignored with a reason, except under CI=true, where they fail.
# Ends with one line: "tests: N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

if [ "${JOBLOG_START_SERVICES:-1}" = "1" ] && [ "$(id -u)" = "0" ]; then
  bash scripts/start-services.sh || echo "warning: could not start the test services" >&2
fi

log=$(mktemp)
dotnet build JobLog.sln -c Release -nologo -v q 2>&1 | tail -5
build=${PIPESTATUS[0]}
if [ "$build" -ne 0 ]; then
  echo "tests: 0 passed, 1 failed (the build failed)"
  exit 1
fi

dotnet test JobLog.sln -c Release --no-build --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# Sum the per-assembly summaries: "Passed!  - Failed:     0, Passed:    83, Skipped:     0, Total:    83".
read -r passed failed skipped < <(grep -E '(Passed|Failed)!\s+-\s+Failed:' "$log" | sed -E 's/.*Failed:\s*([0-9]+), Passed:\s*([0-9]+), Skipped:\s*([0-9]+).*/\2 \1 \3/' \
  | awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
# Name the failed tests again at the end, where a reader of the log's last lines (a CI summary) sees them.
if [ "$failed" -gt 0 ]; then
  echo "failed tests:"
  grep -aE -A3 '^\s+Failed [^!]' "$log" | head -120
fi
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1 # a test host crashed or a project failed without a summary line
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
