"""The embedded data is generated once per settings, reported on stderr, and regenerated when the
settings change or a generation was interrupted."""
from __future__ import annotations

import pytest

from m3mstl.data import embedded


def test_generation_runs_once_per_settings_and_again_after_an_interruption(tmp_path, capsys):
    calls = []
    out = tmp_path / "set"

    def generate():
        out.mkdir(exist_ok=True)
        calls.append(1)

    settings = {"seed": 1, "generator_version": "x"}
    assert embedded._unless_generated(out, settings, "a set", generate) == out
    embedded._unless_generated(out, settings, "a set", generate)
    assert len(calls) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "generating a set" in captured.err  # stdout stays the command's own
    embedded._unless_generated(out, {**settings, "seed": 2}, "a set", generate)
    assert len(calls) == 2

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embedded._unless_generated(out, {**settings, "seed": 3}, "a set", interrupted)
    embedded._unless_generated(out, {**settings, "seed": 3}, "a set", generate)  # no marker was left: runs
    assert len(calls) == 3
