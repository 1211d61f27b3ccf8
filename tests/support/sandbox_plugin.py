"""pytest plugin: filled in by its owner (see tests/conftest.py)."""
