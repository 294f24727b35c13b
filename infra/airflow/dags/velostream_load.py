"""velostream_load: a scheduled load of one run's Parquet files.

produce the run's files -> wait until the group is drained -> verify.

The consumer is a long-running deployment (``velostream consume
--exactly-once ...``, e.g. the compose ``consumer`` service), not part of
the DAG; ``--exactly-once`` makes ClickHouse hold the offsets with the rows.

Variables:
* ``velostream_load_source``: the run's Parquet path or glob, a Jinja
  template rendered with the run's context, e.g.
  ``/data/trips/{{ ds }}/*.parquet`` (comma separated for several);
* ``velostream_load_verify``: what ``verify`` compares the table with
  (template too; default: the run's files). A table loaded by many runs
  holds all their rows, so point it at every file loaded so far, e.g.
  ``/data/trips/*/*.parquet``;
* ``velostream_topic``, ``velostream_table``, ``velostream_group`` and the
  connections, as for ``velostream_benchmark_run``.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, get_current_context, task

import velostream_tasks as vs


def _rendered(variable: str, default: str | None = None) -> list[str]:
    """A comma-separated list of paths from a templated variable."""
    from airflow.sdk import Variable

    template = Variable.get(variable, default=default)
    if not template:
        raise ValueError(f"Airflow variable {variable} is not set")
    context = get_current_context()
    text = context["task"].render_template(template, context)
    return [p.strip() for p in str(text).split(",") if p.strip()]


with DAG(
    dag_id="velostream_load",
    description="Produce a run's Parquet files, wait until loaded, verify",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["velostream"],
) as dag:

    @task(retries=2)
    def produce() -> None:
        vs.produce(_rendered("velostream_load_source"))

    @task
    def wait_drained() -> None:
        vs.wait_drained()

    @task
    def verify() -> None:
        from airflow.sdk import Variable

        source = Variable.get("velostream_load_source", default=None)
        vs.verify(_rendered("velostream_load_verify", default=source))

    produce() >> wait_drained() >> verify()
