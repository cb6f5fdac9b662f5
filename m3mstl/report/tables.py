"""The one table writer: every table of the project as CSV, Markdown and LaTeX.

All three files show the same numbers: each cell is formatted once (per-column decimals
or format spec) and the formatted text is written to every format. Rounding the CSV too
keeps committed tables stable across platforms (no churn in the 17th digit) and makes
the CSV agree with what the paper shows. Files are written atomically (m3mstl.core.fileio).
"""
from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from m3mstl import paths
from m3mstl.core.fileio import write_bytes_atomic

MISSING_TEXT = {"csv": "", "md": "–", "tex": "--"}
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


class ReportError(ValueError):
    """A table or figure cannot be written as asked."""


# --------------------------------------------------------------------------- files


def atomic_write_text(path: Path, text: str) -> Path:
    """UTF-8 text with "\\n" line endings, written atomically (m3mstl.core.fileio): a reader never
    sees a half-written table, and an interrupted run leaves the previous file."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def check_output_name(name: str) -> str:
    """A table/figure name is a plain file stem: no folders, no extension games."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or name.endswith("."):
        raise ReportError(
            f"output name {name!r} must be a plain file stem (letters, digits, '_', '-', '.'; no folders)"
        )
    return name


# --------------------------------------------------------------------------- formatting


def format_p_value(p: float | None, smallest: float = 0.001) -> str | None:
    """p-values as papers print them: "0.032", "<0.001"; None (missing) for NaN."""
    if p is None or math.isnan(p):
        return None
    if p < smallest:
        return f"<{smallest:g}"
    return f"{p:.3f}"


def _is_missing(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and math.isnan(value)


def format_value(value: object, spec: int | str) -> str | None:
    """Text of one cell; None for a missing value.

    Integers (and booleans) print as they are; other reals use `spec`: an int number of
    decimals or a format spec such as ".2e". "-0.000" is printed as "0.000".
    """
    if _is_missing(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        text = format(float(value), f".{spec}f" if isinstance(spec, int) else spec)
        if re.fullmatch(r"-0(\.0*)?(e[+-]?0+)?", text):
            text = text[1:]  # a rounded-away negative sign would suggest a difference that is not there
        return text
    return str(value)


def format_frame(df: pd.DataFrame, decimals: int | str | Mapping[str, int | str] = 3) -> pd.DataFrame:
    """Every cell as text (None where missing), by per-column decimals or format specs.

    `decimals` is one spec for all columns, or a mapping column -> spec; columns not in
    the mapping use its "*" entry, else 3 decimals.
    """
    if isinstance(decimals, Mapping):
        unknown = set(decimals) - set(map(str, df.columns)) - {"*"}
        if unknown:
            raise ReportError(f"decimals given for unknown column(s) {sorted(unknown)}")
        default = decimals.get("*", 3)
        specs = {col: decimals.get(str(col), default) for col in df.columns}
    else:
        specs = {col: decimals for col in df.columns}
    formatted = {col: [format_value(v, specs[col]) for v in df[col].tolist()] for col in df.columns}
    return pd.DataFrame(formatted, columns=df.columns, dtype=object)


def _is_numeric_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    """A meaningful index becomes ordinary columns; a plain RangeIndex is dropped."""
    if not isinstance(df, pd.DataFrame):
        raise ReportError(f"write_table needs a pandas DataFrame, got {type(df).__name__}")
    if df.columns.duplicated().any():
        raise ReportError(f"duplicate column names: {list(df.columns[df.columns.duplicated()])}")
    if isinstance(df.index, pd.RangeIndex) and df.index.name is None:
        return df.reset_index(drop=True)
    return df.reset_index()


# --------------------------------------------------------------------------- renderers


def _csv_text(cells: pd.DataFrame) -> str:
    return cells.fillna(MISSING_TEXT["csv"]).to_csv(index=False, lineterminator="\n")


def _markdown_cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def _markdown_text(cells: pd.DataFrame, numeric: list[bool], caption: str, runs_line: str) -> str:
    header = "| " + " | ".join(_markdown_cell(str(c)) for c in cells.columns) + " |"
    rule = "|" + "|".join("---:" if is_num else "---" for is_num in numeric) + "|"
    body = [
        "| " + " | ".join(_markdown_cell(MISSING_TEXT["md"] if v is None else v) for v in row) + " |"
        for row in cells.itertuples(index=False)
    ]
    return "\n".join([f"Table: {caption}", "", header, rule, *body, "", runs_line, ""])


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _latex_text(cells: pd.DataFrame, numeric: list[bool], caption: str, label: str, runs_line: str) -> str:
    escaped = pd.DataFrame(
        {latex_escape(c): [MISSING_TEXT["tex"] if v is None else latex_escape(v) for v in cells[c]] for c in cells.columns},
        dtype=object,
    )
    # Cells are escaped above (pandas would escape the "--" placeholder's intent away too).
    body = escaped.to_latex(
        index=False, escape=False, caption=latex_escape(caption), label=label,
        column_format="".join("r" if is_num else "l" for is_num in numeric), position="htbp",
    )
    # Uses booktabs rules (\toprule ...): \usepackage{booktabs} in the document.
    return f"% {runs_line}\n% Written by m3mstl.report.write_table.\n{body}"


# --------------------------------------------------------------------------- the writer


def write_table(
    df: pd.DataFrame,
    name: str,
    *,
    caption: str,
    run_ids: Sequence[str],
    decimals: int | str | Mapping[str, int | str] = 3,
    out_dir: Path | None = None,
    label: str | None = None,
) -> dict[str, Path]:
    """Write df as name.csv, name.md and name.tex in out_dir (default paths.TABLES_DIR).

    caption: one sentence saying what the numbers are (normaliser, split, profile...).
    run_ids: the runs the numbers come from; the Markdown ends with "Runs: ..." and the
        LaTeX carries the same line as a comment, so every table names its source.
    decimals: int, format spec (".2e"), or {column: spec, "*": default} - the same
        formatted text goes to all three files. Integers print without decimals.
    label: LaTeX label, default "tab:<name>".
    Returns {"csv": path, "md": path, "tex": path}.
    """
    check_output_name(name)
    if not caption or not str(caption).strip():
        raise ReportError(f"table {name!r} needs a caption")
    if isinstance(run_ids, str):
        run_ids = [run_ids]  # a single id, not a sequence of characters
    runs_line = "Runs: " + (", ".join(str(r) for r in run_ids) if run_ids else "none")
    frame = _prepare(df)
    cells = format_frame(frame, decimals)
    numeric = [_is_numeric_column(frame[c]) for c in frame.columns]
    out_dir = Path(paths.TABLES_DIR if out_dir is None else out_dir)
    written = {
        "csv": atomic_write_text(out_dir / f"{name}.csv", _csv_text(cells)),
        "md": atomic_write_text(out_dir / f"{name}.md", _markdown_text(cells, numeric, caption, runs_line)),
        "tex": atomic_write_text(
            out_dir / f"{name}.tex", _latex_text(cells, numeric, caption, label or f"tab:{name}", runs_line)
        ),
    }
    return written
