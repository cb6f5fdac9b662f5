"""Models, built by name from one registry (as timm does): `create_model("m3mstl", ...)`."""
from m3mstl.models.registry import create_model, list_models, register_model, unregister_model

__all__ = ["create_model", "list_models", "register_model", "unregister_model"]
