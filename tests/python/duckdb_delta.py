"""DuckDB connections with the ``delta`` extension loaded offline.

DuckDB normally fetches its ``delta`` extension from its own download site on
first use (``INSTALL delta`` / autoloading on ``delta_scan``). That site is not
reachable from the project's machines or CI; only PyPI is. The PyPI package
``duckdb-extension-delta`` (pinned in requirements.txt to the same version as
``duckdb``) ships the prebuilt, signed extension binary inside the wheel at

    duckdb_extension_delta/extensions/v<duckdb version>/delta.duckdb_extension

so we ``LOAD`` that file by absolute path. This touches neither the network nor
``~/.duckdb`` (the package's own helper, ``duckdb_extensions.import_extension``,
instead runs ``INSTALL '<file>'``, which copies ~80 MB into the extension
directory under $HOME; we avoid that). Auto-install/auto-load of known
extensions is switched off so a missing extension fails fast instead of trying
the network.

The session time zone is set to UTC so TIMESTAMP WITH TIME ZONE values come
back the same whatever the machine's TZ is.
"""

from __future__ import annotations

import pathlib

import duckdb
import duckdb_extension_delta


def extension_path() -> pathlib.Path:
    """Path of the delta extension binary that matches the installed duckdb."""
    base = pathlib.Path(duckdb_extension_delta.__file__).resolve().parent / "extensions"
    path = base / f"v{duckdb.__version__}" / "delta.duckdb_extension"
    if not path.is_file():
        found = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
        raise RuntimeError(
            f"no delta extension for duckdb {duckdb.__version__} at {path} "
            f"(package has {found}); pin duckdb and duckdb-extension-delta "
            "to the same version"
        )
    return path


def connect(database: str = ":memory:", **kwargs) -> duckdb.DuckDBPyConnection:
    """Return a duckdb connection with the delta extension loaded (no network)."""
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        **kwargs.pop("config", {}),
    }
    con = duckdb.connect(database, config=config, **kwargs)
    con.execute(f"LOAD '{extension_path().as_posix()}'")
    con.execute("SET TimeZone = 'UTC'")
    return con
