"""Typed configuration: dataclasses with the paper's defaults, a YAML file, and ``--section.key=value``
overrides. An unknown key, a wrong type or an impossible value is an error that names it.

One module per section, beside the others: ``prepare`` (PrepareConfig), ``model`` (ModelConfig and the item
encoder's EncoderConfig with its text / vision parts), ``training`` (TrainConfig), ``evaluation`` (EvalConfig) and
``run`` (Config, a whole run: data, out and those three); ``loader`` reads files and overrides into them and
earlier versions' layouts as today's. Import from here: ``from morec.config import Config, load_config``.
"""
from .errors import ConfigError, _check
from .evaluation import SUBSETS, EvalConfig
from .loader import (MOVED_ENCODER_KEYS, RETIRED_KEYS, deep_merge, from_dict, load_config, migrate, note_once,
                     parse_overrides, save_config, to_dict)
from .model import MODES, EncoderConfig, ModelConfig, PartOverrides, TextEncoderSettings, VisionEncoderSettings
from .prepare import PrepareConfig, cut_time
from .run import Config
from .training import LOSSES, SCHEDULES, TrainConfig

__all__ = ["LOSSES", "MODES", "MOVED_ENCODER_KEYS", "RETIRED_KEYS", "SCHEDULES", "SUBSETS", "Config", "ConfigError",
           "EncoderConfig", "EvalConfig", "ModelConfig", "PartOverrides", "PrepareConfig", "TextEncoderSettings",
           "TrainConfig", "VisionEncoderSettings", "_check", "cut_time", "deep_merge", "from_dict", "load_config",
           "migrate", "note_once", "parse_overrides", "save_config", "to_dict"]
