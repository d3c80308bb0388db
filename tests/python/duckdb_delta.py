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
from urllib.parse import urlparse

import duckdb
import duckdb_extension_delta
import duckdb_extension_httpfs


def extension_path(package=duckdb_extension_delta, name: str = "delta") -> pathlib.Path:
    """Path of an extension binary (delta, httpfs) that matches the installed duckdb."""
    base = pathlib.Path(package.__file__).resolve().parent / "extensions"
    path = base / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        found = sorted(p.name for p in base.iterdir()) if base.is_dir() else []
        raise RuntimeError(
            f"no {name} extension for duckdb {duckdb.__version__} at {path} "
            f"(package has {found}); pin duckdb and duckdb-extension-{name} "
            "to the same version"
        )
    return path


def connect(database: str = ":memory:", s3: dict | None = None, **kwargs) -> duckdb.DuckDBPyConnection:
    """Return a duckdb connection with the delta extension loaded (no network). With s3 (the
    AWS_* variables `lake` reads, as a dict), httpfs is loaded too and a secret reaches that
    endpoint, so delta_scan('s3://...') reads the bucket."""
    config = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        **kwargs.pop("config", {}),
    }
    con = duckdb.connect(database, config=config, **kwargs)
    con.execute(f"LOAD '{extension_path().as_posix()}'")
    con.execute("SET TimeZone = 'UTC'")
    if s3 is not None:
        con.execute(f"LOAD '{extension_path(duckdb_extension_httpfs, 'httpfs').as_posix()}'")
        endpoint = urlparse(s3["AWS_ENDPOINT_URL"])
        con.execute(
            "CREATE SECRET lake_s3 (TYPE s3, KEY_ID $key, SECRET $secret, REGION $region, "
            "ENDPOINT $endpoint, URL_STYLE 'path', USE_SSL $ssl)",
            {"key": s3["AWS_ACCESS_KEY_ID"], "secret": s3["AWS_SECRET_ACCESS_KEY"],
             "region": s3.get("AWS_REGION", "us-east-1"), "endpoint": endpoint.netloc,
             "ssl": endpoint.scheme == "https"})
    return con
