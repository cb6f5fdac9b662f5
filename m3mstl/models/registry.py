"""One registry for every model family, so configs name models by string.

A family is one module: it registers each model name with `register_model`, giving the
factory, how to resolve its options (defaults filled in and validated, without building the
network) and its curriculum under a profile. `m3mstl.config.make_config`, the trainer's
command line and the tests enumerate the registry, so adding a family touches nothing else.
Every module in `m3mstl.models` is imported on the first lookup; a family defined elsewhere
(a test, a user's package) registers itself when its module is imported.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from m3mstl.errors import UnknownOptionError  # re-exported: raised for every unknown key

if TYPE_CHECKING:  # the registry itself stays free of torch: configs consult it cheaply
    import torch.nn as nn


def reject_unknown_options(family: str, given: Mapping[str, Any], known: set[str] | frozenset[str]) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UnknownOptionError("model_options", f"unknown {family} option(s) {unknown}; known options: {sorted(known)}")


# A curriculum maps a profile's settings (`m3mstl.profiles.TRAINING[profile]`: input_size, lr,
# steps, patience, cosine, backbone, ..., and the profile's name under "profile", with which a
# family looks up its own per-profile tables, e.g. its epochs) to the family's profile options and
# its stages, each a dict of `m3mstl.config.StageConfig` fields.
Curriculum = Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[dict[str, Any]]]]


@dataclass(frozen=True)
class ModelFamily:
    name: str
    factory: Callable[..., nn.Module]
    resolve_options: Callable[[Mapping[str, Any]], dict[str, Any]]  # full, validated, JSON-ready
    curriculum: Curriculum
    option_names: frozenset[str]
    # Options left out of the resolved dict (so out of run ids) while they hold this default:
    # an option added later does not change the id of every run made before it.
    omitted_at_default: Mapping[str, Any] = field(default_factory=dict)
    # Run settings the family keeps whatever the profile says (`m3mstl.config.make_config`): names of
    # RunConfig fields ("optimizer", "weight_decay", "ema_decay") and their values.
    own_optimiser: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelFamily] = {}


def register_model(fn: Callable[..., nn.Module] | None = None, *, resolve_options=None, curriculum=None,
                   option_names=None, omitted_at_default=None, own_optimiser=None):
    """Decorator registering a model factory under its function name, with its family's
    option resolver, curriculum and option names (all required but for the plain-factory
    form ``@register_model``, which registers a model that no config can train)."""

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__
        if name in _REGISTRY and _REGISTRY[name].factory is not factory:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelFamily(
            name, factory,
            resolve_options or (lambda options: dict(options)),
            curriculum or _no_curriculum(name),
            frozenset(option_names or ()),
            dict(omitted_at_default or {}),
            dict(own_optimiser or {}),
        )
        return factory

    return decorate(fn) if fn is not None else decorate


def _no_curriculum(name: str) -> Curriculum:
    def curriculum(settings: Mapping[str, Any]):
        raise ValueError(f"no curriculum for model {name!r}")
    return curriculum


def _import_model_modules() -> None:
    """Import every module of this package once: the built-in families register themselves."""
    package = importlib.import_module("m3mstl.models")
    for info in pkgutil.iter_modules(package.__path__, "m3mstl.models."):
        importlib.import_module(info.name)


def list_models() -> list[str]:
    _import_model_modules()
    return sorted(_REGISTRY)


def get_family(name: str) -> ModelFamily:
    _import_model_modules()
    if name not in _REGISTRY:
        raise UnknownOptionError("model", f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def unregister_model(name: str) -> None:
    """Remove a registered model (a family a test or a session registered for a while); the
    built-in families come back on the next lookup only if their module is imported anew, so
    this is for families defined outside `m3mstl.models`."""
    if name not in _REGISTRY:
        raise UnknownOptionError("model", f"unknown model {name!r}; registered: {', '.join(sorted(_REGISTRY))}")
    del _REGISTRY[name]


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments are the family's config options."""
    return get_family(name).factory(**kwargs)
