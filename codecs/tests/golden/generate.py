#!/usr/bin/env python3
"""Writes the golden files under codecs/tests/golden/ (see README.md there).

Run from the repository root with the project venv (infra/local/install.sh):

    .venv/bin/python codecs/tests/golden/generate.py

Written with pyarrow 26.0.1 and chdb-core 26.9.0 (in-process ClickHouse 26.9),
the versions pinned in infra/local/requirements.txt. Other versions may write
different (equally valid) bytes, so the script refuses to run with them unless
given --any-version. The output is deterministic: running it twice writes the
same bytes. The values below are repeated, explicitly, in codecs/tests/golden.rs;
change both together.

- ipc/*.arrows: Arrow IPC streams written by pyarrow (a third-party writer),
  decoded by velostream_codecs::ipc in the tests.
- native/*.native: one ClickHouse Native block each, written by chdb with
  `SELECT ... FORMAT Native`; the tests encode the same values with
  velostream_codecs::native and compare the bytes.
"""

import argparse
import sys
from decimal import Decimal
from pathlib import Path

import chdb
import pyarrow as pa

PYARROW_VERSION = "26.0.1"
CHDB_VERSION = "26.9.0"

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------- IPC streams

# A NYC-taxi-like table: 8 rows, written as two batches (5 + 3 rows).
TAXI_SCHEMA = pa.schema(
    [
        pa.field("VendorID", pa.int32()),
        pa.field("tpep_pickup_datetime", pa.timestamp("us")),
        pa.field("tpep_dropoff_datetime", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("passenger_count", pa.int64()),
        pa.field("trip_distance", pa.float64(), nullable=False),
        pa.field("tip_ratio", pa.float32()),
        pa.field("total_amount", pa.decimal128(10, 2)),
        pa.field("pickup_date", pa.date32()),
        pa.field("store_and_fwd_flag", pa.string()),
        pa.field("PULocationID", pa.int32(), nullable=False),
        pa.field("airport_fee", pa.float64()),
    ]
)
TAXI = {
    "VendorID": [1, 2, 2, None, 1, 2, 1, None],
    "tpep_pickup_datetime": [
        1672533130000000,
        1672533300123456,
        1672534000000001,
        None,
        1672617599999999,
        0,
        -1,
        1672531200000000,
    ],
    "tpep_dropoff_datetime": [
        1672533730000000,
        1672534200000000,
        1672534900000000,
        1672535000000000,
        1672618000000000,
        600000000,
        599999999,
        1672531800000000,
    ],
    "passenger_count": [1, None, 2, 1, None, 5, 0, 3],
    "trip_distance": [0.97, 1.1, 2.51, 0.0, 12.3, 1.43, -0.5, 3.25],
    "tip_ratio": [0.0, 0.25, None, 1.5, -0.0, float("inf"), 0.125, 3.75],
    "total_amount": [
        Decimal(v) if v is not None else None
        for v in ["14.30", "-5.50", None, "0.00", "99999999.99", "1.01", "0.01", "23.45"]
    ],
    "pickup_date": [19358, 19358, 19359, None, 19358, 0, -1, 19358],
    "store_and_fwd_flag": ["N", "N", None, "Y", "N", None, "", "é€"],
    "PULocationID": [161, 43, 48, 138, 132, 1, 265, 264],
    "airport_fee": [None] * 8,
}


def taxi_table() -> pa.Table:
    return pa.table(
        [pa.array(TAXI[f.name], f.type) for f in TAXI_SCHEMA], schema=TAXI_SCHEMA
    )


def stream(schema: pa.Schema, batches, compression=None, deltas=False) -> bytes:
    opts = pa.ipc.IpcWriteOptions(compression=compression, emit_dictionary_deltas=deltas)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=opts) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def batch(schema: pa.Schema, columns) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(c, f.type) for c, f in zip(columns, schema)], schema=schema
    )


def dict_batch(schema: pa.Schema, indices, dictionary) -> pa.RecordBatch:
    array = pa.DictionaryArray.from_arrays(
        pa.array(indices, pa.int32()), pa.array(dictionary, pa.string())
    )
    return pa.record_batch([array], schema=schema)


def ipc_files() -> dict:
    taxi = taxi_table()
    taxi_batches = taxi.to_batches(max_chunksize=5)
    assert [b.num_rows for b in taxi_batches] == [5, 3]

    dict_schema = pa.schema([pa.field("zone", pa.dictionary(pa.int32(), pa.string()))])
    zones = ["Manhattan", "Queens", "Brooklyn"]

    multi_schema = pa.schema(
        [pa.field("seq", pa.int64(), nullable=False), pa.field("label", pa.string())]
    )
    large_schema = pa.schema(
        [pa.field("note", pa.large_string()), pa.field("blob", pa.large_binary())]
    )
    return {
        "taxi_lz4.arrows": stream(TAXI_SCHEMA, taxi_batches, "lz4"),
        "taxi_zstd.arrows": stream(TAXI_SCHEMA, taxi_batches, "zstd"),
        "taxi_none.arrows": stream(TAXI_SCHEMA, taxi_batches, None),
        "empty.arrows": stream(TAXI_SCHEMA, [], "lz4"),
        # One dictionary shared by both batches (written once).
        "dictionary.arrows": stream(
            dict_schema,
            [
                dict_batch(dict_schema, [0, 1, 0, None, 2], zones),
                dict_batch(dict_schema, [2, 2, None, 1], zones),
            ],
            "lz4",
        ),
        # Batch 2 extends the dictionary (a delta dictionary batch), batch 3
        # replaces it (a non-delta dictionary batch for the same id).
        "dictionary_changes.arrows": stream(
            dict_schema,
            [
                dict_batch(dict_schema, [1, 0, None], ["a", "b"]),
                dict_batch(dict_schema, [2, 0, 2], ["a", "b", "c"]),
                dict_batch(dict_schema, [0, None], ["x"]),
            ],
            None,
            deltas=True,
        ),
        # Four batches of 3, 0, 1 and 2 rows.
        "multi_batch.arrows": stream(
            multi_schema,
            [
                batch(multi_schema, [[0, 1, 2], ["a", None, "c"]]),
                batch(multi_schema, [[], []]),
                batch(multi_schema, [[3], ["d"]]),
                batch(multi_schema, [[4, 5], [None, "f"]]),
            ],
            "zstd",
        ),
        "large_types.arrows": stream(
            large_schema,
            [
                batch(
                    large_schema,
                    [
                        ["short", None, "x" * 300, "", "ünï"],
                        [b"\x00\x01", b"", None, b"\xff\xff\xff", b"end"],
                    ],
                )
            ],
            None,
        ),
    }


