#!/usr/bin/env python3
"""What w2v-BERT's relative-key position bias costs in a Conformer layer.

w2v-BERT 2.0's self-attention adds ``q . E[clamp(j - i, -64, 8)]`` to
every score. transformers builds it as an einsum of the queries with a
``[T, T, d_head]`` gather of the distance embeddings, then hands it to
SDPA as an additive mask, which rules out the flash kernel (SDPA's flash
backend takes no arbitrary mask; the memory-efficient one does). This
benchmark times, for one full-width layer (d = 1024, 16 heads):

* the layer's forward + backward (transformers, SDPA);
* the bias alone, as transformers computes it;
* the bias as a table: ``q`` against the 73 distance embeddings
  (``[B, H, T, 73]``), gathered into ``[B, H, T, T]``; the same values
  (checked), without the ``[T, T, d_head]`` tensor.

Command line::

    python bench/attention_bias.py --frames 500 --batch 4

The last line printed is ``bias_share_of_layer: X``.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import time

import torch
from measurement import device_description, load_average, synchronize


def best_time(function, device, repeat):
    """Best of ``repeat`` timed calls after one warm-up call."""
    function()
    best = float("inf")
    for _ in range(repeat):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def table_bias(attention, query):
    """Relative-key bias from a ``[B, H, T, distances]`` table.

    Arguments
    ---------
    attention : torch.nn.Module
        transformers' ``Wav2Vec2BertSelfAttention`` (``relative_key``).
    query : torch.Tensor
        ``[B, H, T, d]`` queries.

    Returns
    -------
    torch.Tensor
        ``[B, H, T, T]`` bias, scaled as transformers scales it.
    """
    left = attention.left_max_position_embeddings
    right = attention.right_max_position_embeddings
    positions = torch.arange(query.shape[2], device=query.device)
    distance = (positions[None, :] - positions[:, None]).clamp(-left, right)
    weight = attention.distance_embedding.weight.to(query.dtype)
    # [B, H, T, d] x [d, distances] -> [B, H, T, distances]
    table = query @ weight.T
    index = (distance + left).expand(*query.shape[:2], -1, -1)
    return table.gather(3, index) * attention.scaling


def main(argv=None):
    """Runs the timings; returns the bias's share of the layer's time."""
    from transformers import Wav2Vec2BertConfig
    from transformers.models.wav2vec2_bert import (
        modeling_wav2vec2_bert as w2v_bert,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    options = parser.parse_args(argv)
    device = torch.device(options.device)
    print(f"device: {device_description(options.device)}")
    print(f"load average at start: {load_average()}")
    torch.manual_seed(0)
    config = Wav2Vec2BertConfig(num_hidden_layers=1)
    config._attn_implementation = "sdpa"
    layer = w2v_bert.Wav2Vec2BertEncoderLayer(config).to(device)
    attention = layer.self_attn
    heads, width = config.num_attention_heads, config.hidden_size
    shape = (options.batch, heads, options.frames, width // heads)
    hidden = torch.randn(
        options.batch, options.frames, width, device=device, requires_grad=True
    )
    query = torch.randn(shape, device=device, requires_grad=True)
    key = torch.randn(shape, device=device)

    def layer_step():
        """Forward + backward of the whole layer."""
        out = layer(hidden)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()

    def transformers_bias():
        """Forward + backward of transformers' bias alone."""
        _, bias = w2v_bert._apply_relative_key_position_encoding(
            attention, query, key
        )
        bias.sum().backward()

    def our_table_bias():
        """Forward + backward of the table formulation."""
        table_bias(attention, query).sum().backward()

    with torch.no_grad():
        _, reference = w2v_bert._apply_relative_key_position_encoding(
            attention, query, key
        )
        error = (table_bias(attention, query) - reference).abs().max().item()
    seconds = {
        name: best_time(function, device, options.repeat)
        for name, function in (
            ("layer", layer_step),
            ("transformers bias", transformers_bias),
            ("table bias", our_table_bias),
        )
    }
    print(
        f"one layer, d={width}, {heads} heads, batch {options.batch} x "
        f"{options.frames} frames, forward + backward:"
    )
    print("| part | ms | share of the layer |")
    print("|---|---|---|")
    for name, value in seconds.items():
        print(
            f"| {name} | {1000 * value:.1f} | {value / seconds['layer']:.2f} |"
        )
    print(f"table bias vs transformers bias: max |difference| {error:.1e}")
    print(f"load average at end: {load_average()}")
    share = seconds["transformers bias"] / seconds["layer"]
    print(f"bias_share_of_layer: {share:.2f}")
    return share


if __name__ == "__main__":
    main()
