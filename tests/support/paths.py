"""Folders of the checkout the tests read (docs, config files)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
