"""Read a landing folder and enforce the data contract, row by row.

Every file is read as text first, so nothing is coerced before it is checked.
Each cell is parsed by its column's type; a cell that cannot be read is one
problem, and the typed rows then go through the table's pandera schema. A row
with any problem is quarantined (kept as its original text, with the reasons),
never dropped silently; the rest are the valid rows.

Problems print as ``FILE:ROW: COLUMN: RULE (value)``. ROW is the line in a CSV
file (the header is line 1, so the first data row is line 2) and the same
numbering for Parquet rows; ROW 0 and COLUMN ``-`` mean the whole file.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandas.api.types import union_categoricals

from mlops_assets.contract import schemas
from mlops_assets.errors import ContractError
from mlops_assets.locations import files_in, is_local, location, source, stamp

DATA_SUFFIXES = (".csv", ".parquet")
FILE_COLUMN, ROW_COLUMN = "_file", "_row"


@dataclass(frozen=True)
class Problem:
    file: str
    row: int
    column: str
    rule: str
    value: str = ""

    def __str__(self) -> str:
        suffix = f" ({self.value})" if self.value != "" else ""
        return f"{self.file}:{self.row}: {self.column}: {self.rule}{suffix}"

    @property
    def is_file_level(self) -> bool:
        return self.row <= 1


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # string | date | integer | number | boolean
    optional: bool = False  # the column may be absent, or a cell empty


@dataclass(frozen=True)
class Table:
    name: str
    pattern: str  # "stores" for stores.csv/.parquet; "shipments/" for a folder of files
    columns: tuple[Column, ...]
    required: bool = True
    extra_numeric: bool = False  # demographics: further columns are numeric features
    may_be_empty: bool = False  # events: a business with none delivers the header alone

    @property
    def is_folder(self) -> bool:
        return self.pattern.endswith("/")


def _cols(spec: str) -> tuple[Column, ...]:
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        optional = kind.endswith("?")
        out.append(Column(name, kind.rstrip("?"), optional))
    return tuple(out)


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table("stores", "stores", _cols("store_id:string region:string format:string zip_code:string")),
        Table("products", "products", _cols("product_id:string category:string velocity:string?")),
        Table("demographics", "demographics",
              _cols("store_id:string population:number median_income:number"), extra_numeric=True),
        Table("events", "events", _cols("date:date region:string event:string store_id:string? product_id:string?"),
              may_be_empty=True),
        Table("shipments", "shipments/",
              _cols("week_start:date store_id:string product_id:string units_shipped:integer")),
        Table("returns", "returns/",
              _cols("week_start:date store_id:string product_id:string units_returned:integer"), required=False),
        Table("weather", "weather/", _cols(
            "date:date zip_code:string temp_max_c:number temp_min_c:number precip_mm:number is_forecast:boolean"),
              required=False),  # without weather, the models do without it
    )
}
MASTERS = ("stores", "products", "demographics")


# --- files ---------------------------------------------------------------------------


def table_files(landing: Path, table: Table) -> list[Path]:
    """The files that make up a table (sorted), including stray ones to complain about."""
    return [path for path, _, _ in table_stamps(landing, table)]


def table_stamps(landing: Path, table: Table) -> list[tuple[Path, int, int]]:
    """(path, size, modification time in ns) of a table's files, sorted: one listing per folder."""
    if table.is_folder:
        return files_in(landing / table.pattern)
    return [(path, *stamp(path)) for path in (landing / f"{table.pattern}{suffix}" for suffix in DATA_SUFFIXES)
            if path.exists()]


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") if is_local(path) else source(path) as f:  # a blob: one request
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(landing: Path, table: Table) -> dict[str, str]:
    """{relative path: sha256} of a table's files: its raw data version."""
    return {p.relative_to(landing).as_posix(): file_digest(p) for p in table_files(landing, table)}


