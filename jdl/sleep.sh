# Parameters arrive as shell variables, as the client sent them: always quote them.
# " 2.50" is a valid xs:float that sleep(1) would refuse: it gets the number alone.
seconds=$(printf '%s' "$duration" | tr -d '[:space:]')
# min: 0 lets through only zeros with a minus sign ("-0", "-0.0"), which sleep(1)
# would take for an option.
case $seconds in -*) seconds=0 ;; esac
sleep "$seconds" || exit 1
printf 'OPUS job %s slept for %s seconds.\n' "$JOB_ID" "$seconds" > output.txt
