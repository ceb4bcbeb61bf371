"""Reports: tables (Markdown, CSV, LaTeX) and per-class results, computed from run directories."""
