"""Write a Parquet file covering the Arrow type matrix with a real third-party
writer, and print what was written, value by value, in a canonical text form.

    write_types.py pyarrow|polars|duckdb OUT.parquet

The writer's defaults are kept (compression, dictionary pages, its own string
types: pyarrow's Utf8/LargeUtf8/Utf8View as declared, polars' and DuckDB's
choices), so the file is what a user of that tool would hand to VeloStream.

stdout is one JSON object:
  {"writer": ..., "version": ..., "rows": N,
   "columns": [{"name": ..., "values": [canonical text per row],
                "modern_only": reason-or-null}],
   "dictionary_columns": [columns with a dictionary page in the file]}

The expected values come from the writer's own in-memory data (pyarrow's
table, polars' DataFrame exported to Arrow, DuckDB's result as Arrow), turned
into text by `canon` below; engine/tests/it/type_matrix.rs renders the values
ClickHouse stored in the same text with SQL and compares the two:

  NULL -> NULL; integers -> decimal; booleans -> 1/0; floats -> nan or f
  and the hex of the little-endian float64 bytes without trailing zero
  bytes; strings and binaries -> x and the uppercase hex of the bytes; UUID -> canonical
  lowercase text; dates -> days since 1970-01-01; timestamps, times and durations ->
  integer nanoseconds; decimals -> plain text without trailing fraction
  zeros; struct -> (a,b) with every element NULL for a NULL struct;
  list -> [a,b]; map -> {k:v,k:v}; dictionary -> its value.

`modern_only` columns hold values ClickHouse 18.x cannot store (before 1970,
sub-second timestamps): the 18.16 test expects them to be refused.
"""

import datetime as dt
import decimal
import json
import struct
import sys
import uuid

import pyarrow as pa
import pyarrow.parquet as pq

NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def canon_float(v):
    if v != v:
        return "nan"
    return "f" + struct.pack("<d", float(v)).rstrip(b"\0").hex().upper()