# ---------------------------------------------------------------- Native blocks

# File name -> (structure, rows) for `SELECT * FROM values(structure, rows...)`.
# Rows are SQL tuples; each file is one block.
NATIVE = {
    "ints.native": (
        "u8 UInt8, u16 UInt16, u32 UInt32, u64 UInt64, i8 Int8, i16 Int16, i32 Int32, i64 Int64",
        [
            "(0, 0, 0, 0, -128, -32768, -2147483648, -9223372036854775808)",
            "(1, 258, 16909060, 72623859790382856, -1, -2, -3, -4)",
            "(255, 65535, 4294967295, 18446744073709551615, 127, 32767, 2147483647, 9223372036854775807)",
        ],
    ),
    "floats.native": (
        "f32 Float32, f64 Float64",
        [
            "(1.5, 0.1)",
            "(-0.0, -1e300)",
            "(inf, -inf)",
            "(-3.25, 2.5e-308)",
        ],
    ),
    "strings.native": (
        "s String, ns Nullable(String)",
        [
            "('', 'x')",
            "('abc', NULL)",
            "('é€ unicode', '')",
            f"('{'y' * 200}', NULL)",
        ],
    ),
    "nullable_int.native": (
        "n Nullable(Int32)",
        ["(1)", "(NULL)", "(-3)", "(NULL)", "(2147483647)"],
    ),
    # The structure says DateTime('UTC') so the text parses the same on any
    # machine; ClickHouse 26.9 writes the column type as plain `DateTime` in
    # Native output (the time zone is dropped, DateTime64 keeps it).
    "dates.native": (
        "dt DateTime('UTC'), d Date, d32 Date32, dt64 DateTime64(6, 'UTC')",
        [
            "('1970-01-01 00:00:00', '1970-01-01', '1900-01-01', '1970-01-01 00:00:00.000000')",
            "('2023-11-14 22:13:20', '2023-01-01', '1970-01-01', '2023-11-14 22:13:20.123456')",
            "('2106-02-07 06:28:15', '2149-06-06', '2299-12-31', '1969-12-31 23:59:58.999999')",
        ],
    ),
    "decimals.native": (
        "d9 Decimal(9, 2), d18 Decimal(18, 4), d38 Decimal(38, 10), d76 Decimal(76, 20)",
        [
            # Strings, not numeric literals: ClickHouse would read those as Float64.
            "('1234567.89', '12345678901234.5678', '1234567890123456789012345678.9012345678', '1')",
            "('-0.01', '-0.0001', '-0.0000000001', '-0.00000000000000000001')",
            "('0', '0', '0', '0')",
        ],
    ),
    "arrays.native": (
        "ai Array(Int32), ans Array(Nullable(String)), aai Array(Array(UInt8))",
        [
            "([1, 2], ['a', NULL], [[1], [], [2, 3]])",
            "([], [], [])",
            "([-3], [NULL, 'b', ''], [[]])",
        ],
    ),
    # ClickHouse always puts the default value ('' and, when nullable, NULL
    # before it) first in a LowCardinality dictionary; the encoder only adds
    # the values it meets. Both are valid; these rows start with '' (after a
    # NULL) so both writers build the same dictionary and the bytes compare.
    "low_cardinality.native": (
        "lc LowCardinality(String), lcn LowCardinality(Nullable(String))",
        [
            "('', NULL)",
            "('b', '')",
            "('a', 'x')",
            "('b', NULL)",
            "('', 'x')",
        ],
    ),
    "misc.native": (
        "b Bool, fs FixedString(3), id UUID",
        [
            "(true, 'ab', '00112233-4455-6677-8899-aabbccddeeff')",
            "(false, 'xyz', '00000000-0000-0000-0000-000000000000')",
        ],
    ),
}


def native_block(structure: str, rows) -> bytes:
    quoted = structure.replace("'", "\\'")
    sql = f"SELECT * FROM values('{quoted}', {', '.join(rows)})"
    return chdb.query(sql, "Native").bytes()


# ---------------------------------------------------------------- main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--any-version", action="store_true", help="run with other pyarrow/chdb versions")
    args = p.parse_args()
    have = (pa.__version__, chdb.__version__)
    if have != (PYARROW_VERSION, CHDB_VERSION) and not args.any_version:
        print(
            f"pyarrow {have[0]} / chdb {have[1]}; the golden files are written with "
            f"pyarrow {PYARROW_VERSION} / chdb {CHDB_VERSION} (--any-version to override)",
            file=sys.stderr,
        )
        return 1
    files = {f"ipc/{k}": v for k, v in ipc_files().items()}
    files.update({f"native/{k}": native_block(*v) for k, v in NATIVE.items()})
    for name, data in files.items():
        path = HERE / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        print(f"{len(data):6d}  {path.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
