"""Produce one Arrow IPC stream written by pyarrow with confluent-kafka and
NO VeloStream headers (a foreign producer), for engine/tests/it/consumer.rs.

Usage: produce_pyarrow.py BROKERS TOPIC ROWS

Row i (0-based) holds: id = i (int64), name = "row-<i>" (string, null when
i % 7 == 3), amount = i * 0.25 (float64), day = i % 1000 (date32, days since
1970-01-01), ts = 1_700_000_000 + i seconds (timestamp[us]).
The IPC body is LZ4_FRAME-compressed, as pyarrow writes it by default for
compression="lz4". Prints the partition and offset of the message.
"""

import sys

import pyarrow as pa
from confluent_kafka import Producer


def main() -> int:
    brokers, topic, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ids = list(range(rows))
    table = pa.table(
        {
            "id": pa.array(ids, type=pa.int64()),
            "name": pa.array([None if i % 7 == 3 else f"row-{i}" for i in ids], type=pa.string()),
            "amount": pa.array([i * 0.25 for i in ids], type=pa.float64()),
            "day": pa.array([i % 1000 for i in ids], type=pa.date32()),
            "ts": pa.array([(1_700_000_000 + i) * 1_000_000 for i in ids], type=pa.timestamp("us")),
        }
    )
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="lz4")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    value = sink.getvalue().to_pybytes()

    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            raise RuntimeError(f"delivery failed: {err}")
        delivered.append((msg.partition(), msg.offset()))

    producer = Producer({"bootstrap.servers": brokers, "message.max.bytes": 33554432})
    producer.produce(topic, value=value, on_delivery=on_delivery)
    remaining = producer.flush(30)
    if remaining or not delivered:
        print(f"message not delivered to {topic}", file=sys.stderr)
        return 1
    print(f"{delivered[0][0]} {delivered[0][1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
