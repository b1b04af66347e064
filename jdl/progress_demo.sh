# Parameters arrive as shell variables: steps and step_duration in one spelling
# (normalize: true), label as the client wrote it (always quote it).
# opus_progress PERCENT [MESSAGE] reports how far the job got (a number from 0 to 100,
# and a line of text). It returns at once and never fails the job, even with set -e or
# when the server cannot be reached; the server keeps the latest report.
set -euo pipefail
opus_progress 0 "starting"
for ((i = 1; i <= steps; i++)); do
  sleep "$step_duration"
  printf '%s %d of %d done\n' "$label" "$i" "$steps" >> output.txt
  opus_progress "$((100 * i / steps))" "$label $i/$steps"
done
