"""Rate-distortion benchmarks of hinerc against classical codecs (../shared/PROTOCOL.md).

Benchmark-only code: the codec never imports it, and its extra dependencies (glymur, imagecodecs,
matplotlib, ffmpeg with libx265) live in the `bench` extra / the system, not in install_requires.
"""