def canon_decimal(v):
    s = format(v, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def canon(arr):
    """Canonical text of every value of a pyarrow array (see the module doc)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    valid = arr.is_valid().to_pylist()
    n = len(arr)

    def each(f, values):
        return [f(v) if ok else "NULL" for v, ok in zip(values, valid)]

    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return each(lambda b: str(uuid.UUID(bytes=b)), arr.storage.to_pylist())
        return canon(arr.storage)
    if pa.types.is_dictionary(t):
        return canon(arr.dictionary_decode())
    if pa.types.is_struct(t):
        kids = [canon(c) for c in arr.flatten()]
        return ["(" + ",".join(k[i] for k in kids) + ")" for i in range(n)]
    if pa.types.is_map(t):
        keys, items, off = canon(arr.keys), canon(arr.items), arr.offsets.to_pylist()
        return [
            "{" + ",".join(f"{keys[j]}:{items[j]}" for j in range(off[i], off[i + 1])) + "}"
            if valid[i]
            else "NULL"
            for i in range(n)
        ]
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        vals, off = canon(arr.values), arr.offsets.to_pylist()
        return [
            "[" + ",".join(vals[off[i] : off[i + 1]]) + "]" if valid[i] else "NULL"
            for i in range(n)
        ]
    if pa.types.is_fixed_size_list(t):
        vals, k = canon(arr.values), t.list_size
        return [
            "[" + ",".join(vals[i * k : (i + 1) * k]) + "]" if valid[i] else "NULL"
            for i in range(n)
        ]
    if pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_duration(t):
        raw = arr.cast(pa.int32() if pa.types.is_time32(t) else pa.int64()).to_pylist()
        return each(lambda v: str(v * NS[t.unit]), raw)
    if pa.types.is_date(t):
        return each(lambda d: str((d - EPOCH).days), arr.to_pylist())
    if pa.types.is_boolean(t):
        return each(lambda b: "1" if b else "0", arr.to_pylist())
    if pa.types.is_integer(t):
        return each(str, arr.to_pylist())
    if pa.types.is_floating(t):
        return each(canon_float, arr.to_pylist())
    if pa.types.is_decimal(t):
        return each(canon_decimal, arr.to_pylist())
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return each(lambda s: "x" + s.encode().hex().upper(), arr.to_pylist())
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    ):
        return each(lambda b: "x" + b.hex().upper(), arr.to_pylist())
    if pa.types.is_null(t):
        return ["NULL"] * n
    raise SystemExit(f"write_types.py: no canonical form for Arrow type {t}")


EPOCH = dt.date(1970, 1, 1)
STRINGS = ["", "héllo ✓ 名前", None, "tab\tnl\nq'\"\\ and a long tail"]
WHOLE_SECONDS = [0, 1_700_000_000, 4_294_967_295, None]  # inside 18.x's DateTime


def ts(unit, tz=None, seconds=WHOLE_SECONDS):
    vals = [None if s is None else s * (10**9 // NS[unit]) for s in seconds]
    return pa.array(vals, pa.timestamp(unit, tz))


def pyarrow_table():
    d = decimal.Decimal
    u = [uuid.UUID("61f0c404-5cb3-11e7-907b-a6006ad3dba0"), uuid.UUID(int=0), None,
         uuid.UUID("ffffffff-0000-4000-8000-0123456789ab")]
    st_type = pa.struct([("a", pa.int32()), ("b", pa.string())])
    lst_type = pa.list_(pa.struct([("x", pa.int64()), ("y", pa.list_(pa.string()))]))
    cols = {
        "id": pa.array([0, 1, 2, 3], pa.int64()),
        "i8": pa.array([-128, 127, 0, None], pa.int8()),
        "i16": pa.array([-32768, 32767, 1, -1], pa.int16()),
        "i32": pa.array([-(2**31), 2**31 - 1, 0, 7], pa.int32()),
        "i64": pa.array([-(2**63), 2**63 - 1, 0, None], pa.int64()),
        "u8": pa.array([0, 255, 1, None], pa.uint8()),
        "u16": pa.array([0, 65535, 1, 2], pa.uint16()),
        "u32": pa.array([0, 2**32 - 1, 1, None], pa.uint32()),
        "u64": pa.array([0, 2**64 - 1, 1, 2], pa.uint64()),
        "f16": pa.array([1.5, -0.0, float("inf"), None], pa.float16()),
        "f32": pa.array([float("nan"), float("-inf"), 1.100000023841858, -0.0], pa.float32()),
        "f64": pa.array([1e300, float("nan"), -2.25, None], pa.float64()),
        "b": pa.array([True, False, None, True]),
        "s": pa.array(STRINGS, pa.string()),
        "ls": pa.array(STRINGS, pa.large_string()),
        "sv": pa.array(STRINGS, pa.string_view()),
        "bin": pa.array([b"\x00\xff", b"", None, b"abc"], pa.binary()),
        "lbin": pa.array([b"\x00\xff", b"", None, b"abc"], pa.large_binary()),
        "bv": pa.array([b"\x00\xff", b"", None, b"0123456789abcdefXYZ"], pa.binary_view()),
        "fsb": pa.array([b"abc", b"\x00\x01\x02", None, b"xyz"], pa.binary(3)),
        "dict_s": pa.array(["red", "green", "red", None]).dictionary_encode(),
        "dict_i": pa.array([10, -20, 10, None], pa.int64()).dictionary_encode(),
        "d32": pa.array([dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(2149, 6, 6), None], pa.date32()),
        "d64": pa.array([dt.date(1970, 1, 1), dt.date(2000, 2, 29), dt.date(2100, 1, 1), None], pa.date64()),
        "d32_wide": pa.array([dt.date(1900, 1, 1), dt.date(2299, 12, 31), dt.date(1969, 12, 31), None], pa.date32()),
        "ts_s": ts("s"),
        "ts_ms_utc": ts("ms", "UTC"),
        "ts_us_paris": ts("us", "Europe/Paris"),
        "ts_ns_ny": ts("ns", "America/New_York"),
        "ts_s_plus5": ts("s", "+05:00"),
        "ts_ns_frac": pa.array([1_700_000_000_123_456_789, -1, 1, None], pa.timestamp("ns", "UTC")),
        "ts_ms_frac": pa.array([1, 999, -1_001, None], pa.timestamp("ms")),
        "dec32": pa.array([d("12345.67"), d("-0.01"), d("0"), None], pa.decimal32(7, 2)),
        "dec64": pa.array([d("123456789012345.678"), d("-1.5"), d("0"), None], pa.decimal64(18, 3)),
        "dec128": pa.array([d("1234567890123456789012345678.0123456789"), d("-0.0000000001"), d("0"), None],
                           pa.decimal128(38, 10)),
        "dec76": pa.array([d("9" * 56 + "." + "9" * 20), d("-1." + "0" * 19 + "1"), d("0"), None],
                          pa.decimal256(76, 20)),
        "uuid": pa.array([x.bytes if x else None for x in u], pa.uuid()),
        "t32s": pa.array([0, 86_399, 3_600, None], pa.time32("s")),
        "t32ms": pa.array([0, 86_399_999, 1, None], pa.time32("ms")),
        "t64us": pa.array([0, 86_399_999_999, 1, None], pa.time64("us")),
        "t64ns": pa.array([0, 86_399_999_999_999, 1, None], pa.time64("ns")),
        "dur_s": pa.array([-1, 0, 86_400, None], pa.duration("s")),
        "dur_ms": pa.array([-1, 0, 2**40, None], pa.duration("ms")),
        "dur_us": pa.array([-1, 0, 2**50, None], pa.duration("us")),
        "dur_ns": pa.array([-1, 0, 2**62, None], pa.duration("ns")),
        "st": pa.array([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}, {"a": -5, "b": None}], st_type),
        "st_nested": pa.array(
            [{"inner": {"x": 1}, "tags": ["a"]}, {"inner": {"x": None}, "tags": []},
             {"inner": None, "tags": ["b", None]}, {"inner": {"x": -1}, "tags": []}],
            pa.struct([("inner", pa.struct([("x", pa.int8())])), ("tags", pa.list_(pa.string()))])),
        "li": pa.array([[1, None, 3], [], [None], [-(2**31), 2**31 - 1]], pa.list_(pa.int32())),
        "lls": pa.array([["a", "b"], [], [""], ["ü", None]], pa.large_list(pa.string())),
        "fsl": pa.array([[1.5, -2.0], [0.0, 0.0], [1e-300, 3.0], [7.0, 8.0]], pa.list_(pa.float64(), 2)),
        "lst": pa.array([[{"x": 1, "y": ["a", None]}], [], [{"x": 2, "y": []}, {"x": None, "y": ["b"]}],
                         [{"x": 3, "y": ["c"]}]], lst_type),
        "lst_n": pa.array([[None, {"a": 1, "b": "x"}], [], [{"a": None, "b": None}], [{"a": 2, "b": "z"}]],
                          pa.list_(st_type)),
        "ll": pa.array([[[1], [2, 3]], [], [[]], [[-(2**63)]]], pa.list_(pa.list_(pa.int64()))),
        "map_si": pa.array([[("k", 1), ("z", None)], [], [("a", -1)], [("", 0)]],
                           pa.map_(pa.string(), pa.int64())),
    }
    modern_only = {
        "d32_wide": "dates before 1970 or after 2149",
        "ts_ns_frac": "sub-second and pre-1970 timestamps",
        "ts_ms_frac": "sub-second and pre-1970 timestamps",
        "dec76": "Decimal wider than 38 digits",
        "map_si": "Map",
    }
    table = pa.table(cols)
    pq.write_table(table, OUT)
    return table, modern_only


def polars_table():
    import polars as pl

    secs = [0, 1_700_000_000, 4_000_000_000, None]
    df = pl.DataFrame(
        {
            "id": pl.Series([0, 1, 2, 3], dtype=pl.Int64),
            "i8": pl.Series([-128, 127, None, 0], dtype=pl.Int8),
            "u64": pl.Series([0, 2**64 - 1, 1, None], dtype=pl.UInt64),
            "f32": pl.Series([1.5, float("nan"), None, -0.0], dtype=pl.Float32),
            "f64": pl.Series([1e-300, float("inf"), 2.5, None], dtype=pl.Float64),
            "b": pl.Series([True, None, False, True], dtype=pl.Boolean),
            "s": pl.Series(STRINGS, dtype=pl.String),
            "s_rep": pl.Series(["aa", "bb", "aa", "aa"], dtype=pl.String),
            "bin": pl.Series([b"\x00", b"", None, b"\xff\xfe"], dtype=pl.Binary),
            "cat": pl.Series(["x", "y", None, "x"], dtype=pl.Categorical),
            "enum": pl.Series(["lo", "hi", "lo", None], dtype=pl.Enum(["lo", "hi"])),
            "date": pl.Series([dt.date(1970, 1, 1), dt.date(2024, 2, 29), None, dt.date(2149, 6, 6)], dtype=pl.Date),
            "dt_ms": pl.Series([None if s is None else s * 1000 for s in secs], dtype=pl.Int64).cast(pl.Datetime("ms")),
            "dt_us_tokyo": pl.Series([None if s is None else s * 10**6 for s in secs], dtype=pl.Int64)
            .cast(pl.Datetime("us", "Asia/Tokyo")),
            "dt_ns": pl.Series([None if s is None else s * 10**9 for s in secs], dtype=pl.Int64).cast(pl.Datetime("ns")),
            "dt_ns_frac": pl.Series([1_700_000_000_123_456_789, -1, None, 5], dtype=pl.Int64).cast(pl.Datetime("ns", "UTC")),
            "dur_us": pl.Series([-1, 0, None, 10**12], dtype=pl.Int64).cast(pl.Duration("us")),
            "tm": pl.Series([dt.time(0, 0), dt.time(23, 59, 59, 999999), None, dt.time(12, 0, 1)], dtype=pl.Time),
            "dec": pl.Series([decimal.Decimal("12345678901234567.891"), decimal.Decimal("-0.001"), None,
                              decimal.Decimal("0")], dtype=pl.Decimal(20, 3)),
            "st": pl.Series([{"a": 1, "b": "x"}, None, {"a": None, "b": "y"}, {"a": 2, "b": None}],
                            dtype=pl.Struct({"a": pl.Int32, "b": pl.String})),
            "li": pl.Series([[1, None], [], [3], [-(2**63)]], dtype=pl.List(pl.Int64)),
            "arr": pl.Series([[1, 2], [3, 4], [None, 6], [7, 8]], dtype=pl.Array(pl.Int32, 2)),
            "lst": pl.Series([[{"x": 1, "y": "a"}], [], [{"x": None, "y": "b"}, {"x": 3, "y": None}], [{"x": 4, "y": "d"}]],
                             dtype=pl.List(pl.Struct({"x": pl.Int64, "y": pl.String}))),
        }
    )
    df.write_parquet(OUT)
    modern_only = {"dt_ns_frac": "sub-second and pre-1970 timestamps"}
    return df.to_arrow(), modern_only


def duckdb_table():
    import duckdb

    con = duckdb.connect()
    con.execute("SET arrow_lossless_conversion = true")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        """CREATE TABLE t (id BIGINT, ti TINYINT, si SMALLINT, i INTEGER, bi BIGINT, ut UTINYINT,
           us USMALLINT, ui UINTEGER, ub UBIGINT, f FLOAT, d DOUBLE, b BOOLEAN, s VARCHAR, s_rep VARCHAR,
           blob BLOB, e ENUM('lo', 'hi'), dt DATE, ts TIMESTAMP, ts_ms TIMESTAMP_MS, ts_s TIMESTAMP_S,
           ts_ns TIMESTAMP_NS, tstz TIMESTAMPTZ, ts_frac TIMESTAMP_NS, tm TIME, dec4 DECIMAL(4, 1),
           dec18 DECIMAL(18, 3), dec38 DECIMAL(38, 10), u UUID, st STRUCT(a INTEGER, b VARCHAR),
           li INTEGER[], lst STRUCT(x INTEGER, y VARCHAR)[], m MAP(VARCHAR, INTEGER))"""
    )
    rows = [
        "(0, -128, -32768, -2147483648, -9223372036854775808, 0, 0, 0, 0, 1.5, 1e300, true, '', 'aa', "
        "'\\x00\\xFF'::BLOB, 'lo', DATE '1970-01-01', TIMESTAMP '1970-01-01 00:00:00', TIMESTAMP_MS '2023-11-14 22:13:20', "
        "TIMESTAMP_S '2106-02-07 06:28:15', TIMESTAMP_NS '2000-02-29 12:00:00', TIMESTAMPTZ '2023-11-14 22:13:20+00', "
        "TIMESTAMP_NS '2023-11-14 22:13:20.123456789', TIME '00:00:00', 123.4, 123456789012345.678, "
        "1234567890123456789012345678.0123456789, '61f0c404-5cb3-11e7-907b-a6006ad3dba0', {'a': 1, 'b': 'x'}, "
        "[1, NULL, 3], [{'x': 1, 'y': 'a'}], MAP {'k': 1, 'z': NULL})",
        "(1, 127, 32767, 2147483647, 9223372036854775807, 255, 65535, 4294967295, 18446744073709551615, "
        "'-inf'::FLOAT, 'nan'::DOUBLE, false, 'héllo ✓ 名前', 'bb', ''::BLOB, 'hi', DATE '2149-06-06', "
        "TIMESTAMP '2023-11-14 22:13:20', TIMESTAMP_MS '1970-01-01 00:00:00', TIMESTAMP_S '1970-01-01 00:00:01', "
        "TIMESTAMP_NS '1970-01-01 00:00:00', TIMESTAMPTZ '1970-01-01 00:00:00+00', TIMESTAMP_NS '1969-12-31 23:59:59.999999999', "
        "TIME '23:59:59.999999', -0.1, -1.5, -0.0000000001, '00000000-0000-0000-0000-000000000000', NULL, [], [], MAP {})",
        "(2, NULL, 1, NULL, 0, NULL, 1, NULL, 1, NULL, -2.25, NULL, NULL, 'aa', NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
        "NULL, NULL, NULL, NULL, NULL, NULL, NULL, {'a': NULL, 'b': 'y'}, [NULL], "
        "[{'x': NULL, 'y': 'b'}, {'x': 3, 'y': NULL}], MAP {'a': -1})",
        "(3, 0, -1, 7, -1, 1, 2, 3, 4, -0.0, 0.0, true, 'tab\tnl\nq''\"\\ and a long tail', 'aa', 'abc'::BLOB, 'lo', "
        "DATE '2000-02-29', TIMESTAMP '2106-02-07 06:28:15', TIMESTAMP_MS '2000-01-01 00:00:00', TIMESTAMP_S '2000-01-01 00:00:00', "
        "TIMESTAMP_NS '2100-01-01 00:00:00', TIMESTAMPTZ '2100-01-01 00:00:00+00', TIMESTAMP_NS '2100-01-01 00:00:00.000000001', "
        "TIME '12:00:01', 0, 0, 0, 'ffffffff-0000-4000-8000-0123456789ab', {'a': -5, 'b': NULL}, [-2147483648, 2147483647], "
        "[{'x': 4, 'y': 'd'}], MAP {'': 0})",
    ]
    con.execute("INSERT INTO t VALUES " + ", ".join(rows))
    con.execute(f"COPY (SELECT * FROM t ORDER BY id) TO '{OUT}' (FORMAT parquet)")
    table = con.sql("SELECT * FROM t ORDER BY id").arrow()
    if hasattr(table, "read_all"):
        table = table.read_all()
    modern_only = {"ts_frac": "sub-second and pre-1970 timestamps", "m": "Map"}
    return table, modern_only


def dictionary_columns(path):
    md = pq.ParquetFile(path).metadata
    out = set()
    for rg in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(rg).column(c)
            if col.has_dictionary_page:
                out.add(col.path_in_schema.split(".")[0])
    return sorted(out)


def main():
    global OUT
    writer, OUT = sys.argv[1], sys.argv[2]
    make = {"pyarrow": pyarrow_table, "polars": polars_table, "duckdb": duckdb_table}[writer]
    table, modern_only = make()
    module = __import__(writer)
    json.dump(
        {
            "writer": writer,
            "version": module.__version__,
            "rows": table.num_rows,
            "columns": [
                {"name": name, "values": canon(table.column(name)), "modern_only": modern_only.get(name)}
                for name in table.column_names
            ],
            "dictionary_columns": dictionary_columns(OUT),
        },
        sys.stdout,
        ensure_ascii=False,
    )
    return 0


OUT = None

if __name__ == "__main__":
    sys.exit(main())
