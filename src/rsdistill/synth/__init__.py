"""Synthetic aerial scenes: the embedded demo dataset (procedural, UC Merced / AID-like classes).

Every image is drawn top-down in scene units on a randomly rotated, scaled frame (:mod:`.primitives`),
by the renderer of its class (:mod:`.scenes`), then gets random illumination, colour, blur /
resolution and sensor noise; :mod:`.writer` does that and writes datasets to disk.

This package depends on nothing else in rsdistill but :mod:`rsdistill.errors`.
"""

from .scenes import SCENE_CLASSES, SCENES, scene
from .writer import GENERATOR_VERSION, MAX_SIZE, MIN_SIZE, generate_dataset, render_scene

__all__ = ["GENERATOR_VERSION", "MAX_SIZE", "MIN_SIZE", "SCENES", "SCENE_CLASSES", "generate_dataset",
           "render_scene", "scene"]
