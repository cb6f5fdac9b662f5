"""Report helpers: the one table writer and the one figure writer of the project.

    from m3mstl.report import write_table, savefig, figure_style, set_style, figure_size
    from m3mstl.report import display_table, findings

Tables go to paths.TABLES_DIR as CSV, Markdown and LaTeX; figures to paths.FIGURES_DIR as
PNG and PDF. Both write atomically and name their source runs / use fixed metadata so a
re-run on unchanged results leaves the committed files unchanged. In a notebook, `display_table`
shows a table as the Markdown it writes (readable column names, the table's own rounding), and
`findings` writes the sentences of each notebook's "What this shows" cell from its numbers.
"""
from m3mstl.report.figures import figure_size, figure_style, savefig, set_style, style_rc, subplots
from m3mstl.report.tables import (
    ReportError, column_label, display_table, format_p_value, format_value, markdown_table, write_table,
)
from m3mstl.report import findings  # noqa: E402  (after tables, which it reads)

__all__ = [
    "ReportError",
    "column_label",
    "display_table",
    "findings",
    "figure_size",
    "figure_style",
    "format_p_value",
    "format_value",
    "markdown_table",
    "savefig",
    "set_style",
    "style_rc",
    "subplots",
    "write_table",
]
