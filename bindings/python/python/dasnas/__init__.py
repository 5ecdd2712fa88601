"""dasnas: training-free scores of neural-architecture cells (NASWOT and the
DAS split into distinguishing ability D and activation units N_A), on the
crate's own CPU and CUDA kernels.

>>> import dasnas
>>> s = dasnas.Scorer("nb201", device="cpu", batch=32)
>>> cell = s.score("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
>>> sorted(cell)[:3]
['arch', 'd', 'das']

Modules: :mod:`dasnas.spaces` (sample, parse, list cells, identities),
:mod:`dasnas.eval` (Kendall tau, Spearman rho), :func:`dasnas.fit`,
:func:`dasnas.search`, :func:`dasnas.merge` (join shard files),
:mod:`dasnas.distributed` (a space on a Ray cluster; needs ``ray``) and
:mod:`dasnas.adapters` (NASLib, NNI, the NASWOT scripts).
"""

from ._dasnas import DeviceError, InternalError, __version__
from ._scorer import Scorer, measures
from ._study import fit, search
from .results import merge
from . import adapters, eval, spaces

__all__ = [
    "Scorer",
    "measures",
    "DeviceError",
    "InternalError",
    "fit",
    "search",
    "merge",
    "spaces",
    "eval",
    "adapters",
    "__version__",
]
