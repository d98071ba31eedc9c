"""Entropy coders shared by the codecs and the TENS chunk: canonical Huffman and varints
(huffman.py), interleaved static rANS with segmented streams (rans.py)."""
