"""`opus completion bash|zsh`: a shell completion script, made from the `opus` parser.

The verbs and each verb's options come from the argparse parser itself, so the script
never lags behind the commands. Job types (for describe, submit, jobs) and login names
(for --server, --name) are asked of `opus types --names` and `opus logins --json` as
the user types, with errors hidden (no login yet, the server down: no suggestions).
zsh runs the same function through bashcompinit.

    eval "$(opus completion bash)"      # in ~/.bashrc
    eval "$(opus completion zsh)"       # in ~/.zshrc
"""

from __future__ import annotations

import argparse

from opus.client.cliparse import PHASES

TYPE_VERBS = ("describe", "submit", "jobs", "batch")
FILE_OPTIONS = ("--token-file", "--over", "--over-file", "--report", "--resume")
DIRECTORY_OPTIONS = ("--download",)

BASH = r"""# bash completion for opus: eval "$(opus completion bash)"
_opus_logins() {
    opus logins --json 2>/dev/null | sed -n 's/^ *"name": "\(.*\)",$/\1/p'
}
_opus() {
    local cur prev verb i
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    verb=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --server) ((i++)) ;;
            -*) ;;
            *) verb="${COMP_WORDS[i]}"; break ;;
        esac
    done
    case "$prev" in
        --server|--name|--default)
            COMPREPLY=($(compgen -W "$(_opus_logins)" -- "$cur")); return ;;
        --phase)
            COMPREPLY=($(compgen -W "@PHASES@" -- "$cur")); return ;;
        @FILE_OPTIONS@)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        @DIRECTORY_OPTIONS@)
            COMPREPLY=($(compgen -d -- "$cur")); return ;;
    esac
    if [[ -z "$verb" ]]; then
        COMPREPLY=($(compgen -W "@VERBS@ --server --help --version" -- "$cur"))
        return
    fi
    local options=""
    case "$verb" in
@OPTIONS@
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
        return
    fi
    case "$verb" in
        @TYPE_VERBS@)
            if [[ "$prev" == "$verb" ]]; then
                COMPREPLY=($(compgen -W "$(opus types --names 2>/dev/null)" -- "$cur"))
            fi ;;
        completion)
            COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
        download)
            COMPREPLY=($(compgen -d -- "$cur")) ;;
@NESTED@
    esac
}
complete -F _opus opus
"""

ZSH_HEAD = """# zsh completion for opus: eval "$(opus completion zsh)"
autoload -U +X compinit && compinit
autoload -U +X bashcompinit && bashcompinit
"""


def _verbs(parser: argparse.ArgumentParser) -> dict[str, tuple[list[str], list[str]]]:
    """Each verb of the parser: its options, and its own subcommands (``user add``…)."""
    verbs: dict[str, tuple[list[str], list[str]]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                options = sorted(
                    {o for a in sub._actions for o in a.option_strings if o.startswith("--")}
                )
                nested = [
                    choice
                    for a in sub._actions
                    if isinstance(a, argparse._SubParsersAction)
                    for choice in a.choices
                ]
                verbs[name] = (options, nested)
    return verbs


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``shell`` (bash or zsh)."""
    verbs = _verbs(parser)
    cases = "\n".join(
        f'        {name}) options="{" ".join(options)}" ;;'
        for name, (options, _) in sorted(verbs.items())
    )
    nested = "\n".join(
        f'        {name}) [[ "$prev" == "$verb" ]] &&'
        f' COMPREPLY=($(compgen -W "{" ".join(subcommands)}" -- "$cur")) ;;'
        for name, (_, subcommands) in sorted(verbs.items())
        if subcommands
    )
    text = (
        BASH.replace("@PHASES@", " ".join(PHASES))
        .replace("@FILE_OPTIONS@", "|".join(FILE_OPTIONS))
        .replace("@DIRECTORY_OPTIONS@", "|".join(DIRECTORY_OPTIONS))
        .replace("@VERBS@", " ".join(sorted(verbs)))
        .replace("@OPTIONS@", cases)
        .replace("@TYPE_VERBS@", "|".join(TYPE_VERBS))
        .replace("@NESTED@", nested)
    )
    return ZSH_HEAD + text if shell == "zsh" else text
