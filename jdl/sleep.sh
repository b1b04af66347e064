# Parameters arrive as shell variables; always quote them.
sleep "$duration" || exit 1
printf 'OPUS job %s slept for %s seconds.\n' "$JOB_ID" "$duration" > output.txt