def _text_of(series: pd.Series) -> pd.Series:
    """A Parquet column as the text a CSV would have held, so one parser serves both."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.strftime("%Y-%m-%d").fillna("")
    if pd.api.types.is_bool_dtype(series):
        return series.map({True: "true", False: "false"}).fillna("").astype(str)
    if pd.api.types.is_float_dtype(series):
        return series.map(lambda v: "" if pd.isna(v) else format(v, ".17g"))
    return series.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))


def read_text_frame(path: Path, rel: str, may_be_empty: bool = False) -> tuple[pd.DataFrame | None, list[Problem]]:
    """A file as a frame of strings with its file name and line numbers, or the reason it can't be read."""
    if path.suffix not in DATA_SUFFIXES:
        return None, [Problem(rel, 0, "-", "not a CSV or Parquet file; move it out of the landing folder")]
    try:
        if path.suffix == ".csv":
            if path.stat().st_size == 0:
                return None, [Problem(rel, 0, "-", "file is empty (no header row)")]
            # categorical text: each distinct cell text is one string, each cell a small code (a
            # seed-scale table is 10^7 cells but a few thousand distinct ids, dates and counts)
            with source(path) as f:
                frame = pd.read_csv(f, dtype="category", keep_default_na=False, na_filter=False,
                                    skip_blank_lines=False, encoding="utf-8")
        else:
            with source(path) as f:
                frame = pd.read_parquet(f)
            frame = frame.apply(_text_of).astype("category") if len(frame.columns) else frame
    except UnicodeDecodeError as exc:
        return None, [Problem(rel, 0, "-", f"not UTF-8 text ({exc.reason} at byte {exc.start})")]
    except Exception as exc:  # noqa: BLE001 - any reader failure is a file-level contract problem
        return None, [Problem(rel, 0, "-", f"unreadable: {type(exc).__name__}: {str(exc).strip()}")]
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty and not may_be_empty:
        return None, [Problem(rel, 1, "-", "file has a header but no data rows")]
    frame = frame.reset_index(drop=True)
    frame[FILE_COLUMN] = pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), [rel])
    frame[ROW_COLUMN] = np.arange(2, len(frame) + 2)
    return frame, []


