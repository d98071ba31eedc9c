from setuptools import setup, Extension

setup(ext_modules=[Extension("hinercodec.codecs.lossless._lossless", ["hinercodec/codecs/lossless/_lossless.c"],
                             extra_compile_args=["-O2", "-ffp-contract=off", "-pthread"],
                             extra_link_args=["-pthread"]),
                   Extension("hinercodec.codecs.transform._fast", ["hinercodec/codecs/transform/_fast.c"],
                             extra_compile_args=["-O2", "-ffp-contract=off", "-pthread"], extra_link_args=["-pthread"])])
