"""The network families: a network is named in the .hnr's MODL chunk and rebuilt from its JSON config.

Each entry gives the family's sizing function (`make_config(height, width, bands, width_scale)`),
its exact parameter count, and the torch module. The decoder needs only `build`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from . import hiner, latent, lowrank


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
}


def family(name: str) -> ModelFamily:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})") from None


def build(config: dict) -> nn.Module:
    """The network described by a MODL config dict (weights still at their initial values)."""
    fam = family(config.get("model", ""))
    try:
        return fam.module(fam.from_dict(config))
    except (TypeError, KeyError, RuntimeError) as exc:  # the config comes from a file: not a bug here
        raise ValueError(f"invalid {fam.name} configuration: {exc}") from None
