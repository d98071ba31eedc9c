"""Land-cover classification of (decoded) hyperspectral cubes: the downstream test of a codec.

SpectralFormer (spectralformer.py) classifies pixels from small patches; ASW (asw.py) adapts a
decoded cube to the classifier; ISI (train.py) augments training with decodes at jittered
wavelengths straight from the .hnr. data.py reads and checks label maps and splits them;
classmap.py draws the result as a PNG with a legend.
"""
from .asw import ASW
from .classmap import class_map_png, palette
from .data import check_labels, load_labels, load_mask, split_by_mask, split_per_class, split_spec
from .spectralformer import SFConfig, SpectralFormer
from .train import Classifier, Result, TrainOptions, classify, fit, jittered_views, scores

__all__ = ["ASW", "Classifier", "Result", "SFConfig", "SpectralFormer", "TrainOptions", "check_labels",
           "class_map_png", "classify", "fit", "jittered_views", "load_labels", "load_mask", "palette",
           "scores", "split_by_mask", "split_per_class", "split_spec"]
