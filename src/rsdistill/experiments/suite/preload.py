"""Imported once by the process that forks a suite's cells (the multiprocessing fork server), so
that each cell starts with torch, torchvision, TensorBoard's writer and matplotlib already loaded
instead of spending seconds importing them. The fork server only imports: it never runs a torch
operation, so the cells forked from it start with no thread pool to inherit."""

import matplotlib

matplotlib.use("Agg")  # the cells write PNGs only (as reports/per_class.py does)

import matplotlib.pyplot  # noqa: E402,F401
import torch.utils.tensorboard  # noqa: E402,F401

from .. import single  # noqa: E402,F401
from . import cell  # noqa: E402,F401
