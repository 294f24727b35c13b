"""Run ClickHouse SQL in-process with chdb (modern ClickHouse) for the tests.

Reads a JSON list of SQL strings on stdin, runs each with chdb in TSV
output, and prints a JSON list of results: {"ok": text} or {"error": message}.
Used by engine/tests/it/native_chdb.rs to read Native files that VeloStream
encoded (SELECT ... FROM file('x.native', Native)).
"""

import json
import sys

import chdb


def main() -> int:
    queries = json.load(sys.stdin)
    results = []
    for sql in queries:
        try:
            results.append({"ok": str(chdb.query(sql, "TSV"))})
        except Exception as e:  # chdb raises its own exception types
            results.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
