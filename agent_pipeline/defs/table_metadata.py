"""What the Dagster UI shows for a table the pipeline writes: its row count and column schema read from the store
itself (so they cannot drift from the DDL), and frames as ``MetadataValue.table`` with readable numbers."""

import math
from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

COLUMNS_SQL = ("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
               "ORDER BY ordinal_position")


def table_metadata(conn, table: str) -> dict[str, object]:
    """``dagster/row_count`` and ``dagster/column_schema`` of ``table`` on an open store connection; an absent
    table counts 0 rows and has no schema yet."""
    columns = conn.execute(COLUMNS_SQL, [table]).fetchall()
    if not columns:
        return {"dagster/row_count": dg.MetadataValue.int(0), "dagster/table_name": table}
    rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return {
        "dagster/row_count": dg.MetadataValue.int(int(rows)),
        "dagster/table_name": table,
        "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(name, str(kind)) for name, kind in columns]),
    }


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "int"
    if pd.api.types.is_float_dtype(series):
        return "float"
    return "string"


def frame_table(frame: pd.DataFrame, columns: Sequence[str] | None = None, digits: int = 4,
                descriptions: Mapping[str, str] | None = None) -> dg.TableMetadataValue:
    """``frame`` (or its ``columns``) as a table the UI renders, numbers rounded, missing values left blank."""
    frame = frame[list(columns)] if columns is not None else frame
    schema = dg.TableSchema(columns=[dg.TableColumn(c, _kind(frame[c]), (descriptions or {}).get(c))
                                     for c in frame.columns])
    records = [dg.TableRecord({c: rounded(v, digits) for c, v in row.items()})
               for row in frame.to_dict(orient="records")]
    return dg.MetadataValue.table(records, schema)


def rounded(value: object, digits: int = 4) -> object:
    """A value as a person reads it: floats to ``digits`` decimals, NaN/inf/None as None, numpy scalars as Python
    values, anything else that is not a number, text or bool as its text."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, (int, bool, str)):
        return value
    return str(value)


def none_yet(what: str) -> dg.MetadataValue:
    """What an empty table says instead of a header with no rows."""
    return dg.MetadataValue.md(f"_{what}_")
