"""Every module points at the documentation of what it teaches (the official sites, not ours)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))
LINK = re.compile(r"\[[^\]]+\]\((https://[^)\s]+)\)")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_intro_links_the_official_docs(notebook):
    intro = json.loads(notebook.read_text())["cells"][0]
    text = intro["source"] if isinstance(intro["source"], str) else "".join(intro["source"])
    assert "**Read more:**" in text
    assert len(LINK.findall(text)) >= 2


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_intro_links_the_glossary_beside_it_and_the_workspace_has_it(notebook, tmp_path):
    """JupyterLab serves the learner's copies only (my-notebooks/): the glossary is linked
    beside the notebook and copied with it, so the link opens in the browser."""
    from lab_helpers.cli.start import make_workspace

    intro = json.loads(notebook.read_text())["cells"][0]
    text = intro["source"] if isinstance(intro["source"], str) else "".join(intro["source"])
    assert "(GLOSSARY.md)" in text
    assert (notebook.parent / "GLOSSARY.md").is_file()
    make_workspace(notebook.parent, tmp_path)
    assert (tmp_path / "GLOSSARY.md").read_text() == (notebook.parent / "GLOSSARY.md").read_text()
