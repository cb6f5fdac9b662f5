"""m3mstl: runnable companion to "Multi-Modal Multi-Stage Multi-Task Learning for
Occlusion-Aware Facial Landmark Localisation" (Ng et al., AI 2026).

The public API, imported lazily so that `import m3mstl` stays cheap (no torch until used):

    generate_dataset(out_dir, subjects=..., per_subject=..., size=..., seed=...)  SynthTFD68
    read_dataset(data_dir)                               a TFD68-layout folder as records
    validate_dataset(data_dir)                           every file of such a folder checked
    make_config(model, profile, overrides={...})        a run's resolved configuration
    train_model(model, profile, data_dir, ...)           train by the curriculum -> run folder
    train_peer(profile, data_dir, ...)                   the classical peer (dlib) -> run folder
    train_face_detector(profile, frames_dir, ...)        the trained thermal face detector -> run folder
    load_run(run_dir)                                    a finished run's metrics and predictions
    load_config(run_dir), read_history(run_dir)          its configuration and per-epoch history
    load_model(run_dir)                                  its trained network, ready for inference
    predict_image(run_dir, image_path, ...)              68 landmarks + occlusion for one image
    create_model(name, **options), list_models()         any registered model family

(`train_model`, not `train`: `m3mstl.train` is the training subpackage, and Python binds a
subpackage's name on its parent once it is imported, which would shadow a function.)
"""

__version__ = "0.1.0"

_API = {
    "generate_dataset": "m3mstl.data.synth.generate",
    "read_dataset": "m3mstl.data.coco",
    "validate_dataset": "m3mstl.data.validate",
    "make_config": "m3mstl.config",
    "train_model": ("m3mstl.train.trainer", "train"),
    "train_peer": "m3mstl.train.peer",
    "train_face_detector": "m3mstl.train.detector",
    "load_run": "m3mstl.runs.result",
    "load_config": "m3mstl.runs",
    "read_history": "m3mstl.runs",
    "load_model": "m3mstl.runs",
    "predict_image": "m3mstl.infer.predict",
    "create_model": "m3mstl.models",
    "list_models": "m3mstl.models",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'm3mstl' has no attribute {name!r}")
    import importlib

    module_name, attribute = _API[name] if isinstance(_API[name], tuple) else (_API[name], name)
    value = getattr(importlib.import_module(module_name), attribute)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