def _concat_text(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Files' text frames as one, every text column still categorical (a column a file lacks is
    missing on its rows, as ``pd.concat`` would leave it)."""
    if not frames:
        return pd.DataFrame()
    columns = list(dict.fromkeys(c for f in frames for c in f.columns))
    out = {}
    for c in columns:
        if c == ROW_COLUMN:
            out[c] = np.concatenate([f[c].to_numpy() for f in frames])
            continue
        parts = [pd.Categorical(f[c]) if c in f else
                 pd.Categorical.from_codes(np.full(len(f), -1), pd.Index([], dtype=object)) for f in frames]
        out[c] = union_categoricals(parts, ignore_order=True)
    return pd.DataFrame(out)


def _distinct(text: pd.Series) -> tuple[np.ndarray, pd.Series]:
    """(code of each cell, the distinct cell texts): a missing cell is the text ``nan``'s value
    NaN, as in the cell-by-cell path."""
    if isinstance(text.dtype, pd.CategoricalDtype):
        codes = text.cat.codes.to_numpy().astype(np.intp)
        uniques = text.cat.categories.to_numpy(dtype=object)
        if (codes < 0).any():
            codes = np.where(codes < 0, len(uniques), codes)
            uniques = np.append(uniques, np.array([np.nan], dtype=object))
        return codes, pd.Series(uniques, dtype=object)
    codes, uniques = pd.factorize(text.to_numpy(dtype=object), use_na_sentinel=False)
    return codes, pd.Series(uniques, dtype=object)


# --- cells -----------------------------------------------------------------------------

_INT = re.compile(r"^[+-]?\d+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _parse(text: pd.Series, kind: str) -> tuple[pd.Series, pd.Series, str]:
    """(typed values, mask of unreadable non-empty cells, rule) for one column of text."""
    text = text.astype(str).str.strip()
    empty = text == ""
    if kind == "string":
        return text.where(~empty, None).astype(object), pd.Series(False, index=text.index), ""
    if kind == "date":
        ok = text.str.match(_DATE)
        values = pd.to_datetime(text.where(ok), format="%Y-%m-%d", errors="coerce")
        return values, ~empty & values.isna(), "not a date (YYYY-MM-DD)"
    if kind == "integer":
        ok = text.str.match(_INT)
        values = pd.to_numeric(text.where(ok), errors="coerce").astype("Int64")
        return values, ~empty & ~ok, "not an integer"
    if kind == "number":
        values = pd.to_numeric(text.where(~empty), errors="coerce").astype(float)
        bad = ~empty & ~np.isfinite(values)  # unparseable text is NaN here; so are nan/inf
        values = values.where(~bad)
        return values, bad, "not a finite number"
    if kind == "boolean":
        values = text.str.lower().map(_BOOLS).astype("boolean")
        return values, ~empty & values.isna(), "not a boolean (true/false)"
    raise ValueError(f"unknown column kind {kind!r}")


@dataclass
class TableResult:
    """The valid rows of a table, what was quarantined and why."""

    name: str
    valid: pd.DataFrame
    quarantine: pd.DataFrame  # original text of each rejected row, with _file, _row, _problems
    problems: list[Problem] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    @property
    def file_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.is_file_level]

    @property
    def rows_read(self) -> int:
        return len(self.valid) + len(self.quarantine)


def _failure_cases(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> pd.DataFrame | None:
    try:
        schema.validate(frame, lazy=True)
        return None
    except pa.errors.SchemaErrors as exc:
        return exc.failure_cases


def _schema_problems(schema: pa.DataFrameSchema, typed: pd.DataFrame, raw: pd.DataFrame) -> list[Problem]:
    cases = _failure_cases(schema, typed)
    return [] if cases is None else _case_problems(schema, cases, raw)


def _by_value_problems(schema: pa.DataFrameSchema, typed: pd.DataFrame, raw: pd.DataFrame,
                       distinct: dict[str, tuple[np.ndarray, pd.Series]]) -> list[Problem]:
    """``_schema_problems`` with the work following the distinct values (``failure_cases_by_value``)."""
    cases = failure_cases_by_value(schema, typed, distinct)
    return [] if cases is None else _case_problems(schema, cases, raw)


def failure_cases_by_value(schema: pa.DataFrameSchema, frame: pd.DataFrame,
                           distinct: dict[str, tuple[np.ndarray, pd.Series]] | None = None) -> pd.DataFrame | None:
    """Pandera's failure cases of ``frame`` (None if it passes), the work following distinct values.

    A column's dtype, nullability and checks (isin, ranges, patterns, Monday) judge each value
    alone, so they run once on the column's distinct values and each failing value's failure is
    reported on every row that holds it. What needs whole rows (unique keys, a unique column,
    checks across columns) runs on the full frame. ``distinct``: column -> (codes of the rows,
    distinct typed values) where the caller has them (else the columns are factorized here).
    The same failure cases as ``schema.validate(frame, lazy=True)``, in another order."""
    frames = []
    for name, column in schema.columns.items():
        if name not in frame:
            continue
        if distinct is not None and name in distinct:
            codes, values = distinct[name]
        else:
            codes, uniques = pd.factorize(frame[name], use_na_sentinel=False)
            values = pd.Series(uniques, dtype=frame[name].dtype)
        one_column = pa.DataFrameSchema({name: column}).update_column(name, unique=False)
        cases = _failure_cases(one_column, pd.DataFrame({name: values}))
        if cases is None:
            continue
        has_index = cases["index"].notna()
        frames.append(cases[~has_index])
        cases = cases[has_index]
        if cases.empty:
            continue
        # rows of each distinct value, in row order: order[start[v]:start[v + 1]]
        order = np.argsort(codes, kind="stable")
        start = np.searchsorted(codes[order], np.arange(len(values) + 1))
        rows = [order[start[v]:start[v + 1]] for v in cases["index"].astype("int64").to_numpy()]
        expanded = cases.loc[cases.index.repeat([len(r) for r in rows])].copy()
        expanded["index"] = frame.index.to_numpy()[np.concatenate(rows)] if rows else np.zeros(0, dtype=np.int64)
        frames.append(expanded)
    whole = {name: pa.Column(None, unique=True, nullable=True) for name, column in schema.columns.items()
             if column.unique and name in frame}
    whole.update({name: column for name, column in schema.columns.items() if name not in frame})  # says "missing"
    row_level = pa.DataFrameSchema(whole, unique=schema.unique, report_duplicates="all", checks=schema.checks,
                                   strict=False)
    cases = _failure_cases(row_level, frame)
    if cases is not None:
        frames.append(cases)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _case_problems(schema: pa.DataFrameSchema, cases: pd.DataFrame, raw: pd.DataFrame) -> list[Problem]:
    """Pandera's failure cases as problems naming file, row, column and rule."""
    out: list[Problem] = []
    key_rows: set[int] = set()
    row_rules: set[tuple[int, str]] = set()
    for case in cases.itertuples(index=False):
        if case.index is None or pd.isna(case.index):
            continue  # dtype-level failures also surface as per-row null/value problems
        idx = int(case.index)
        rule = str(case.check)
        column = case.column if isinstance(case.column, str) else "-"
        if case.schema_context == "DataFrameSchema" and rule != "multiple_fields_uniqueness":
            # a rule across columns is reported once per row, under the column its text names first
            if (idx, rule) in row_rules:
                continue
            row_rules.add((idx, rule))
            column = rule.split()[0] if rule.split()[0] in raw.columns else "-"
        if rule == "multiple_fields_uniqueness":
            if idx in key_rows:
                continue  # one problem per duplicated row, naming the whole key
            key_rows.add(idx)
            key = ",".join(schema.unique)
            value = ",".join(str(raw.at[idx, c]) for c in schema.unique)
            out.append(Problem(raw.at[idx, FILE_COLUMN], int(raw.at[idx, ROW_COLUMN]), key,
                               "duplicate key (also on another row)", value))
            continue
        if rule in ("field_uniqueness",):
            rule = "must be unique (also on another row)"
        elif rule == "not_nullable":
            rule = "must not be empty"
        value = str(raw.at[idx, column]) if column in raw.columns else str(case.failure_case)
        out.append(Problem(raw.at[idx, FILE_COLUMN], int(raw.at[idx, ROW_COLUMN]), column, rule, value))
    return out


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({FILE_COLUMN: pd.Series(dtype=str), ROW_COLUMN: pd.Series(dtype="int64"),
                         "_problems": pd.Series(dtype=str)})


