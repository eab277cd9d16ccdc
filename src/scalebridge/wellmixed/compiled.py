"""Compiled models cached on the network object they came from.

Networks are immutable, so a network compiled once serves every method and every parameter set.
The compiled model is kept in a private attribute of the network (not a dataclass field: it
takes no part in equality) and is collected with it.
"""

from __future__ import annotations

from ..codegen.build import CompiledModel, compile_network
from ..model.network import ReactionNetwork

_ATTR = "_scalebridge_compiled"


def compiled(net: ReactionNetwork) -> CompiledModel:
    cm = net.__dict__.get(_ATTR)
    if cm is None:
        cm = compile_network(net)
        object.__setattr__(net, _ATTR, cm)
    return cm
