"""Suites: a YAML file's grid of datasets x splits x methods x seeds, run as cells.

spec (the file's schema, ``extends:``), plan (the cells and the suite folder), scheduler (running
the cells' processes side by side), cell (one cell, in its process), torchrun (a cell under
torchrun), preload (what the fork server imports), report (tables, figures, results.json),
profile (the cost of compression)."""
