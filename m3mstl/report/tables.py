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


# --------------------------------------------------------------------------- display in a notebook

# Column names as a reader reads them; names not listed are derived by `column_label`.
COLUMN_LABELS = {
    "occlusion_accuracy": "occlusion accuracy", "class_prior_occluded": "occluded share",
    "balanced_accuracy": "balanced accuracy", "roc_auc": "ROC-AUC", "average_precision": "AP",
    "nme_mean": "mean NME", "nme_median": "median NME", "median_nme": "median NME", "nme_visible": "NME visible",
    "nme_occluded": "NME occluded", "nme_box_median": "median NME (box)", "failure_rate@0.10": "failure rate @0.10",
    "n_images": "images", "n_seeds": "seeds", "n_subjects": "subjects", "n_clusters": "subjects",
    "n_resamples": "resamples", "n_failed": "failed resamples", "n_read": "read", "n_abstained": "abstained",
    "p_value": "p", "p_holm": "p (Holm)", "standard_error": "SE", "effect_size": "effect size",
    "effect_size_name": "effect size measure", "mean_iou": "mean IoU",
    "false_positives_per_frame": "false detections / frame", "occluder_type": "occluder",
    "n_seeds_b": "seeds b", "n_nonzero": "nonzero pairs", "n_discordant": "discordant pairs",
}
_LABEL_WORDS = {"nme": "NME", "mae": "MAE", "rmse": "RMSE", "iou": "IoU", "val": "validation",
                "m3mstl": "M3MSTL", "tflop": "TFLOP", "sd": "sd", "std": "sd", "se": "SE", "df": "df"}


def column_label(name: object) -> str:
    """A column name as a reader reads it: "roc_auc" -> "ROC-AUC", "nme_median_sd" -> "median NME sd",
    "diff_roc_auc_low" -> "Δ ROC-AUC low", "val_mae_c" -> "validation MAE °C"; names without an
    underscore (already readable, such as "input px") are kept."""
    text = str(name)
    if text in COLUMN_LABELS:
        return COLUMN_LABELS[text]
    if "_" not in text:
        return text
    for suffix in ("_sd", "_low", "_high", "_diff"):
        if text.endswith(suffix) and len(text) > len(suffix):
            return f"{column_label(text[: -len(suffix)])} {suffix[1:]}"
    if text.startswith("diff_"):
        return f"Δ {column_label(text[len('diff_'):])}"
    words = [word for word in text.split("_") if word]
    # "c" after a quantity is degrees Celsius ("mae_c"); first, it is a plain letter ("c_only_b_correct")
    return " ".join("°C" if word == "c" and i else _LABEL_WORDS.get(word, word) for i, word in enumerate(words))


def markdown_table(df: pd.DataFrame | pd.Series | Mapping, decimals: int | str | Mapping[str, int | str] = 3, *,
                   caption: str | None = None, readable: bool = True) -> str:
    """The Markdown table `write_table` writes (the same per-column decimals, "–" for missing),
    for display: readable column names (`column_label`), the caption in italics above, no Runs line.
    A Series becomes a two-column table (its index and values), a mapping a one-row table."""
    if isinstance(df, pd.Series):  # its index names quantities: readable as the column names are
        index = [column_label(i) for i in df.index] if readable else list(df.index)
        df = pd.DataFrame({df.index.name or "quantity": index, df.name or "value": df.to_numpy()})
    elif isinstance(df, Mapping):
        df = pd.DataFrame([dict(df)])
    frame = _prepare(df)
    cells = format_frame(frame, decimals)
    numeric = [_is_numeric_column(frame[c]) for c in frame.columns]
    labels = [column_label(c) if readable else str(c) for c in frame.columns]
    if len(set(labels)) < len(labels):  # two columns would read alike: keep their own names
        labels = [str(c) for c in frame.columns]
    header = "| " + " | ".join(_markdown_cell(label) for label in labels) + " |"
    rule = "|" + "|".join("---:" if is_num else "---" for is_num in numeric) + "|"
    body = ["| " + " | ".join(_markdown_cell(MISSING_TEXT["md"] if v is None else v) for v in row) + " |"
            for row in cells.itertuples(index=False)]
    lines = ([f"*{_markdown_cell(caption)}*", ""] if caption else []) + [header, rule, *body]
    return "\n".join(lines) + "\n"


def display_table(df: pd.DataFrame | pd.Series | Mapping, decimals: int | str | Mapping[str, int | str] = 3, *,
                  caption: str | None = None, readable: bool = True):
    """`markdown_table` as IPython Markdown: a notebook's table shown at the table's own rounding
    (pass the decimals its `write_table` call uses), not as a pandas repr."""
    from IPython.display import Markdown

    return Markdown(markdown_table(df, decimals, caption=caption, readable=readable))
