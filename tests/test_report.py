"""m3mstl.report: the table writer (CSV/Markdown/LaTeX, one formatting, atomic) and savefig
(PNG at 150 dpi + PDF, no run-dependent metadata)."""
from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from m3mstl import paths
from m3mstl.core import fileio
from m3mstl.report import ReportError, figure_size, figure_style, format_p_value, savefig, subplots, write_table


def results_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "model": ["m3mstl", "base_line"],
        "nme_inter_ocular": [0.24567, np.nan],
        "n_images": [120, 118],
        "p_value": [3.2e-5, 0.5],
        "delta": [-0.00004, 0.01],
    })


def test_write_table_writes_three_consistent_files(tmp_path: Path) -> None:
    written = write_table(
        results_frame(), "nme_summary", caption="Mean NME (inter_ocular), 95% CI", run_ids=["m3mstl/abc", "baseline/def"],
        decimals={"nme_inter_ocular": 3, "p_value": ".1e", "*": 2}, out_dir=tmp_path,
    )
    assert set(written) == {"csv", "md", "tex"}
    assert all(path.parent == tmp_path and path.stem == "nme_summary" for path in written.values())
    csv_text = written["csv"].read_text()
    assert csv_text.splitlines() == [
        "model,nme_inter_ocular,n_images,p_value,delta",
        "m3mstl,0.246,120,3.2e-05,0.00",   # -0.00004 rounds to 0.00, printed without a sign
        "base_line,,118,5.0e-01,0.01",
    ]
    markdown = written["md"].read_text()
    lines = markdown.splitlines()
    assert lines[0] == "Table: Mean NME (inter_ocular), 95% CI"
    assert "| model | nme_inter_ocular | n_images | p_value | delta |" in lines
    assert "|---|---:|---:|---:|---:|" in lines
    assert "| base_line | – | 118 | 5.0e-01 | 0.01 |" in lines
    assert lines[-1] == "Runs: m3mstl/abc, baseline/def"
    latex = written["tex"].read_text()
    assert r"\caption{Mean NME (inter\_ocular), 95\% CI}" in latex
    assert r"\label{tab:nme_summary}" in latex
    assert r"\begin{tabular}{lrrrr}" in latex
    assert r"m3mstl & 0.246 & 120 & 3.2e-05 & 0.00 \\" in latex
    assert r"base\_line & -- & 118 & 5.0e-01 & 0.01 \\" in latex
    assert "% Runs: m3mstl/abc, baseline/def" in latex
    # The CSV reads back as numbers.
    back = pd.read_csv(written["csv"])
    assert back.loc[0, "nme_inter_ocular"] == pytest.approx(0.246)
    assert np.isnan(back.loc[1, "nme_inter_ocular"])


def test_write_table_is_byte_stable_and_leaves_no_temp_files(tmp_path: Path) -> None:
    first = {k: p.read_bytes() for k, p in write_table(results_frame(), "t", caption="c", run_ids=["r"], out_dir=tmp_path).items()}
    second = {k: p.read_bytes() for k, p in write_table(results_frame(), "t", caption="c", run_ids=["r"], out_dir=tmp_path).items()}
    assert first == second
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.md", "t.tex"]


def test_named_index_becomes_a_column_and_ints_stay_ints(tmp_path: Path) -> None:
    frame = pd.DataFrame({"auc": [0.97412, 0.95]}, index=pd.Index(["m3mstl", "baseline"], name="model"))
    written = write_table(frame, "auc", caption="ROC-AUC", run_ids="single-run", decimals=3, out_dir=tmp_path)
    assert written["csv"].read_text().splitlines() == ["model,auc", "m3mstl,0.974", "baseline,0.950"]
    assert written["md"].read_text().splitlines()[-1] == "Runs: single-run"


def test_default_folder_is_the_tables_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "TABLES_DIR", tmp_path / "tables")
    written = write_table(results_frame(), "default_place", caption="c", run_ids=[])
    assert written["csv"] == tmp_path / "tables" / "default_place.csv"
    assert written["md"].read_text().splitlines()[-1] == "Runs: none"


def test_bad_names_captions_and_decimals_are_refused(tmp_path: Path) -> None:
    for bad in ("../escape", "sub/name", "", ".hidden"):
        with pytest.raises(ReportError, match="plain file stem"):
            write_table(results_frame(), bad, caption="c", run_ids=["r"], out_dir=tmp_path)
    with pytest.raises(ReportError, match="caption"):
        write_table(results_frame(), "t", caption=" ", run_ids=["r"], out_dir=tmp_path)
    with pytest.raises(ReportError, match="unknown column"):
        write_table(results_frame(), "t", caption="c", run_ids=["r"], decimals={"nme": 2}, out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_old_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_table(results_frame(), "kept", caption="old", run_ids=["r"], out_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def refuse(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_table(results_frame().iloc[:1], "kept", caption="new", run_ids=["r"], out_dir=tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left either


def test_format_p_value() -> None:
    assert format_p_value(0.0321) == "0.032"
    assert format_p_value(2e-7) == "<0.001"
    assert format_p_value(float("nan")) is None


def draw(name: str, out_dir: Path) -> dict[str, Path]:
    fig, ax = subplots(width="single", aspect=0.75)
    x = np.linspace(0, 0.1, 50)
    ax.plot(x, x / 0.1, label="uniform errors")
    ax.set_xlabel("NME (inter-ocular)")
    ax.set_ylabel("fraction of images")
    ax.legend()
    written = savefig(fig, name, out_dir=out_dir)
    matplotlib.pyplot.close(fig)  # pyplot is loaded by subplots
    return written


def test_savefig_writes_png_at_150_dpi_and_pdf_without_dates(tmp_path: Path) -> None:
    written = draw("ced", tmp_path)
    assert set(written) == {"png", "pdf"}
    with Image.open(written["png"]) as image:
        assert image.info["dpi"] == pytest.approx((150, 150), abs=0.5)
        width_px = image.size[0]
    # Tight bounding box: close to the 3.5 inch single column at 150 dpi.
    assert 0.8 * 3.5 * 150 < width_px < 1.1 * 3.5 * 150
    pdf = written["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert b"CreationDate" not in pdf and b"ModDate" not in pdf
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ced.pdf", "ced.png"]


def test_savefig_gives_the_same_bytes_in_a_fresh_process(tmp_path: Path) -> None:
    here = draw("same", tmp_path / "here")
    # The same drawing code, run by a new interpreter (fonts, caches and ids start afresh).
    script = "\n".join([
        "import sys", "from pathlib import Path", "import matplotlib", "import numpy as np",
        "from m3mstl.report import savefig, subplots",
        inspect.getsource(draw),
        "draw('same', Path(sys.argv[1]))",
    ])
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "there")], check=True, env=env, timeout=120)
    for fmt, path in here.items():
        assert path.read_bytes() == (tmp_path / "there" / f"same.{fmt}").read_bytes(), fmt


def test_style_helpers() -> None:
    assert figure_size("single") == pytest.approx((3.5, 2.625))
    assert figure_size("double", aspect=0.5) == pytest.approx((7.16, 3.58))
    assert figure_size(4.0, aspect=1.0) == (4.0, 4.0)
    with pytest.raises(ReportError):
        figure_size("triple")
    before = matplotlib.rcParams["axes.labelsize"]
    with figure_style():
        assert matplotlib.rcParams["axes.labelsize"] == 8
        assert matplotlib.rcParams["savefig.dpi"] == 150
    assert matplotlib.rcParams["axes.labelsize"] == before
    assert matplotlib.get_backend().lower() == "agg"
