"""A long shell command as a reader sees it: one argument per line, with ` \\` continuations.

    print(multiline_command("A=1 podman run --rm --name x image vllm serve --port 8000"))
    A=1 \\
      podman run \\
      --rm \\
      --name x \\
      image \\
      ...

The one-line form (`server.preview(config)`) stays what code returns and tests search; this is
only for showing it. Each argument is quoted with `shlex.quote`, an option shares its line with
its value, and the text still pastes into a shell as the same command.
"""

from __future__ import annotations

import re
import shlex

CONTINUATION = " \\\n  "
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def _quote(word: str) -> str:
    match = _ASSIGNMENT.match(word)
    if match:  # NAME=value: only the value is quoted, or it is no assignment any more
        return match.group(0) + shlex.quote(word[match.end():])
    return shlex.quote(word)


def multiline_command(command: str) -> str:
    """`command` (one line of shell) split into lines: leading NAME=value settings one per
    line, then the program with its subcommand (`podman run`), then one argument per line,
    an option (`--port`) together with its value (`8000`)."""
    words = shlex.split(command)
    lines: list[str] = []
    i = 0
    while i < len(words) and _ASSIGNMENT.match(words[i]):
        lines.append(_quote(words[i]))
        i += 1
    if i < len(words):  # the program, and the words naming what it does (podman run, serve)
        head = [words[i]]
        i += 1
        while i < len(words) and re.fullmatch(r"[a-z][a-z-]*", words[i]):
            head.append(words[i])
            i += 1
        lines.append(" ".join(_quote(w) for w in head))
    while i < len(words):
        word = words[i]
        i += 1
        line = _quote(word)
        if word.startswith("-") and "=" not in word and i < len(words) \
                and not words[i].startswith("-"):
            line += " " + _quote(words[i])
            i += 1
        lines.append(line)
    return CONTINUATION.join(lines)
