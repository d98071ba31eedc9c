"""The default codec: spectral basis x CDF 9/7 wavelet images x context-modelled rANS.

encoder.py (search and quantisation), decoder.py (numpy reconstruction), bitstream.py (the
coefficient and side-information coder), wavelet.py (the transform). Specified in formats/HNR.md.
"""
