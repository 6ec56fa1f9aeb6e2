"""Chat models for agents: built from a spec string, once per process."""

from meshscope.services.runtime.models.factory import (
    MODEL_OVERRIDE_ENV,
    ModelSpec,
    create_model,
    parse_model_spec,
)
from meshscope.services.runtime.models.scripted import ScriptedChatModel

__all__ = ["MODEL_OVERRIDE_ENV", "ModelSpec", "ScriptedChatModel", "create_model", "parse_model_spec"]