def check_table(
    landing: Path,
    table: Table,
    schema_for: Callable[[list[str]], pa.DataFrameSchema],
    by_value: bool = True,
) -> TableResult:
    """Read and check every file of ``table``; ``schema_for(extra_columns)`` builds its schema.

    ``by_value``: parse and check each distinct value of a column once and spread the outcome
    to its rows (a seed-scale table has 10^7 cells but a few thousand distinct ids, dates and
    counts). ``False`` parses and checks cell by cell: the reference the tests hold it to."""
    landing = location(landing)
    files = table_files(landing, table)
    rel = {p: p.relative_to(landing).as_posix() for p in files}
    frames, rejected_files, problems = _read_files(table, files, rel)
    raw = _concat_text(frames)
    known = {c.name for c in table.columns}
    extra = sorted(c for c in raw.columns if c not in known and not c.startswith("_")) if table.extra_numeric else []
    typed, row_problems = _check_rows(table, raw, extra, schema_for, by_value)
    problems.extend(row_problems)
    valid, quarantine = _split(table, raw, typed, extra, row_problems, rejected_files)
    problems.sort(key=lambda p: (p.file, p.row, p.column))
    return TableResult(table.name, valid, quarantine, problems, {rel[p]: file_digest(p) for p in files})


def _read_files(table: Table, files: list, rel: dict) -> tuple[list[pd.DataFrame], list[pd.DataFrame], list[Problem]]:
    """Phase 1, each file as text: the frames to check, the files rejected whole (a required
    column missing, unreadable; their rows kept for the quarantine) and the problems."""
    problems: list[Problem] = []
    frames: list[pd.DataFrame] = []
    rejected_files: list[pd.DataFrame] = []
    if not files and table.required:
        where = table.pattern if table.is_folder else f"{table.pattern}.csv"
        problems.append(Problem(where, 0, "-", "required file missing" if not table.is_folder
                                else "required folder has no CSV or Parquet files"))
    required = [c.name for c in table.columns if not c.optional]
    for path in files:
        frame, file_problems = read_text_frame(path, rel[path], table.may_be_empty)
        if frame is not None:
            missing = [c for c in required if c not in frame.columns]
            file_problems = [Problem(rel[path], 1, c, "required column missing") for c in missing]
        if file_problems:
            problems.extend(file_problems)
            if frame is not None:  # keep its rows: nothing is lost
                frame["_problems"] = "; ".join(f"{p.column}: {p.rule}" for p in file_problems)
                rejected_files.append(frame)
            continue
        frames.append(frame)
    return frames, rejected_files, problems


