"""Reads a Delta table with the Python `deltalake` package and with DuckDB's delta extension
(loaded from the file its PyPI wheel ships: `INSTALL` would download it) and prints, as JSON,
each reader's column types (and deltalake's version) and rows (sorted by `id`) in one canonical text form, for
the crate's tests to compare with the source.

usage: python read_delta.py TABLE_DIR
"""

import datetime
import decimal
import json
import os
import pathlib
import sys

import deltalake
import duckdb
import duckdb_extension_delta


def canonical(value):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            raise ValueError(f"timestamp without a zone: {value}")
        return value.astimezone(datetime.timezone.utc).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, float):
        return value
    raise TypeError(f"unexpected {type(value).__name__}: {value!r}")


def rows_of(records):
    return [{k: canonical(v) for k, v in r.items()} for r in sorted(records, key=lambda r: r["id"])]


def with_deltalake(path):
    table = deltalake.DeltaTable(path)
    data = table.to_pyarrow_table()
    return {
        "version": table.version(),
        "types": {f.name: str(f.type) for f in data.schema},
        "rows": rows_of(data.to_pylist()),
    }


def with_duckdb(path):
    extension = next(pathlib.Path(duckdb_extension_delta.__file__).parent.rglob("*.duckdb_extension"))
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{extension}'")
    con.execute("SET TimeZone = 'UTC'")
    scan = "select * from delta_scan(?)"
    types = {name: kind for name, kind, *_ in con.execute(f"describe {scan}", [path]).fetchall()}
    cursor = con.execute(f"{scan} order by id", [path])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r)) for r in cursor.fetchall()]
    return {"types": types, "rows": rows_of(rows)}


def main():
    path = sys.argv[1]
    print(json.dumps({"deltalake": with_deltalake(path), "duckdb": with_duckdb(path)}))


if __name__ == "__main__":
    main()
    # deltalake's threads can abort the interpreter's teardown after a successful read
    # ("terminate called without an active exception", delta-rs#2184): leave without one.
    sys.stdout.flush()
    os._exit(0)
