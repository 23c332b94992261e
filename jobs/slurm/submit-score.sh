#!/bin/bash
# Submit the scoring array and its merge; the merge starts only when every shard succeeded.
set -euo pipefail
# Run it from the directory the data paths are relative to; extra arguments go to both sbatch calls.
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p .
ARRAY_ID=$(sbatch --parsable "$@" "$HERE/score-array.sbatch")
ARRAY_ID=${ARRAY_ID%%;*}
MERGE_ID=$(sbatch --parsable --dependency=afterok:"$ARRAY_ID" "$@" "$HERE/score-merge.sbatch")
echo "score array: $ARRAY_ID  merge: ${MERGE_ID%%;*}"
