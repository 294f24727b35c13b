"""Read a VeloStream Arrow topic with confluent-kafka and pyarrow, for the tests.

Usage: read_topic.py BROKERS TOPIC PARTITIONS ROWS TIMEOUT_S SUM_COLUMN NULL_COLUMN

Assigns every partition from the beginning, decodes each message value with
pyarrow.ipc.open_stream, and reads until ROWS rows arrived (then one more
second, to notice duplicates) or TIMEOUT_S passed. Prints one JSON object:
{"rows", "messages", "columns", "sum", "nulls", "errors"} where "sum" is the
sum of SUM_COLUMN and "nulls" the null count of NULL_COLUMN. Used by
engine/tests/it/producer.rs; it never decides pass or fail itself.
"""

import json
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition


def main() -> int:
    brokers, topic, partitions, want, timeout, sum_col, null_col = sys.argv[1:8]
    partitions, want, timeout = int(partitions), int(want), float(timeout)
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"read_topic_py_{topic}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    rows = messages = nulls = 0
    total = 0.0
    columns = None
    errors = []
    deadline = time.monotonic() + timeout
    reached = None
    while time.monotonic() < deadline:
        if reached is not None and time.monotonic() > reached + 1.0:
            break
        msg = consumer.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            errors.append(str(msg.error()))
            continue
        try:
            reader = pa.ipc.open_stream(msg.value())
            table = reader.read_all()
        except Exception as e:  # pyarrow raises several types
            errors.append(f"partition {msg.partition()} offset {msg.offset()}: {type(e).__name__}: {e}")
            continue
        messages += 1
        rows += table.num_rows
        if columns is None:
            columns = table.schema.names
        s = pc.sum(table.column(sum_col)).as_py()
        total += s if s is not None else 0.0
        nulls += table.column(null_col).null_count
        if rows >= want and reached is None:
            reached = time.monotonic()
    consumer.close()
    json.dump(
        {
            "rows": rows,
            "messages": messages,
            "columns": columns,
            "sum": total,
            "nulls": nulls,
            "errors": errors,
        },
        sys.stdout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
