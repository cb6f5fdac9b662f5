"""The one figure writer and the project's plot style.

`savefig(fig, name)` writes figures/<name>.png (150 dpi) and figures/<name>.pdf atomically,
with fixed metadata (no creation date) so re-running a notebook on unchanged results gives
the same bytes and no spurious diff in the committed figures.

Style: `figure_style()` (a context) or `set_style()` (global) apply seaborn's "paper"
context and "whitegrid" style with fixed font sizes; `figure_size()` gives journal column
widths, so every figure of the project has the same type size when printed.
"""
from __future__ import annotations

import io
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

# Figures here are files: without a display (scripts, tests, CI) use Agg. Leave the backend
# alone inside a Jupyter kernel (inline display) or when pyplot is already running, because
# switching then would close the user's open figures.
if "ipykernel" not in sys.modules and "matplotlib.pyplot" not in sys.modules:
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from m3mstl import paths  # noqa: E402
from m3mstl.core.fileio import write_bytes_atomic  # noqa: E402
from m3mstl.report.tables import ReportError, check_output_name  # noqa: E402

PNG_DPI = 150
#: Column widths in inches (two-column journal layout, MDPI/IEEE-like).
WIDTHS_IN = {"single": 3.5, "double": 7.16}

#: Fixed sizes on top of seaborn's paper context, so all figures print alike.
STYLE_RC: dict[str, Any] = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.title_fontsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "axes.linewidth": 0.8,
    "grid.linewidth": 0.5,
    "figure.dpi": 100,
    "savefig.dpi": PNG_DPI,
    "pdf.fonttype": 42,       # embed TrueType fonts: text stays selectable and editable
    "svg.hashsalt": "m3mstl",
    "image.cmap": "inferno",  # perceptually uniform, reads as "hot" for thermal maps
}
_PALETTE = "colorblind"

#: Metadata that would change between runs, removed from the files.
_METADATA = {
    "png": {"Software": None},
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None},
}


def figure_size(width: str | float = "single", aspect: float = 0.75) -> tuple[float, float]:
    """(width, height) in inches: "single" or "double" column, or a width; height = width * aspect."""
    if isinstance(width, str):
        if width not in WIDTHS_IN:
            raise ReportError(f"width must be one of {sorted(WIDTHS_IN)} or inches, got {width!r}")
        inches = WIDTHS_IN[width]
    else:
        inches = float(width)
    if inches <= 0 or aspect <= 0:
        raise ReportError(f"figure width and aspect must be positive, got {inches} and {aspect}")
    return inches, inches * aspect


def style_rc() -> dict[str, Any]:
    """The full rc settings of the project style (seaborn paper/whitegrid + STYLE_RC)."""
    rc: dict[str, Any] = {}
    rc.update(sns.axes_style("whitegrid"))
    rc.update(sns.plotting_context("paper"))
    rc.update(STYLE_RC)
    rc["axes.prop_cycle"] = matplotlib.cycler(color=sns.color_palette(_PALETTE))
    rc["figure.figsize"] = figure_size("single")
    return rc


@contextmanager
def figure_style() -> Iterator[None]:
    """Apply the project style inside a with-block and restore the previous settings after."""
    with matplotlib.rc_context(style_rc()):
        yield


def set_style() -> None:
    """Apply the project style globally (for notebooks: call once at the top)."""
    matplotlib.rcParams.update(style_rc())


def subplots(
    nrows: int = 1, ncols: int = 1, *, width: str | float = "single", aspect: float = 0.75, **kwargs: Any
) -> tuple[Figure, Any]:
    """plt.subplots in the project style and size (constrained layout unless told otherwise)."""
    kwargs.setdefault("layout", "constrained")
    with figure_style():
        return plt.subplots(nrows, ncols, figsize=figure_size(width, aspect), **kwargs)


def savefig(
    fig: Figure,
    name: str,
    *,
    out_dir: Path | None = None,
    formats: tuple[str, ...] = ("png", "pdf"),
    metadata: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """Write fig as <out_dir>/<name>.png (150 dpi) and .pdf; returns {"png": path, "pdf": path}.

    Each file is rendered to memory, then written atomically. In a Jupyter kernel the figure is
    shown inline here and closed; elsewhere it stays open (close it yourself in loops).
    """
    check_output_name(name)
    unknown = set(formats) - set(_METADATA)
    if unknown:
        raise ReportError(f"unsupported figure format(s) {sorted(unknown)}; use {sorted(_METADATA)}")
    out_dir = Path(paths.FIGURES_DIR if out_dir is None else out_dir)
    written: dict[str, Path] = {}
    png: bytes | None = None
    for fmt in formats:
        file_metadata = dict(_METADATA[fmt])
        if metadata and fmt in metadata:
            file_metadata.update(metadata[fmt])
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=PNG_DPI, metadata=file_metadata, bbox_inches="tight", pad_inches=0.02)
        written[fmt] = write_bytes_atomic(out_dir / f"{name}.{fmt}", buffer.getvalue())
        if fmt == "png":
            png = buffer.getvalue()
    _show_in_notebook(fig, png)
    return written


def _show_in_notebook(fig: Figure, png: bytes | None) -> None:
    """In a Jupyter kernel, show the saved figure inline once, where it is saved: the PNG just
    written when there is one (so the executed notebooks hold exactly the published figures; a
    figure built without pyplot would not show otherwise), and close it so the end of the cell
    does not show it a second time. Elsewhere nothing happens."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return
    from IPython.display import Image, display

    display(Image(data=png) if png is not None else fig)
    plt.close(fig)
