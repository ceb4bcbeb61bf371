"""Models: a registry of torchvision and CIFAR-style networks behind one adapter."""

from .adapter import LogitsOnly, ModelAdapter
from .features import Features, Output
from .registry import MODELS, build_model, count_parameters, model_family, model_names

__all__ = ["MODELS", "Features", "LogitsOnly", "ModelAdapter", "Output", "build_model",
           "count_parameters", "model_family", "model_names"]
