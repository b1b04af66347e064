"""Reading and writing definitions: texts in the three forms, and files on disk.

A definition file is NAME.yml (or .yaml, .json, .xml, .vot). Its bash script is either
inline (the ``script`` field) or in NAME.sh next to it, never both: an admin editing one
while the other is used would be a silent surprise.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from .errors import JDLError
from .model import JobDefinition
from .rules import JOB_NAME, validate_definition
from .votable import dump_votable, parse_votable
from .yaml_json import dump_json, dump_yaml, parse_json, parse_yaml

FORMATS: tuple[str, ...] = ("yaml", "json", "votable")
EXTENSIONS: dict[str, str] = {
    ".yml": "yaml",
    ".yaml": "yaml",
    ".json": "json",
    ".xml": "votable",
    ".vot": "votable",
}
SAVE_EXTENSIONS: dict[str, str] = {"yaml": ".yml", "json": ".json", "votable": ".xml"}
# Far above any real definition; bounds the work an uploaded text can cause.
MAX_DEFINITION_BYTES = 1_000_000


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise JDLError(f"unknown format {fmt!r} (use one of {', '.join(FORMATS)})")


def _parse_unchecked(data: bytes, fmt: str) -> JobDefinition:
    _check_format(fmt)
    if len(data) > MAX_DEFINITION_BYTES:
        raise JDLError(f"the definition is larger than {MAX_DEFINITION_BYTES} bytes")
    if fmt == "votable":
        return parse_votable(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise JDLError(f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    return parse_yaml(text) if fmt == "yaml" else parse_json(text)


def _with_script(jd: JobDefinition, script: str | None, script_source: str) -> JobDefinition:
    if script is None:
        return jd
    if jd.script:
        raise JDLError(
            f"the script is given both inline and in {script_source}; keep only one",
            field="script",
        )
    return replace(jd, script=script)


def _utf8(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:  # a lone surrogate
        raise JDLError(f"not UTF-8 text ({error.reason} at character {error.start})") from None


def parse_definition(
    text: str | bytes, fmt: str, source: str = "<string>", *, script: str | None = None
) -> JobDefinition:
    """Read and check a definition given as text in ``fmt`` ("yaml", "json" or "votable").

    ``script`` supplies the script when it is kept apart from the definition (it is an
    error if the definition has one inline too). Raises JDLError naming ``source``.
    """
    try:
        jd = _with_script(_parse_unchecked(_utf8(text), fmt), script, "a separate script")
        return validate_definition(jd)
    except JDLError as error:
        raise error.with_source(source) from None


def dump_definition(jd: JobDefinition, fmt: str, *, include_script: bool = True) -> str:
    """The text of a definition in ``fmt``; the script is inline unless told otherwise."""
    _check_format(fmt)
    if fmt == "yaml":
        return dump_yaml(jd, include_script=include_script)
    if fmt == "json":
        return dump_json(jd, include_script=include_script)
    return dump_votable(jd, include_script=include_script)


def format_of(path: Path) -> str:
    """The format of a definition file, from its extension."""
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise JDLError(
            f"unknown extension {path.suffix!r} (use one of {', '.join(EXTENSIONS)})",
            source=str(path),
        )
    return fmt


def _stem_matches(path: Path, name: str) -> bool:
    # The original OPUS named VOTable definitions NAME_vot.xml.
    return path.stem == name or (path.suffix.lower() == ".xml" and path.stem == f"{name}_vot")


def load_definition(path: Path) -> JobDefinition:
    """Read and check a definition file, with its script from NAME.sh when not inline.

    The definition's name must be the file's stem. Raises JDLError naming the file.
    """
    path = Path(path)
    source = str(path)
    fmt = format_of(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise JDLError(f"cannot read the file: {error.strerror}", source=source) from None
    try:
        jd = _parse_unchecked(data, fmt)
        # Checked before the name is used to build the script's path.
        if not isinstance(jd.name, str) or not JOB_NAME.fullmatch(jd.name):
            validate_definition(jd)  # raises, explaining the name rule
        if not _stem_matches(path, jd.name):
            raise JDLError(
                f"{jd.name!r} differs from the file name: rename the file "
                f"{jd.name}{path.suffix} or change the name",
                field="name",
            )
        script_path = path.with_name(f"{jd.name}.sh")
        jd = _with_script(jd, _read_script(script_path), script_path.name)
        return validate_definition(jd)
    except JDLError as error:
        raise error.with_source(source) from None


def _read_script(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as error:
        raise JDLError(f"{path.name} is not UTF-8 text ({error.reason})", field="script") from None
    except OSError as error:
        raise JDLError(f"cannot read {path.name}: {error.strerror}", field="script") from None


def _write_atomically(path: Path, text: str) -> None:
    # Readers (the registry) see the old file or the new one, never half of it. The
    # temporary name is hidden so that the registry ignores it.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        os.chmod(temporary, 0o600)  # private to the server's account, as VAR_PATH is
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_definition(jd: JobDefinition, directory: Path, fmt: str = "yaml") -> Path:
    """Check a definition and write it as NAME.yml (or .json, .xml) plus NAME.sh.

    The script goes to NAME.sh only. Returns the definition file's path.
    """
    _check_format(fmt)
    directory = Path(directory)
    path = directory / f"{jd.name}{SAVE_EXTENSIONS[fmt]}"
    try:
        jd = validate_definition(jd)
    except JDLError as error:
        raise error.with_source(str(path)) from None
    directory.mkdir(parents=True, exist_ok=True)
    # Script first. A registry reading between the two writes may see a mismatched pair,
    # but the second write changes the directory again, so it reloads at its next check.
    _write_atomically(directory / f"{jd.name}.sh", jd.script)
    _write_atomically(path, dump_definition(jd, fmt, include_script=False))
    return path
