"""Helpers shared by the tests: one place, imported explicitly (never from conftest.py)."""
