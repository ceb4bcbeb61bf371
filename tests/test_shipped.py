"""The configs rsdistill ships (configs/: run configs, protocols, recipes, suite files) are found in
a checkout and in a wheel install, so that `rsdistill ablate` and `rsdistill demo` find their suite
files wherever rsdistill is installed from."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from rsdistill import shipped
from rsdistill.errors import ConfigError
from rsdistill.experiments.ablate import ABLATION_SUITE, ablation_rows
from rsdistill.experiments.demo import DEMO_SUITE
from rsdistill.experiments.suite.plan import SuiteFolder, plan
from rsdistill.experiments.suite.spec import load_suite

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_reads_its_own_configs_folder():
    assert shipped.configs_dir() == REPO / "configs"
    assert shipped.shipped_config(ABLATION_SUITE) == REPO / "configs" / "suites" / "ablation.yaml"


def test_every_config_folder_travels_in_the_wheel():
    # pyproject's data-files name folders one by one: a new folder of configs must be added there
    data_files = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    shipped_globs = {g for globs in data_files.values() for g in globs}
    folders = {p.parent.relative_to(REPO).as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert {f"{f}/*.yaml" for f in folders} == shipped_globs
    for target, (glob,) in data_files.items():
        assert target == "share/rsdistill/" + glob.rsplit("/", 1)[0]


def test_an_install_without_a_checkout_reads_the_installed_copy(monkeypatch, tmp_path):
    installed = tmp_path / "share" / "rsdistill" / "configs"
    shutil.copytree(REPO / "configs", installed)
    monkeypatch.setattr(shipped, "CHECKOUT", tmp_path / "no-checkout" / "configs")
    monkeypatch.setattr(shipped, "INSTALLED", installed)
    assert shipped.shipped_config(DEMO_SUITE) == installed / "suites" / "demo.yaml"
    assert [r.slug for r in ablation_rows()][:3] == ["isdm", "wo_is", "wo_dm"]
    shutil.rmtree(installed)
    with pytest.raises(ConfigError, match="configs/ folder is missing .*reinstall rsdistill"):
        shipped.configs_dir()


@pytest.mark.slow
def test_the_wheel_carries_the_configs_and_their_relative_paths_resolve(tmp_path):
    pytest.importorskip("setuptools", reason="building a wheel needs setuptools")
    pytest.importorskip("wheel", reason="building a wheel needs wheel")
    src = tmp_path / "src"  # a copy: building writes build/ and *.egg-info beside pyproject.toml
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("src", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("rsdistill-*.whl")
    prefix = tmp_path / "prefix"  # what pip install puts under sys.prefix
    with zipfile.ZipFile(wheel) as z:
        data = [n for n in z.namelist() if "/data/share/rsdistill/configs/" in n]
        for name in data:
            target = prefix / name.split("/data/", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
    installed = prefix / "share" / "rsdistill" / "configs"
    assert sorted(p.relative_to(installed) for p in installed.rglob("*.yaml")) == sorted(
        p.relative_to(REPO / "configs") for p in (REPO / "configs").rglob("*.yaml"))
    # a shipped suite planned from the installed copy: its ../protocols/ files are found
    suite = load_suite(installed / "suites" / "ablation.yaml", ["datasets.aid.root=/data/AID"])
    cells = plan(suite, SuiteFolder(tmp_path / "out"))
    assert cells[0].kind == "teacher" and cells[0].config["train"]["epochs"] == 50
