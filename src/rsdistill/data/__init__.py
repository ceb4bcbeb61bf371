"""Data: folder datasets and presets, splits, the decoded cache, transforms -> a DataModule.

Import from the modules (``data.datamodule``, ``data.splits``, ...): this package imports nothing,
so that ``data.info`` (what methods may know about the data) comes without the pipeline.
"""
