"""Experiments: single runs (train / distill / eval) and the multi-run jobs built on them."""
