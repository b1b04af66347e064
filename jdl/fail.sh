printf '%s\n' "$message" >&2
exit 1