def _check_rows(table: Table, raw: pd.DataFrame, extra: list[str],
                schema_for: Callable[[list[str]], pa.DataFrameSchema], by_value: bool
                ) -> tuple[pd.DataFrame, list[Problem]]:
    """Phase 2, every cell parsed to its type, then the schema's rules (pandera): the typed frame
    and a problem per (file, row, column), the first rule that failed."""
    row_problems: list[Problem] = []
    typed = pd.DataFrame(index=raw.index)
    distinct: dict[str, tuple[np.ndarray, pd.Series]] = {}
    if raw.empty:
        return typed, row_problems
    for col in [*table.columns, *(Column(e, "number") for e in extra)]:
        if col.name not in raw.columns:
            continue  # an optional column that is absent
        if by_value:
            codes, uniques = _distinct(raw[col.name])
            values, bad, rule = _parse(uniques, col.kind)
            distinct[col.name] = (codes, values)
            typed[col.name] = values.array.take(codes)
            bad = bad.to_numpy()[codes]
        else:
            values, bad, rule = _parse(raw[col.name], col.kind)
            typed[col.name] = values
            bad = bad.to_numpy()
        for idx in np.flatnonzero(bad):
            row_problems.append(Problem(raw.at[idx, FILE_COLUMN], int(raw.at[idx, ROW_COLUMN]),
                                        col.name, rule, str(raw.at[idx, col.name])))
    seen = {(p.file, p.row, p.column) for p in row_problems}
    schema = schema_for(extra)
    found = _by_value_problems(schema, typed, raw, distinct) if by_value else _schema_problems(schema, typed, raw)
    for p in found:
        if (p.file, p.row, p.column) not in seen:
            row_problems.append(p)
            seen.add((p.file, p.row, p.column))
    return typed, row_problems


