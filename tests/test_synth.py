"""Specification of the synthetic aerial-scene generator (rsdistill.synth)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from rsdistill.errors import DataError
from rsdistill.synth import SCENE_CLASSES, generate_dataset, render_scene, writer

DEFAULT_12 = ["water", "forest", "agricultural", "beach", "river", "freeway", "runway",
              "dense_residential", "medium_residential", "sparse_residential", "parking_lot", "bare_land"]
TRIO = ["dense_residential", "medium_residential", "sparse_residential"]


def _rng(seed: int, class_index: int, i: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, class_index, i]))


def _img(name: str, i: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return render_scene(name, size, _rng(seed, SCENE_CLASSES.index(name), i))


def _leftovers(parent):
    return [p.name for p in parent.iterdir() if ".partial" in p.name]


# --- class list ----------------------------------------------------------------------------------


def test_scene_classes_default_twelve_first_and_at_least_21_unique_snake_case():
    assert list(SCENE_CLASSES[:12]) == DEFAULT_12
    assert len(SCENE_CLASSES) >= 21
    assert len(set(SCENE_CLASSES)) == len(SCENE_CLASSES)
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", n) for n in SCENE_CLASSES)


# --- render_scene --------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 33])
def test_every_class_renders_an_rgb_uint8_image_of_the_size(size):
    for k, name in enumerate(SCENE_CLASSES):
        img = render_scene(name, size, _rng(0, k, 0))
        assert img.shape == (size, size, 3) and img.dtype == np.uint8, name
        assert img.std() > 1.0, f"{name} is a flat image"


def test_large_images_render():
    img = _img("dense_residential", 0, size=256)
    assert img.shape == (256, 256, 3)


def test_render_scene_rejects_unknown_class_and_bad_size():
    with pytest.raises(DataError, match="no_such_class"):
        render_scene("no_such_class", 32, np.random.default_rng(0))
    with pytest.raises(DataError, match="size"):
        render_scene("water", 8, np.random.default_rng(0))


def test_render_scene_is_a_function_of_the_generator_state():
    a, b = _img("freeway", 3), _img("freeway", 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _img("freeway", 4))


def test_two_images_of_one_class_differ_substantially():
    # intra-class variability: rotation, scale, illumination, colour, layout
    for name in SCENE_CLASSES:
        a, b = (_img(name, i).astype(np.float64) for i in (0, 1))
        assert np.abs(a - b).mean() > 6.0, f"two {name} images are near-identical"


def _features(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64) / 255
    g = x.mean(-1)
    grad = np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()
    return np.r_[x.mean((0, 1)), g.std(), grad]


def test_classes_differ_but_residential_densities_are_confusable():
    names = DEFAULT_12
    feats = {n: np.array([_features(_img(n, i)) for i in range(12)]) for n in names}
    scale = np.concatenate(list(feats.values())).std(0)
    cent = {n: f.mean(0) / scale for n, f in feats.items()}

    def dist(a, b):
        return float(np.linalg.norm(cent[a] - cent[b]))

    # distinguishable: the class means of simple colour / texture statistics are all different
    assert min(dist(a, b) for a in names for b in names if a < b) > 0.1
    # the three residential densities are closer to each other than to unrelated scenes
    within = max(dist(a, b) for a in TRIO for b in TRIO if a < b)
    for other in ("water", "forest", "beach", "runway", "bare_land"):
        assert within < min(dist(t, other) for t in TRIO), other
    # water is blue-green and forest is dark green (colour semantics)
    w, f = feats["water"][:, :3].mean(0), feats["forest"][:, :3].mean(0)
    assert w[2] > w[0] and f[1] > f[0] and f[1] > f[2] and f.mean() < 0.3


# --- generate_dataset: layout, manifest, determinism ----------------------------------------------


def test_writes_class_folders_pngs_and_manifest(tmp_path):
    out = tmp_path / "scenes"
    names = generate_dataset(out, classes=3, per_class=2, size=20, seed=7)
    assert names == DEFAULT_12[:3]
    assert sorted(p.name for p in out.iterdir()) == sorted(names + ["synth.json"])
    for name in names:
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == [f"{name}_0000.png", f"{name}_0001.png"]
        for f in files:
            with Image.open(out / name / f) as im:
                assert im.format == "PNG" and im.mode == "RGB" and im.size == (20, 20)
    man = json.loads((out / "synth.json").read_text())
    assert man["classes"] == 3 and man["per_class"] == 2 and man["size"] == 20 and man["seed"] == 7
    assert man["class_names"] == names and "version" in man
    assert _leftovers(tmp_path) == []


def test_written_images_are_render_scene_of_the_documented_seed(tmp_path):
    generate_dataset(tmp_path / "a", classes=2, per_class=2, size=24, seed=5)
    with Image.open(tmp_path / "a" / "forest" / "forest_0001.png") as im:
        got = np.asarray(im)
    assert np.array_equal(got, render_scene("forest", 24, _rng(5, 1, 1)))


def test_same_seed_byte_identical_other_seed_different(tmp_path):
    for d, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_dataset(tmp_path / d, classes=2, per_class=2, size=16, seed=seed)
    rel = ["water/water_0000.png", "water/water_0001.png", "forest/forest_0000.png", "forest/forest_0001.png"]
    for r in rel:
        assert (tmp_path / "a" / r).read_bytes() == (tmp_path / "b" / r).read_bytes()
        assert (tmp_path / "a" / r).read_bytes() != (tmp_path / "c" / r).read_bytes()


def test_an_image_does_not_depend_on_classes_or_per_class(tmp_path):
    generate_dataset(tmp_path / "small", classes=2, per_class=1, size=16, seed=0)
    generate_dataset(tmp_path / "big", classes=4, per_class=3, size=16, seed=0)
    for r in ("water/water_0000.png", "forest/forest_0000.png"):
        assert (tmp_path / "small" / r).read_bytes() == (tmp_path / "big" / r).read_bytes()


# --- generate_dataset: existing output ------------------------------------------------------------


def test_rerun_with_same_parameters_reuses_the_folder(tmp_path, monkeypatch):
    out = tmp_path / "s"
    names = generate_dataset(out, classes=2, per_class=2, size=16, seed=1)

    def boom(*a, **k):
        raise AssertionError("regenerated")

    monkeypatch.setattr(writer, "render_scene", boom)  # where generate_dataset looks it up
    assert generate_dataset(out, classes=2, per_class=2, size=16, seed=1) == names


@pytest.mark.parametrize("change", [{"seed": 2}, {"size": 17}, {"per_class": 3}, {"classes": 3}])
def test_existing_folder_with_other_parameters_is_an_error_naming_it(tmp_path, change):
    out = tmp_path / "s"
    params = dict(classes=2, per_class=2, size=16, seed=1)
    generate_dataset(out, **params)
    with pytest.raises(DataError) as e:
        generate_dataset(out, **{**params, **change})
    msg = str(e.value)
    assert str(out) in msg and "\n" not in msg
    assert (out / "synth.json").exists()  # untouched


def test_existing_foreign_folder_is_an_error_and_empty_folder_is_used(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match=re.escape(str(foreign))):
        generate_dataset(foreign, classes=2, per_class=1, size=16)
    assert (foreign / "notes.txt").read_text() == "mine"
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError, match=re.escape(str(afile))):
        generate_dataset(afile, classes=2, per_class=1, size=16)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert generate_dataset(empty, classes=2, per_class=1, size=16) == DEFAULT_12[:2]
    assert (empty / "water" / "water_0000.png").exists()


def test_folder_with_matching_manifest_but_missing_images_is_an_error(tmp_path):
    out = tmp_path / "s"
    generate_dataset(out, classes=2, per_class=2, size=16)
    (out / "forest" / "forest_0001.png").unlink()
    with pytest.raises(DataError, match=re.escape(str(out))):
        generate_dataset(out, classes=2, per_class=2, size=16)


# --- generate_dataset: validation and atomicity ---------------------------------------------------


@pytest.mark.parametrize("kwargs, arg", [
    ({"classes": 1}, "classes"), ({"classes": len(SCENE_CLASSES) + 1}, "classes"),
    ({"per_class": 0}, "per_class"), ({"size": 15}, "size"), ({"size": 1025}, "size"),
    ({"seed": -1}, "seed"), ({"classes": 2.5}, "classes"),
])
def test_invalid_arguments_raise_data_error_naming_the_argument(tmp_path, kwargs, arg):
    out = tmp_path / "s"
    with pytest.raises(DataError) as e:
        generate_dataset(out, **{"classes": 2, "per_class": 1, "size": 16, **kwargs})
    msg = str(e.value)
    assert re.search(rf"\b{arg}\b", msg) and "\n" not in msg
    assert not out.exists()


def test_boundary_arguments_are_accepted(tmp_path):
    names = generate_dataset(tmp_path / "s", classes=len(SCENE_CLASSES), per_class=1, size=16)
    assert names == list(SCENE_CLASSES)


def test_failure_during_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    real = writer.render_scene
    calls = []

    def flaky(name, size, rng):
        calls.append(name)
        if len(calls) > 3:
            raise RuntimeError("disk on fire")
        return real(name, size, rng)

    monkeypatch.setattr(writer, "render_scene", flaky)
    out = tmp_path / "s"
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_dataset(out, classes=2, per_class=3, size=16)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []
    # and a clean run afterwards works
    monkeypatch.setattr(writer, "render_scene", real)
    assert generate_dataset(out, classes=2, per_class=3, size=16) == DEFAULT_12[:2]
    assert _leftovers(tmp_path) == []


def test_progress_bar(tmp_path, capsys):
    generate_dataset(tmp_path / "s", classes=2, per_class=2, size=16, progress=True)
    assert "4/4" in capsys.readouterr().err


# --- mixed scenes ---------------------------------------------------------------------------------


def test_mix_zero_is_the_unmixed_dataset_and_mixing_keeps_the_unmixed_images(tmp_path):
    plain = generate_dataset(tmp_path / "plain", classes=3, per_class=8, size=32)
    assert generate_dataset(tmp_path / "zero", classes=3, per_class=8, size=32, mix=0.0) == plain
    assert json.loads((tmp_path / "zero" / "synth.json").read_text()) == \
        json.loads((tmp_path / "plain" / "synth.json").read_text())
    generate_dataset(tmp_path / "half", classes=3, per_class=8, size=32, mix=0.5)
    manifest = json.loads((tmp_path / "half" / "synth.json").read_text())
    assert manifest["mix"] == 0.5
    same = changed = 0
    for ci, name in enumerate(plain):
        for i in range(8):
            a = np.asarray(Image.open(tmp_path / "plain" / name / f"{name}_{i:04d}.png"))
            b = np.asarray(Image.open(tmp_path / "half" / name / f"{name}_{i:04d}.png"))
            mixed = np.random.default_rng(np.random.SeedSequence([0, ci, i, 2])).random() < 0.5
            assert np.array_equal(a, b) != mixed, (name, i)  # exactly the drawn ones are mixed
            same, changed = same + (not mixed), changed + mixed
    assert same and changed


def test_a_mixed_scene_is_its_class_with_a_region_of_the_other():
    main = render_scene("water", 64, np.random.default_rng(7))
    mixed = writer.render_mixed_scene("water", "forest", 0.3, 64, np.random.default_rng(7), np.random.default_rng(8))
    # one camera: away from the other class's region the pixels are the unmixed scene's (up to the
    # contrast step, which follows the whole image's mean)
    changed = np.abs(mixed.astype(int) - main).max(axis=2) > 3
    assert 0.25 < changed.mean() < 0.5  # the share, plus the boundary's blur
    # one side of a boundary, not scattered pixels: the changed pixels form one band across the image
    rows = changed.mean(axis=1)
    cols = changed.mean(axis=0)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) > 0.5


def test_boundary_mask_covers_the_share():
    from rsdistill.synth.primitives import Canvas

    for share in (0.2, 0.45):
        m = writer.boundary_mask(Canvas(64, np.random.default_rng(1)), share)
        assert m.min() == 0 and m.max() == 1 and abs(m.mean() - share) < 0.03


@pytest.mark.parametrize("mix", [-0.1, 1.5, "half", True])
def test_mix_outside_zero_to_one_is_refused_naming_it(tmp_path, mix):
    with pytest.raises(DataError, match=r"^synth: mix must be a number between 0 and 1"):
        generate_dataset(tmp_path / "s", classes=2, per_class=1, size=16, mix=mix)
    assert not (tmp_path / "s").exists()
