"""Opening the project's SQLite files (journals, sweep results, the service's log) safely: a
file that is not SQLite, a directory, a missing folder, or another tool's database is refused
with a :class:`StoreError` naming the file, instead of a traceback or tables written into
someone else's database."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


class StoreError(ValueError):
    """A file that cannot be this kind of modelrecon database."""


def connect(path: str | Path, what: str, tables: set[str], **kwargs: Any) -> sqlite3.Connection:
    """An SQLite connection to ``path``, a ``what`` (e.g. "query journal") whose tables are among
    ``tables``; a new or empty file is fine, anything else raises :class:`StoreError`."""
    if str(path) == ":memory:":
        return sqlite3.connect(":memory:", **kwargs)
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{what} {path} is a directory, not a file")
    if not path.parent.is_dir():
        raise StoreError(f"{what} {path}: there is no directory {path.parent}")
    try:
        db = sqlite3.connect(str(path), **kwargs)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open {what} {path}: {e}") from None
    try:
        found = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        db.close()
        raise StoreError(f"{path} is not a {what}: not an SQLite file ({e})") from None
    foreign = sorted(t for t in found if not t.startswith("sqlite_") and t not in tables)
    if foreign:
        db.close()
        raise StoreError(f"{path} is not a {what}: it holds other tables ({', '.join(foreign[:5])})")
    return db
