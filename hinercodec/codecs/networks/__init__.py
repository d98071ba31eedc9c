"""The network codecs (torch): hiner (the paper's) and the decoders of latent and lowrank.

models.py (the families), hiner.py / latent.py / lowrank.py / layers.py (the networks), encoder.py
(sizing, fitting, quantisation, rate landing), decoder.py, fit.py, quant.py, ratecontrol.py.
"""
