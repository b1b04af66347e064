# $input holds the name of the uploaded file, in the current directory.
cp -- "$input" output.txt || exit 1
# Start the text on a new line, even when the input does not end with a newline
# ($(...) drops a trailing newline, so it is empty exactly when the last byte is one).
if [ -s output.txt ] && [ -n "$(tail -c 1 output.txt)" ]; then
    printf '\n' >> output.txt
fi
printf '%s\n' "$text" >> output.txt
