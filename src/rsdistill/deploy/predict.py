"""Predict the scene class of image files with any deployable form of a model (see ``formats``).

Images are read exactly as in training (``data.decode``: the same TIFF stretch and band choice,
grey repeated on R, G and B, resized to the model's training size) and scaled to [0, 1]; the model
normalises them itself. An image that cannot be read is reported by name and the others are still
predicted: the caller learns which failed from :attr:`Prediction.error`.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.decode import DecodeOptions, decode_image
from ..data.folders import IMAGE_EXTENSIONS
from ..errors import RsDistillError
from ..io import atomic_write_text
from .formats import Predictor

OUTPUT_SUFFIXES = (".csv", ".json")


@dataclass
class Prediction:
    """One image's top-k classes and probabilities, best first, or why it has none."""

    file: str
    top: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None


def find_images(inputs: Iterable[str]) -> tuple[list[Path], list[Prediction]]:
    """Image files from files, folders (searched recursively for image suffixes) and globs, in the
    order given, each once; inputs that give no image (missing, an empty folder, a glob that
    matches nothing) come back as failed predictions, all alike."""
    found: list[Path] = []
    missing: list[Prediction] = []
    for item in inputs:
        path = Path(item)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            images = _images_under(path)
            found += images
            if not images:
                missing.append(Prediction(item, error=f"folder '{item}' holds no images ({', '.join(IMAGE_EXTENSIONS)})"))
        elif any(c in item for c in "*?["):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            hits = [p for m in matches for p in (_images_under(m) if m.is_dir() else [m] if _is_image(m) else [])]
            if hits:
                found += hits
            else:
                missing.append(Prediction(item, error=f"no image matches '{item}'"))
        else:
            missing.append(Prediction(item, error=f"'{item}' does not exist"))
    seen: set[Path] = set()
    unique = [p for p in found if not (p.resolve() in seen or seen.add(p.resolve()))]
    return unique, missing


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_image(p) and not any(
        part.startswith(".") for part in p.relative_to(folder).parts))


def read_images(paths: list[Path], size: int, options: DecodeOptions = DecodeOptions(),
                threads: int | None = None) -> tuple[np.ndarray, list[int], list[Prediction]]:
    """N x C x size x size float32 in [0, 1] for the images that could be read, the indices (into
    ``paths``) of those images, and a failed prediction for each of the others."""
    def read(path: Path) -> np.ndarray | str:
        try:
            return decode_image(path, size, options).numpy()
        except RsDistillError as e:
            # The decoder names the training option; predict takes it as a flag.
            return str(e) + ("; with predict: --bands B1 B2 ..." if "data.bands" in str(e) else "")
        except Exception as e:  # noqa: BLE001 - any decoder failure is this file's, not the run's
            return f"cannot read image '{path}': {str(e).splitlines()[0] if str(e) else type(e).__name__}"

    threads = threads or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(threads) as pool:
        decoded = list(pool.map(read, paths))
    ok = [i for i, d in enumerate(decoded) if not isinstance(d, str)]
    failed = [Prediction(str(paths[i]), error=d) for i, d in enumerate(decoded) if isinstance(d, str)]
    images = np.stack([decoded[i] for i in ok]).astype(np.float32) / 255.0 if ok else \
        np.zeros((0, options.channels or 3, size, size), np.float32)
    return images, ok, failed


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[list[tuple[str, float]]]:
    k = min(k, len(classes))
    # A stable sort: ties keep the class order, so every runtime ranks them alike.
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(classes[j], float(p[j])) for j in row] for p, row in zip(probs, order)]


def predict_images(predictor: Predictor, paths: list[Path], k: int = 5, batch: int = 32,
                   progress: bool = False) -> Iterator[Prediction]:
    """Predictions for ``paths`` in their order (a failed image in its place), batch by batch."""
    from tqdm import tqdm

    info = predictor.info
    bar = tqdm(total=len(paths), unit="img", desc="predicting", leave=False, disable=None if progress else True)
    try:
        for start in range(0, len(paths), batch):
            chunk = paths[start:start + batch]
            images, ok, failed = read_images(chunk, info.image_size, info.decode_options)
            results: dict[int, Prediction] = {}
            if ok:
                tops = top_k(softmax(predictor(images)), info.classes, k)
                results = {i: Prediction(str(chunk[i]), top) for i, top in zip(ok, tops)}
            failed_iter = iter(failed)
            for i in range(len(chunk)):
                yield results[i] if i in results else next(failed_iter)
            bar.update(len(chunk))
    finally:
        bar.close()


def check_output(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise RsDistillError(f"predict: --out '{path}' must end in .csv or .json")
    if path.is_dir():
        raise RsDistillError(f"predict: --out '{path}' is a folder; give a .csv or .json file")
    return path


def write_predictions(path: str | Path, predictions: list[Prediction], k: int, model: str = "") -> None:
    """CSV (``file, error, class_1, prob_1, ...``) or JSON, by the suffix; failed images included."""
    path = check_output(path)
    if path.suffix.lower() == ".json":
        atomic_write_text(path, json.dumps({"model": model, "predictions": [
            {"file": p.file, "top": [{"class": c, "prob": round(q, 6)} for c, q in p.top], "error": p.error}
            for p in predictions]}, indent=2) + "\n")
        return
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "error"] + [f"{name}_{i}" for i in range(1, k + 1) for name in ("class", "prob")])
    for p in predictions:
        cells = [x for c, q in p.top for x in (c, f"{q:.6f}")]
        w.writerow([p.file, p.error or ""] + cells + [""] * (2 * k - len(cells)))
    atomic_write_text(path, buf.getvalue())


def format_prediction(p: Prediction) -> str:
    if p.error:
        return f"{p.file}: FAILED ({p.error})"
    return f"{p.file}: " + ", ".join(f"{c} {q:.3f}" for c, q in p.top)


def predict(model: str | Path, inputs: list[str], k: int = 5, batch: int = 32, device: str = "cpu",
            bands: list[int] | None = None, tiff_stretch: str | None = None,
            progress: bool = False) -> tuple[Predictor, list[Prediction]]:
    """``rsdistill predict``: the model's predictions for every image found in ``inputs``, in order,
    then an entry for each input that matched nothing. Failed images carry their error."""
    from dataclasses import replace

    from ..engine.seeding import resolve_device
    from .formats import open_model

    if k < 1 or batch < 1:
        raise RsDistillError(f"predict: --top-k and --batch must be at least 1 (got {k}, {batch})")
    if bands is not None and (not bands or min(bands) < 0):
        raise RsDistillError(f"predict: --bands takes band indices from 0 (got {bands})")
    paths, missing = find_images(inputs)
    if not paths:  # nothing to predict: a user error, whether the inputs are missing or empty
        raise RsDistillError("predict: no images to predict: " + "; ".join(m.error for m in missing))
    predictor = open_model(model, resolve_device(device))
    if bands is not None and len(bands) != predictor.info.channels:
        raise RsDistillError(f"predict: --bands gives {len(bands)} bands; the model reads {predictor.info.channels} "
                             f"(trained on bands {predictor.info.bands or 'R, G, B'})")
    if bands is not None or tiff_stretch is not None:
        predictor.info = replace(predictor.info, bands=list(bands) if bands is not None else predictor.info.bands,
                                 tiff_stretch=tiff_stretch or predictor.info.tiff_stretch)
    predictions = list(predict_images(predictor, paths, k, batch, progress)) + missing
    return predictor, predictions
