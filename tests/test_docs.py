"""The documentation site builds with MkDocs in strict mode (what `make docs` and CI run): no
broken link or anchor, every page in the navigation, every API name of the reference found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_docs_build_strictly(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings", reason="the docs extra is not installed: pip install -e '.[docs]'")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    site = tmp_path / "site"
    api = (site / "python_api.html").read_text()
    # the reference is generated from the docstrings: the functions' own words are on the page
    assert "distillation_loss" in api and "Train a model with cross-entropy" in api
    for page in ("index", "getting_started", "data", "methods", "isdm", "suites", "figures", "deployment",
                 "cifar_imagenet", "benchmarks", "protocol", "results", "development"):
        assert (site / f"{page}.html").is_file(), page
