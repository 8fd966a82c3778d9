"""hooks/: everything that changes a model (model loading lives in models/).

Public API:
    silence(model, layer, head, token)         context manager, zeroes one head at one token
    silence(model, sites=[(L, h, t), ...])     several sites at once
    sweep(model, input_ids, token, readout)    every single-head silencing at once (several tokens,
                                               a padded batch, values= or donor_ids= for patching)
    sweep_and_clean(model, input_ids, token)   the same, and the clean pass it is measured against
                                               (the fast engine's own: no second forward pass)
    head_values(model, input_ids, mask)        every head's clean output at every position
    mean_values / resample_values              what mean / resample ablation put in a head's place
    ablate(model, layer, heads, token, value)  replace heads by a vector (zeros) at one/every token
    scale_block(model, layer, factor, token)   scale a block's update of the residual stream
    resumed_pass(model, ids, token, starts, install)   one batched hooked pass of a prompt's copies, each
                                               row re-run only from its first edited block and token
    capture_heads(model)                       record every block's head outputs
    layout_of(model)                           n_layers, n_heads, head_dim of a supported model
"""
from hooks.architectures import ARCHITECTURES, Layout, UnsupportedArchitecture, layout_of
from hooks.ablate import ablate, capture_heads
from hooks.resume import resumed_pass
from hooks.scale import scale_block
from hooks.silence import Site, silence
from hooks.sweep import CleanPass, sweep, sweep_and_clean
from hooks.values import derangement, head_values, mean_values, resample_values

__all__ = ["ARCHITECTURES", "CleanPass", "Layout", "Site", "UnsupportedArchitecture", "ablate", "capture_heads", "derangement",
           "head_values", "layout_of", "mean_values", "resample_values", "resumed_pass", "scale_block", "silence",
           "sweep", "sweep_and_clean"]
