"""Typed run configs, YAML presets with the papers' released settings, dotted overrides."""

from recdiff.config.loading import (
    ConfigError,
    apply_overrides,
    list_presets,
    load_config,
    preset_text,
)
from recdiff.config.schema import DataConfig, EvalConfig, ModelSpec, RunConfig, TimeWeightConfig

__all__ = [
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "ModelSpec",
    "RunConfig",
    "TimeWeightConfig",
    "apply_overrides",
    "list_presets",
    "load_config",
    "preset_text",
]
