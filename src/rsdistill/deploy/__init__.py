"""Deployment: the student as it ships (export, prediction, size and speed)."""
