"""One registry for every model family, so configs name models by string."""
from __future__ import annotations

import importlib
from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}

# Modules whose import registers models; imported on first lookup so that
# `create_model` works without the caller importing each family.
_MODEL_MODULES = ("m3mstl.models.m3mstl", "m3mstl.models.hourglass")


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model factory under its function name."""
    if fn.__name__ in _REGISTRY and _REGISTRY[fn.__name__] is not fn:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def _import_model_modules() -> None:
    for module_name in _MODEL_MODULES:
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:  # a real import error inside the module: surface it
                raise


def list_models() -> list[str]:
    _import_model_modules()
    return sorted(_REGISTRY)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments are the family's config options."""
    _import_model_modules()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)
