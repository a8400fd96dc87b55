"""Studies that measure (``python -m scripts.STUDY``); see ``scripts/harness.py``."""
