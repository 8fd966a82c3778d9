"""hooks/: everything that changes a model (and finds it, and loads it).

Public API:
    silence(model, layer, head, token)         context manager, zeroes one head at one token
    silence(model, sites=[(L, h, t), ...])     several sites at once
    sweep(model, input_ids, token, readout)    every single-head silencing at once
    layout_of(model)                           n_layers, n_heads, head_dim of a supported model
"""
from hooks.architectures import ARCHITECTURES, Layout, UnsupportedArchitecture, layout_of
from hooks.silence import Site, silence
from hooks.sweep import sweep

__all__ = ["ARCHITECTURES", "Layout", "Site", "UnsupportedArchitecture", "layout_of", "silence", "sweep"]
