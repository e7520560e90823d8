#!/usr/bin/env bash
# Regenerates PublicAPI.Unshipped.txt of each library from its current public surface.
# PublicAPI.Shipped.txt is left alone: it lists what a release shipped (move lines there when releasing).
# Usage: scripts/public-api.sh [project.csproj ...]   (default: every library under src/ except the Worker)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -gt 0 ]; then
    projects=("$@")
else
    projects=()
    # Core first: the integrations build against it.
    for shipped in src/JobLog.Core/PublicAPI.Shipped.txt $(ls src/*/PublicAPI.Shipped.txt | grep -v '^src/JobLog.Core/'); do
        dir=$(dirname "$shipped")
        projects+=("$dir/$(basename "$dir").csproj")
    done
fi

for project in "${projects[@]}"; do
    dir=$(dirname "$project")
    unshipped="$dir/PublicAPI.Unshipped.txt"
    [ -f "$dir/PublicAPI.Shipped.txt" ] || printf '#nullable enable\n' > "$dir/PublicAPI.Shipped.txt"
    # Start empty so that removed members disappear too; RS0016's code fix then adds every public symbol not shipped.
    printf '#nullable enable\n' > "$unshipped"
    echo "public-api: $project"
    dotnet format analyzers "$project" --diagnostics RS0016 --severity warn -v q
    # dotnet format skips generated files (the EF migrations' designers); the build still reports their members.
    dotnet build "$project" -c Release -v q -nologo 2>&1 \
        | sed -n "s/.*\(warning\|error\) RS0016: Symbol '\(.*\)' is not part of the declared public API.*\[.*$(basename "$project")\]$/\2/p" \
        >> "$unshipped" || true
    # Sorted, one line per symbol, so that regenerating gives stable diffs.
    { head -n 1 "$unshipped"; tail -n +2 "$unshipped" | LC_ALL=C sort -u; } > "$unshipped.tmp"
    mv "$unshipped.tmp" "$unshipped"
done

echo "public-api: done; review with git diff -- 'src/*/PublicAPI.Unshipped.txt'"
