"""Adapters that drop dasnas into the NAS tools people use.

* :mod:`dasnas.adapters.naslib`: a predictor with NASLib's ``ZeroCost``
  surface (``query(graph, dataloader=None, info=None) -> float``).
* :mod:`dasnas.adapters.nni_adapter`: NNI's NB201 and NB101 sample dicts
  as a benchmark-evaluator-style callable (named so that importing it
  never hides NNI's own ``nni`` module).
* :mod:`dasnas.adapters.naswot`: scores in NB201 index order as a NumPy
  array, as the NASWOT scripts' ``score_networks.py`` saves them.

Each converts its tool's architecture encoding to a dasnas architecture
string (the conversion functions are public and tested on known cases).
"""

from . import naslib, naswot, nni_adapter

__all__ = ["naslib", "nni_adapter", "naswot"]
