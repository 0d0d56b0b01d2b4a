#!/usr/bin/env python3
"""Runs Palisade's analytics DDL and dashboard queries on chdb (embedded ClickHouse 26.x).

Input: a JSON file written by crates/analytics/tests/chdb.rs:
  {"database": "palisade",
   "ddl": ["CREATE ...", ...],          # every migration statement, in order
   "inserts": ["INSERT ... FORMAT JSONEachRow ...", ...],
   "queries": [["dashboard: panel", "SELECT ..."], ...],   # macros already expanded
   "must_return_rows": true}
Every statement must succeed; with must_return_rows, every query must return a row.
Prints one line per statement and a closing 'N passed, N failed' line; exits 1 on failure,
2 when chdb is not installed (pip install chdb-core).
"""
import json
import sys
import tempfile


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: chdb_check.py CHECK.json", file=sys.stderr)
        return 64
    try:
        import chdb  # noqa: F401
        from chdb import session
    except ImportError as e:
        print(f"chdb is not installed ({e}); pip install chdb-core", file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="palisade-chdb-") as path:
        s = session.Session(path)
        print(f"chdb {chdb.__version__}, server {s.query('SELECT version()', 'CSV').bytes().decode().strip()}")

        def run(label, sql, need_rows=False):
            nonlocal passed, failed
            try:
                out = s.query(sql, "TSV").bytes().decode("utf-8", "replace")
            except Exception as e:  # chdb raises its own error types
                failed += 1
                print(f"FAIL {label}: {str(e).strip()[:600]}\n  sql: {sql[:400]}")
                return
            if need_rows and not out.strip():
                failed += 1
                print(f"FAIL {label}: returned no rows\n  sql: {sql[:400]}")
                return
            passed += 1
            print(f"ok   {label}")

        for i, sql in enumerate(spec.get("ddl", [])):
            run(f"ddl #{i + 1}: {' '.join(sql.split())[:90]}", sql)
        db = spec.get("database")
        if db:
            s.query(f"USE {db}")
        for i, sql in enumerate(spec.get("inserts", [])):
            run(f"insert #{i + 1}", sql)
        for label, sql in spec.get("queries", []):
            run(label, sql, spec.get("must_return_rows", False))
        s.close()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
