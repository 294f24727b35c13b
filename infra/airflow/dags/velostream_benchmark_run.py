"""velostream_benchmark_run: the pipeline's whole lifecycle, one task per step.

provision (topic and table) -> start the consumer (a managed background
process) -> produce -> wait until the group is drained (``velostream status
--wait-drained``) -> stop the consumer (SIGTERM, wait for its clean exit) ->
verify the table against the files.

Settings: connections ``velostream_kafka`` and ``velostream_clickhouse``,
variables ``velostream_source`` (Parquet files, directories or globs,
comma separated), ``velostream_topic``, ``velostream_table`` and the
optional ones of ``velostream_tasks.DEFAULTS``. The consumer is stopped even
when a step before it failed, so no process is left behind.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

import velostream_tasks as vs


def _sources() -> list[str]:
    return [p.strip() for p in vs.setting("velostream_source").split(",") if p.strip()]


with DAG(
    dag_id="velostream_benchmark_run",
    description="Provision, consume, produce, wait drained, stop, verify",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["velostream"],
) as dag:

    @task
    def provision() -> None:
        vs.provision(vs.schema_file(_sources()))

    @task
    def start_consumer(run_id=None) -> int:
        return vs.start_consumer(run_id)

    @task
    def produce() -> None:
        vs.produce(_sources())

    @task
    def wait_drained() -> None:
        vs.wait_drained()

    @task(trigger_rule="all_done")
    def stop_consumer(run_id=None) -> None:
        vs.stop_consumer(run_id)

    @task
    def verify() -> None:
        vs.verify(_sources())

    started = start_consumer()
    drained = wait_drained()
    stopped = stop_consumer()
    provision() >> started >> produce() >> drained >> stopped >> verify()
    # stop_consumer runs after a failed step too (trigger_rule all_done), but
    # only once the consumer was started.
    started >> stopped

