"""Model registry: a model is named in the .hnr's MODL chunk and rebuilt from its JSON config.

Each entry gives the family's sizing function (`make_config(height, width, bands, width_scale)`),
its exact parameter count, and the torch module. The decoder needs only `build`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from . import hiner, latent, lowrank, transform


@dataclass(frozen=True)
class ModelFamily:
    name: str
    make_config: Callable  # (height, width, bands, width_scale) -> config object with .to_dict()
    count_parameters: Callable  # config -> int
    from_dict: Callable  # dict -> config
    module: Callable  # config -> nn.Module


MODELS = {
    "hiner": ModelFamily("hiner", hiner.make_config, hiner.count_parameters, hiner.HinerConfig.from_dict, hiner.HinerNet),
    "latent": ModelFamily("latent", latent.make_config, latent.count_parameters, latent.LatentConfig.from_dict,
                          latent.LatentNet),
    "lowrank": ModelFamily("lowrank", lowrank.make_config, lowrank.count_parameters,
                           lowrank.LowRankConfig.from_dict, lowrank.LowRankNet),
    "transform": ModelFamily("transform", transform.make_config, transform.count_parameters,
                             transform.TransformConfig.from_dict, transform.TransformNet),
    # the transform model with sign contexts in its coefficient section (hinerc 0.4): a new MODL
    # value, so that hinerc 0.3 refuses such files as unsupported instead of misreading them
    "transform2": ModelFamily("transform2", transform.make_config, transform.count_parameters,
                              transform.TransformConfig.from_dict, transform.TransformNet),
}


def family(name: str) -> ModelFamily:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})") from None


def build(config: dict) -> nn.Module:
    """The network described by a MODL config dict (weights still at their initial values)."""
    fam = family(config.get("model", ""))
    return fam.module(fam.from_dict(config))
