"""The interactive occlusion explorer (ipywidgets), for readers in JupyterLab.

Pick a synthetic face and a trained run; put occluders on the *same* face (glasses,
sunglasses, mask, scarf, hand) and see it re-rendered by the generator; move the
threshold on the predicted occlusion probability; compare ground truth with the
prediction; read the temperature at each landmark; choose the palette.

Everything a view shows is kept in `OcclusionExplorer.state`, so tests drive the
widgets by setting their values and assert on the state, without a browser. Under
papermill (INTERACTIVE = False) `save_gallery` writes the same views as figures.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TOGGLE_KINDS = ("glasses", "sunglasses", "mask", "scarf", "hand")
PALETTES = ("gray", "inferno", "magma", "gray_r")  # white-hot, "iron"-like, black-hot


@dataclass
class LoadedRun:
    """A trained model and its config, or a label for "no model"."""

    name: str
    model: Any
    config: Any


def load_runs(run_dirs: Sequence[str | Path]) -> list[LoadedRun]:
    from m3mstl.runs import load_config, load_model, run_ref

    loaded = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        loaded.append(LoadedRun(run_ref(run_dir), load_model(run_dir), load_config(run_dir)))
    return loaded


class OcclusionExplorer:
    """Widgets over one synthetic face; `state` holds what the current view shows."""

    def __init__(self, runs: Sequence[LoadedRun], *, size: int = 128, seed: int = 0, n_samples: int = 20,
                 priors: dict[str, Any] | None = None, live: bool = True) -> None:
        import ipywidgets as widgets

        from m3mstl.data.synth.priors import load_priors

        # live=False (papermill, tests): update the state but draw nothing into the Output widget;
        # a headless kernel has no front end to show it, and under papermill a default-profile run
        # stalled there.
        self.live = live
        self.runs = list(runs)
        self.size = size
        self.seed = seed
        self.priors = load_priors() if priors is None else priors
        self.state: dict[str, Any] = {}
        self.sample = widgets.IntSlider(value=0, min=0, max=n_samples - 1, description="face")
        self.run = widgets.Dropdown(options=[(r.name, i) for i, r in enumerate(self.runs)] or [("no model", -1)],
                                    description="run")
        self.toggles = {k: widgets.ToggleButton(value=False, description=k) for k in TOGGLE_KINDS}
        self.threshold = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.01, description="threshold")
        self.palette = widgets.Dropdown(options=PALETTES, value="gray", description="palette")
        self.output = widgets.Output()
        # The view's counts as text (also for screen readers and the browser test), beside the figure.
        self.summary = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px"))
        for control in [self.sample, self.run, self.threshold, self.palette, *self.toggles.values()]:
            control.observe(self._on_change, names="value")
        self.widget = widgets.VBox([
            widgets.HBox([self.sample, self.run]),
            widgets.HBox(list(self.toggles.values())),
            widgets.HBox([self.threshold, self.palette]),
            self.summary,
            self.output,
        ])
        self._base_spec = None
        self._base_index = None
        self._holding = False
        self.update()

    # -- model of the view -----------------------------------------------------------------
    def base_spec(self):
        """The face drawn for the current sample, without any occluder (cached)."""
        from dataclasses import replace

        from m3mstl.data.synth.spec import sample_spec

        if self._base_index != self.sample.value:
            rng = np.random.default_rng([self.seed, self.sample.value])
            spec = sample_spec(rng, self.priors, f"{self.sample.value:03d}", 0)
            identity = replace(spec.identity, wears_glasses=False, glasses=None, fringe=None)
            self._base_spec = replace(spec, identity=identity, occluders=())
            self._base_index = self.sample.value
        return self._base_spec

    def active_kinds(self) -> list[str]:
        return [k for k, toggle in self.toggles.items() if toggle.value]

    def update(self) -> dict[str, Any]:
        """Re-render, re-predict and redraw; returns the new state."""
        from m3mstl.data.synth.renderer import render
        from m3mstl.data.synth.spec import with_occluders
        from m3mstl.infer.predict import predict_arrays, temperature_at

        spec = with_occluders(self.base_spec(), self.active_kinds(), seed=self.seed)
        face = render(spec, self.size)
        state: dict[str, Any] = {
            "occluders": self.active_kinds(),
            "image": face.image_u8,
            "temperature": face.temperature_c,
            "gt_landmarks": face.landmarks,
            "gt_occluded": face.visibility == 1,
            "occlusion_cause": list(face.occlusion_cause),
            "palette": self.palette.value,
            "threshold": float(self.threshold.value),
        }
        run_index = self.run.value
        if run_index is not None and run_index >= 0:
            run = self.runs[run_index]
            out = predict_arrays(run.model, run.config, face.image_u8.astype(np.float32) / 255.0,
                                 face.temperature_c, tuple(face.bbox))
            state["run"] = run.name
            state["pred_landmarks"] = out["landmarks"]
            state["occlusion_prob"] = out["occlusion_prob"]
            state["pred_occluded"] = out["occlusion_prob"] >= self.threshold.value
            points = out["landmarks"]
        else:
            points = face.landmarks
        state["temperature_at_landmarks"] = np.array([temperature_at(face.temperature_c, x, y) for x, y in points])
        self.state = state
        self.summary.value = self.summary_text()
        self._redraw()
        return state

    def summary_text(self) -> str:
        """One line: occluders, landmarks occluded in truth, and those the model calls occluded."""
        s = self.state
        text = (f"occluders: {', '.join(s['occluders']) or 'none'} | occluded in truth: "
                f"<b class='m3-true'>{int(s['gt_occluded'].sum())}</b>/68")
        if "pred_occluded" in s:
            text += (f" | {s['run']} calls occluded: <b class='m3-called'>{int(s['pred_occluded'].sum())}</b>/68 "
                     f"at threshold {s['threshold']:.2f}")
        return f"<span class='m3-summary'>{text} | palette {s['palette']}</span>"

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._holding:
            self.update()

    @contextmanager
    def hold(self):
        """Change several widgets and re-render once at the end."""
        self._holding = True
        try:
            yield self
        finally:
            self._holding = False
            self.update()

    # -- drawing ---------------------------------------------------------------------------
    def figure(self):
        """The current view as a matplotlib figure: the face with landmarks, and the
        temperature read at each landmark."""
        from m3mstl.report import subplots

        s = self.state
        fig, (ax_img, ax_t) = subplots(1, 2, width="double", aspect=0.42)
        ax_img.imshow(s["image"], cmap=s["palette"], vmin=0, vmax=255)
        gt = s["gt_landmarks"]
        ax_img.scatter(gt[~s["gt_occluded"], 0], gt[~s["gt_occluded"], 1], s=14, marker="x", c="white", lw=0.8,
                       label="truth: visible")
        ax_img.scatter(gt[s["gt_occluded"], 0], gt[s["gt_occluded"], 1], s=14, marker="x", c="red", lw=0.8,
                       label="truth: occluded")
        if "pred_landmarks" in s:
            sc = ax_img.scatter(s["pred_landmarks"][:, 0], s["pred_landmarks"][:, 1], c=s["occlusion_prob"],
                                cmap="coolwarm", vmin=0, vmax=1, s=10, edgecolor="k", lw=0.2)
            fig.colorbar(sc, ax=ax_img, fraction=0.046, label="P(occluded)")
            called = int(s["pred_occluded"].sum())
            title = f"{s['run']}: {called} called occluded at {s['threshold']:.2f}"
        else:
            title = "ground truth (no model)"
        ax_img.set_title(f"{', '.join(s['occluders']) or 'no occluder'} - {title}", fontsize=7)
        ax_img.axis("off")
        ax_img.legend(fontsize=5, loc="lower right")
        colours = np.where(s["gt_occluded"], "C3", "C0")
        ax_t.bar(np.arange(68), s["temperature_at_landmarks"], color=colours)
        lo = float(np.nanmin(s["temperature_at_landmarks"])) - 1
        ax_t.set(ylim=(lo, float(np.nanmax(s["temperature_at_landmarks"])) + 0.5), xlabel="landmark (iBUG index)",
                 ylabel="temperature read (deg C)", title="red: occluded in truth")
        for start, region in ((0, "jaw"), (17, "brows"), (27, "nose"), (36, "eyes"), (48, "mouth")):
            ax_t.axvline(start - 0.5, color="grey", lw=0.5)
            ax_t.text(start, lo + 0.2, region, fontsize=6)
        return fig

    def _redraw(self) -> None:
        import matplotlib.pyplot as plt

        if not self.live:
            return
        with self.output:
            self.output.clear_output(wait=True)
            fig = self.figure()
            plt.show()
            plt.close(fig)


def save_gallery(explorer: OcclusionExplorer, name: str,
                 scenarios: Sequence[Sequence[str]] = ((), ("glasses",), ("sunglasses",), ("mask",),
                                                       ("scarf", "hand")),
                 out_dir: Path | None = None) -> list[dict[str, Path]]:
    """For non-interactive runs: the explorer's view for each occluder scenario, saved as
    figures `<name>_<scenario>` (PNG and PDF)."""
    import matplotlib.pyplot as plt

    from m3mstl.report import savefig

    written = []
    for kinds in scenarios:
        with explorer.hold():
            for kind, toggle in explorer.toggles.items():
                toggle.value = kind in kinds
        fig = explorer.figure()
        written.append(savefig(fig, f"{name}_{'_'.join(kinds) or 'none'}", out_dir=out_dir))
        plt.close(fig)
    return written
