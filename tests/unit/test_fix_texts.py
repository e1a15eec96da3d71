"""Every `fix=` text in lab_helpers names something that exists.

An error's fix is the learner's next step: a `vllm-lab ...` command must parse with the real
CLI parser, a `./lab ...` verb must exist in the lab script, and a file path must be in the
repository. The texts are collected from the source (constants and the constant parts of
f-strings), so a new error is checked without anyone listing it here.
"""

from __future__ import annotations

import ast
import re
import shlex

import pytest

from lab_helpers.cli.main import build_parser
from lab_helpers.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "lab_helpers"
VLLM_LAB_CMD = re.compile(r"vllm-lab ((?:[a-z][\w-]*|--?[\w-]+|<[^>]+>|\{[^}]*\})(?: (?:"
                          r"[a-z][\w-]*|--?[\w-]+|<[^>]+>|\{[^}]*\}|\d+))*)")
LAB_VERB = re.compile(r"\./lab(?: ([a-z-]+))?")
REPO_PATH = re.compile(r"(?<![\w/.~-])((?:containers|lab_helpers|notebooks|scripts|benchmarks|"
                       r"tests)/[\w./-]+)")
PLACEHOLDER = "name"  # what a {placeholder} in a command stands for when it is parsed


def _text_of(node: ast.expr) -> str | None:
    """A fix's text: constants as they are, f-string fields as a placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{" + PLACEHOLDER + "}"
                       for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text_of(node.left), _text_of(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.Name):
        return _module_constants.get(node.id)
    if isinstance(node, ast.IfExp):  # both branches, one per line: each is checked
        body, orelse = _text_of(node.body), _text_of(node.orelse)
        return None if body is None or orelse is None else body + "\n" + orelse
    return None


_module_constants: dict[str, str] = {}


def fix_texts() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        _module_constants.clear()
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                value = _text_of(node.value)
                if value is not None:
                    _module_constants[node.targets[0].id] = value
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "fix":
                        text = _text_of(kw.value)
                        if text:
                            found.append((f"{path.relative_to(REPO_ROOT)}:{kw.lineno}", text))
    return found


FIXES = fix_texts()


def lab_verbs() -> set[str]:
    script = (REPO_ROOT / "lab").read_text()
    case = script[script.index('case "${1:-start}" in'):]
    return {verb for group in re.findall(r"^  ([a-z|-]+)\)", case, re.MULTILINE)
            for verb in group.split("|")}


def test_fix_texts_are_collected():
    # The collector itself must find the errors the lab raises (a broken collector passes all).
    assert len(FIXES) >= 30
    assert any("vllm-lab build-image" in text for _, text in FIXES)


@pytest.mark.parametrize("where,text", FIXES, ids=[w for w, _ in FIXES])
def test_fix_names_only_what_exists(where, text):
    for target in re.findall(r"`make (\w[\w-]*)", text):
        makefile = REPO_ROOT / "Makefile"
        assert makefile.exists() and re.search(rf"^{target}:", makefile.read_text(), re.M), (
            f"{where}: `make {target}` names a Makefile target that does not exist")
    parser = build_parser()
    for match in VLLM_LAB_CMD.finditer(text):
        words = [w for w in shlex.split(match.group(1).replace("{name}", PLACEHOLDER))
                 if not w.startswith("<")]
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{where}: `vllm-lab {match.group(1)}` does not parse with the CLI")
    verbs = lab_verbs()
    for match in LAB_VERB.finditer(text):
        assert match.group(1) is None or match.group(1) in verbs, (
            f"{where}: `./lab {match.group(1)}` is not a verb of the lab script ({verbs})")
    for match in REPO_PATH.finditer(text):
        path = match.group(1).rstrip(".")
        assert (REPO_ROOT / path).exists(), f"{where}: {path} does not exist in the repository"


def test_checker_catches_a_bad_command():
    """The same checks reject a command the CLI does not know."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["start-everything"])
    assert "make" not in lab_verbs()
