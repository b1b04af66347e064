# The analysis is Python run by the server's interpreter ($JOB_PYTHON), which has logprov.
# The input's name and the parameter are read from the environment, never pasted into the
# program text; the provenance log goes to $JOB_DIR/prov.log, where OPUS looks for it.
export TEXT_PATH="$input"
"${JOB_PYTHON:-python3}" - <<'PYTHON' || exit 1
import collections
import csv
import getpass
import os
import re

from logprov.capture import ProvCapture

# logprov names the operator with os.getlogin(), which fails without a controlling
# terminal (any batch job): the user the job runs as is what it means.
os.getlogin = getpass.getuser

input_path = os.path.abspath(os.environ["TEXT_PATH"])
min_length = int(os.environ["min_length"])
counts_path = os.path.abspath("word_counts.csv")

# What logprov records of each step: the names are the global variables it reads (it
# looks them up in the module's globals when a traced function is called).
definitions = {
    "activity_descriptions": {
        "read_words": {
            "description": "Split the text into lower-case words",
            "parameters": [{"name": "min_length", "value": "min_length"}],
            "usage": [
                {"role": "text", "entity_description": "TextFile",
                 "value": "input_path", "location": "input_path"},
            ],
            "generation": [],
        },
        "count_words": {
            "description": "Count the occurrences of each word",
            "usage": [{"role": "words", "entity_description": "WordList", "value": "words"}],
            "generation": [
                {"role": "counts", "entity_description": "CountsFile",
                 "value": "counts_path", "location": "counts_path"},
            ],
        },
    },
    "entity_descriptions": {
        "TextFile": {"type": "File", "contentType": "text/plain"},
        "WordList": {"type": "PythonObject"},
        "CountsFile": {"type": "File", "contentType": "text/csv"},
    },
    "agents": {},
}
config = {
    "capture": True,
    "hash_type": "sha256",
    "log_filename": os.path.join(os.environ.get("JOB_DIR", "."), "prov.log"),
    # The steps' arguments are described above; logging them as well would add
    # entities without a role. The words a step returns are its "result" entity.
    "log_args": False,
    "log_kwargs": False,
    "log_returned_result": True,
}
capture = ProvCapture(definitions=definitions, config=config)


@capture.trace
def read_words(path, shortest):
    with open(path, encoding="utf-8", errors="replace") as text:
        # Letters only: logprov writes the words into its log as a Python repr that it
        # reads back as YAML, which a quote inside a word would break.
        found = re.findall(r"[^\W\d_]+", text.read().lower())
    # A tuple, not a list: logprov identifies the value by its hash.
    return tuple(word for word in found if len(word) >= shortest)


@capture.trace
def count_words(found, path):
    counts = collections.Counter(found)
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["word", "count"])
        for word, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            writer.writerow([word, count])
    # Nothing returned: the counts file is the result, an entity of its own.


words = read_words(input_path, min_length)
count_words(words, counts_path)
print(f"{len(words)} words counted into {os.path.basename(counts_path)}")
PYTHON
