"""rsdistill: knowledge distillation for remote-sensing scene classification."""

__version__ = "0.1.0"
