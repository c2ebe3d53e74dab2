"""Shared test settings.

Every training run started through the dashboard's session layer is recorded in the run store
(``sae.store``), whose directory comes from ``SAE_LAB_DATA`` (default ``~/.local/share/sae-lab``).
Tests must never write there: each test gets its own temporary store directory.
"""

import pytest


@pytest.fixture(autouse=True)
def lab_data(tmp_path, monkeypatch):
    """A fresh run-store directory for every test (never the user's real one)."""
    path = tmp_path / "sae-lab-data"
    monkeypatch.setenv("SAE_LAB_DATA", str(path))
    return path