def _split(table: Table, raw: pd.DataFrame, typed: pd.DataFrame, extra: list[str], row_problems: list[Problem],
           rejected_files: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Phase 3: the valid rows, typed; and every other row with its original text, file, row and
    reasons (the files rejected whole too)."""
    bad_rows: dict[tuple[str, int], list[str]] = {}
    row_problems.sort(key=lambda p: (p.file, p.row, p.column, p.rule))  # one order, whichever path found them
    for p in row_problems:
        bad_rows.setdefault((p.file, p.row), []).append(f"{p.column}: {p.rule}")
    is_bad = np.zeros(len(raw), dtype=bool)
    if bad_rows:
        bad = pd.MultiIndex.from_tuples(list(bad_rows))
        is_bad = pd.MultiIndex.from_arrays([raw[FILE_COLUMN], raw[ROW_COLUMN]]).isin(bad)

    quarantined = list(rejected_files)
    if is_bad.any():
        q = raw[is_bad].copy()
        q["_problems"] = ["; ".join(bad_rows[k]) for k in zip(q[FILE_COLUMN], q[ROW_COLUMN])]
        quarantined.append(q)
    quarantine = pd.concat(quarantined, ignore_index=True) if quarantined else _empty_quarantine()
    quarantine = quarantine.astype({c: str for c in quarantine.columns if c != ROW_COLUMN})

    valid_columns = [c.name for c in table.columns if c.name in typed.columns] + extra
    valid = typed.loc[~is_bad, valid_columns].reset_index(drop=True) if len(typed) else _empty_valid(table)
    return _finalize_types(valid, table), quarantine


def _empty_valid(table: Table) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=object) for c in table.columns if not c.optional})


_FINAL_DTYPES = {"string": object, "date": "datetime64[ns]", "integer": "int64", "number": float, "boolean": bool}


def _finalize_types(valid: pd.DataFrame, table: Table) -> pd.DataFrame:
    """Valid rows have no missing required cells, so nullable dtypes can become plain ones."""
    for col in table.columns:
        if col.name in valid.columns and not col.optional:
            valid[col.name] = valid[col.name].astype(_FINAL_DTYPES[col.kind])
    return valid


# --- the whole landing folder ----------------------------------------------------------


def rejected_ids(result: TableResult, column: str) -> list[str]:
    """Ids in the quarantined rows of a master: references to them are not 'unknown'."""
    if column not in result.quarantine.columns:
        return []
    return sorted(set(result.quarantine[column].astype(str).str.strip()) - {""})


def check_landing(landing: Path, by_value: bool = True) -> dict[str, TableResult]:
    """Check every table; foreign keys use the *valid* rows of the masters."""
    landing = location(landing)
    out: dict[str, TableResult] = {}
    out["stores"] = check_table(landing, TABLES["stores"], lambda extra: schemas.stores_schema(), by_value)
    out["products"] = check_table(landing, TABLES["products"], lambda extra: schemas.products_schema(), by_value)
    for name in ("demographics", "events", "shipments", "returns", "weather"):
        out[name] = check_dependent(landing, name, out["stores"], out["products"], by_value)
    return out


def check_dependent(landing: Path, name: str, stores: TableResult, products: TableResult,
                    by_value: bool = True) -> TableResult:
    """Check a table whose rules refer to the store and product masters."""
    store_ids, product_ids = stores.valid["store_id"].tolist(), products.valid["product_id"].tolist()
    bad_stores, bad_products = rejected_ids(stores, "store_id"), rejected_ids(products, "product_id")
    builders = {
        "demographics": lambda extra: schemas.demographics_schema(store_ids, extra, bad_stores),
        "events": lambda extra: schemas.events_schema(
            stores.valid["region"].unique().tolist(), dict(zip(stores.valid["store_id"], stores.valid["region"])),
            product_ids, bad_stores, bad_products),
        "shipments": lambda extra: schemas.shipments_schema(store_ids, product_ids, bad_stores, bad_products),
        "returns": lambda extra: schemas.returns_schema(store_ids, product_ids, bad_stores, bad_products),
        "weather": lambda extra: schemas.weather_schema(),
    }
    return check_table(location(landing), TABLES[name], builders[name], by_value)


def all_problems(results: dict[str, TableResult]) -> Iterable[Problem]:
    for result in results.values():
        yield from result.problems


def require_clean(results: dict[str, TableResult], landing) -> dict[str, TableResult]:
    """``results`` of a landing a tool must read whole (a benchmark: figures from some of the rows
    would not say so); a ``ContractError`` naming the first problems where the contract found any."""
    problems = list(all_problems(results))
    if problems:
        shown = "; ".join(str(p) for p in problems[:5])
        raise ContractError(f"{landing}: {len(problems)} problems against the data contract "
                            f"(`mlops-assets validate` lists them all): {shown}", problems)
    return results
