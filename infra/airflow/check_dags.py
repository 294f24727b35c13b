"""Imports every DAG file of a folder the way Airflow's DAG processor does
and fails (exit 1, errors printed) on any import error.

    .venv-airflow/bin/python infra/airflow/check_dags.py infra/airflow/dags [DAG_ID ...]

With DAG ids, also fails when one of them is missing. Prints the DAG ids found.
"""

import sys

from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag


def main() -> int:
    folder, want = sys.argv[1], set(sys.argv[2:])
    # Like Airflow's local DAG bundle: the folder is on sys.path, so DAG
    # files import their shared module (velostream_tasks).
    bag = BundleDagBag(dag_folder=folder, bundle_path=Path(folder).resolve())
    for path, error in sorted(bag.import_errors.items()):
        print(f"import error in {path}:\n{error}", file=sys.stderr)
    missing = sorted(want - set(bag.dag_ids))
    if missing:
        print(f"DAG(s) not found in {folder}: {', '.join(missing)}", file=sys.stderr)
    print("dags: " + " ".join(sorted(bag.dag_ids)))
    return 1 if bag.import_errors or missing else 0


if __name__ == "__main__":
    sys.exit(main())
