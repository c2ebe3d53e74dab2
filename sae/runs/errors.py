"""The run store's errors, in a module of their own so that every part of the store (codec, database, run and
sweep tables) raises the same ones without importing each other."""

from __future__ import annotations


class StoreError(ValueError):
    """The run store cannot do what was asked; the message says which file or run, and why."""


class RunNotFoundError(StoreError):
    """No run (or sweep) with that id in this store."""


class PermissionDeniedError(StoreError):
    """The identity asking may not change this run or sweep (it belongs to someone else): see sae.runs.owners."""


class ForgedIdentityError(StoreError):
    """An identity token this store's key did not issue (altered, made up, or from another store): refused."""


__all__ = ["StoreError", "RunNotFoundError", "PermissionDeniedError", "ForgedIdentityError"]
