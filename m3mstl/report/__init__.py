"""Report helpers: the one table writer and the one figure writer of the project.

    from m3mstl.report import write_table, savefig, figure_style, set_style, figure_size

Tables go to paths.TABLES_DIR as CSV, Markdown and LaTeX; figures to paths.FIGURES_DIR as
PNG and PDF. Both write atomically and name their source runs / use fixed metadata so a
re-run on unchanged results leaves the committed files unchanged.
"""
from m3mstl.report.figures import figure_size, figure_style, savefig, set_style, style_rc, subplots
from m3mstl.report.tables import ReportError, format_p_value, format_value, write_table

__all__ = [
    "ReportError",
    "figure_size",
    "figure_style",
    "format_p_value",
    "format_value",
    "savefig",
    "set_style",
    "style_rc",
    "subplots",
    "write_table",
]
