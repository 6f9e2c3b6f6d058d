"""Backpack language model (Hewitt et al., 2023) in one readable module.

A Backpack predicts the next token from a non-negative, context-dependent
mixture of *sense vectors*:

    senses[k, s] = SenseNet(wte[x_s])[k]     # context-free
    c = GPT-2(x)                              # contextual states
    alpha[k, t, s] = softmax_{s <= t} q_k(c_t) . k_k(c_s) / sqrt(d / K)
    h_t = sum_k sum_s alpha[k, t, s] * senses[k, s]
    logits_t = h_t @ wte^T

The module mirrors ``modeling_backpack_gpt2.py`` from the Hugging Face repo
``stanfordnlp/backpack-gpt2`` (same sub-module names, same order of
operations) so that the published weights load with a purely mechanical key
mapping, see :meth:`BackpackLM.from_pretrained`. Things the reference does
that are easy to get wrong, all reproduced here:

* The sense network applies its ``ln`` to the *input* embeddings, then a
  post-norm ``BackpackNoMixBlock`` whose ``ln_2`` is the last normalisation;
  ``final_mlp`` (d -> scale*d -> K*d) reads that output directly.
* The sum over senses is *not* rescaled (Levanter's re-implementation
  divides by K; the reference and the original flash-attn training code do
  not) and *no* LayerNorm follows it: logits are ``h @ wte^T``.
* The weight network's ``c_attn`` is an ``nn.Linear`` ([out, in] on disk),
  while every GPT-2 and sense-network projection is a GPT-2 ``Conv1D``
  ([in, out] on disk).

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BackpackConfig",
    "BackpackLM",
    "BackpackOutput",
    "hf_key_for",
    "is_conv1d_key",
]

_ACTIVATIONS = {
    # GPT-2's "gelu_new" is the tanh approximation.
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu": F.gelu,
    "relu": F.relu,
}


@dataclass
class BackpackConfig:
    """Hyper-parameters of a Backpack LM.

    Defaults are those of ``stanfordnlp/backpack-gpt2`` (``BackpackGPT2Config``
    on top of GPT-2 small).

    Arguments
    ---------
    vocab_size : int
        Number of token types (50264 for the published model).
    n_positions : int
        Maximum sequence length of the contextualisation Transformer.
    n_embd : int
        Model width d, shared by senses, embeddings and the Transformer.
    n_layer : int
        Number of GPT-2 blocks in the contextualisation Transformer.
    n_head : int
        Attention heads of the GPT-2 blocks.
    num_senses : int
        Senses per token K; also the number of heads of the weight network,
        whose head size is ``n_embd // num_senses``.
    sense_intermediate_scale : int
        Hidden width of the sense network's final MLP, in multiples of d.
    dropout : float
        Used for GPT-2's ``embd_pdrop``, ``attn_pdrop`` and ``resid_pdrop``.
    layer_norm_epsilon : float
        LayerNorm epsilon everywhere.
    scale_attn_by_inverse_layer_idx : bool
        GPT-2 option: divide the attention logits of block i (0-based) by
        ``i + 1``. True in the published model.
    tie_word_embeddings : bool
        Read logits through the token embedding matrix (the reference ties).
    activation_function : str
        One of "gelu_new" (GPT-2 default), "gelu_pytorch_tanh", "gelu",
        "relu".
    initializer_range : float
        Std of the GPT-2 style normal initialisation.

    Example
    -------
    >>> cfg = BackpackConfig.micro(vocab_size=100)
    >>> cfg.n_embd, cfg.n_layer, cfg.n_head, cfg.num_senses
    (384, 6, 6, 16)
    """

    vocab_size: int = 50264
    n_positions: int = 512
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    num_senses: int = 16
    sense_intermediate_scale: int = 4
    dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    scale_attn_by_inverse_layer_idx: bool = True
    tie_word_embeddings: bool = True
    activation_function: str = "gelu_new"
    initializer_range: float = 0.02

    def __post_init__(self):
        """Checks and completes the fields."""
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}"
            )
        if self.n_embd < self.num_senses:
            raise ValueError(
                f"n_embd={self.n_embd} < num_senses={self.num_senses}: the "
                "weight network would have empty heads"
            )
        if self.activation_function not in _ACTIVATIONS:
            raise ValueError(
                f"activation_function={self.activation_function!r} is not "
                f"one of {sorted(_ACTIVATIONS)}"
            )

    @classmethod
    def micro(cls, **overrides) -> BackpackConfig:
        """384-d, 6 layers, 6 heads (~ nanoGPT "mini"); K stays 16.

        Arguments
        ---------
        **overrides
            Replace fields, e.g. ``vocab_size=8000``.

        Returns
        -------
        BackpackConfig
        """
        return cls(**{"n_embd": 384, "n_layer": 6, "n_head": 6, **overrides})

    @classmethod
    def small(cls, **overrides) -> BackpackConfig:
        """768-d, 12 layers, 12 heads: the ``backpack-gpt2`` shape.

        Arguments
        ---------
        **overrides
            Replace fields, e.g. ``vocab_size=8000``.

        Returns
        -------
        BackpackConfig
        """
        return cls(**{"n_embd": 768, "n_layer": 12, "n_head": 12, **overrides})

    @classmethod
    def from_pretrained(cls, path, **overrides) -> BackpackConfig:
        """Read the ``config.json`` of a saved Backpack directory.

        Builds the architecture of a checkpoint without its weights, e.g.
        for a from-scratch baseline of the same shape, or to build the
        module in a yaml file before the weights are loaded.

        Arguments
        ---------
        path : str or Path
            A directory written by :meth:`BackpackLM.save_pretrained` (or
            ``stanfordnlp/backpack-gpt2``), or its ``config.json``.
        **overrides
            Replace fields, e.g. ``dropout=0.0``.

        Returns
        -------
        BackpackConfig
        """
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        with open(path) as f:
            return cls.from_hf_dict(json.load(f), **overrides)

    def to_hf_dict(self) -> dict:
        """Return a ``config.json`` payload in ``BackpackGPT2Config`` form.

        Returns
        -------
        dict
            JSON-serialisable fields, with the GPT-2 dropout names and the
            ``auto_map`` of the reference implementation.
        """
        out = asdict(self)
        dropout = out.pop("dropout")
        out.update(
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            n_inner=None,
            scale_attn_weights=True,
            reorder_and_upcast_attn=False,
            # BackpackGPT2Config inherits GPT2Config.model_type.
            model_type="gpt2",
            architectures=["BackpackGPT2LMHeadModel"],
            # Lets transformers load the directory with trust_remote_code
            # once the two reference .py files are copied next to it.
            auto_map={
                "AutoConfig": "configuration_backpack_gpt2.BackpackGPT2Config",
                "AutoModelForCausalLM": (
                    "modeling_backpack_gpt2.BackpackGPT2LMHeadModel"
                ),
            },
        )
        return out

    @classmethod
    def from_hf_dict(cls, hf: dict, **overrides) -> BackpackConfig:
        """Build a config from a ``BackpackGPT2Config``-style ``config.json``.

        Missing fields take the ``BackpackGPT2Config`` defaults; GPT-2
        options this module does not implement raise instead of being
        silently ignored.

        Arguments
        ---------
        hf : dict
            A parsed ``config.json``.
        **overrides
            Replace fields after reading, e.g. ``dropout=0.0``.

        Returns
        -------
        BackpackConfig
        """
        n_embd = hf.get("n_embd", cls.n_embd)
        n_inner = hf.get("n_inner")
        if n_inner is not None and n_inner != 4 * n_embd:
            raise ValueError(f"n_inner={n_inner} != 4*n_embd is not supported")
        if not hf.get("scale_attn_weights", True):
            raise ValueError("scale_attn_weights=False is not supported")
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in hf.items() if k in names}
        if "dropout" not in kwargs and "resid_pdrop" in hf:
            kwargs["dropout"] = hf["resid_pdrop"]
        kwargs.update(overrides)
        return cls(**kwargs)


@dataclass
class BackpackOutput:
    """What :meth:`BackpackLM.forward` returns.

    Arguments
    ---------
    logits : torch.Tensor
        ``[B, T, V]`` next-token logits.
    hidden : torch.Tensor
        ``[B, T, d]`` the Backpack output ``sum_k sum_s alpha * senses``
        (what the LM head reads).
    contextualization : torch.Tensor
        ``[B, K, T_target, T_source]`` the weights alpha; rows of real
        targets sum to one over real sources ``<= target``, rows of padded
        targets are zero.
    context_hidden : torch.Tensor
        ``[B, T, d]`` last hidden states of the GPT-2 contextualisation
        Transformer (after ``ln_f``), i.e. the input of the weight network.
    senses : torch.Tensor or None
        ``[B, K, T, d]`` sense vectors of the input tokens, only when
        requested (``return_senses=True``).
    """

    logits: torch.Tensor
    hidden: torch.Tensor
    contextualization: torch.Tensor
    context_hidden: torch.Tensor
    senses: torch.Tensor | None = None


class MLP(nn.Module):
    """GPT-2 / Backpack MLP: ``c_fc -> act -> c_proj -> dropout``.

    Arguments
    ---------
    d_in : int
        Input width.
    d_hidden : int
        Hidden width (4 * d_in in GPT-2 blocks).
    d_out : int
        Output width (K * d in the sense network's final MLP).
    config : BackpackConfig
        Gives the activation and the dropout.
    """

    def __init__(self, d_in, d_hidden, d_out, config):
        super().__init__()
        self.c_fc = nn.Linear(d_in, d_hidden)
        self.c_proj = nn.Linear(d_hidden, d_out)
        self.act = _ACTIVATIONS[config.activation_function]
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        """Projects up, applies the activation, projects down.

        Arguments
        ---------
        x : torch.Tensor
            Input, [..., d_in].

        Returns
        -------
        torch.Tensor
            Output, [..., d_out], after dropout.
        """
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class CausalSelfAttention(nn.Module):
    """GPT-2 multi-head causal self-attention (``GPT2Attention``).

    Arguments
    ---------
    config : BackpackConfig
        Gives the width, heads, dropout and scaling options.
    layer_idx : int
        Index of the block, for ``scale_attn_by_inverse_layer_idx``.
    """

    def __init__(self, config, layer_idx):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        head_dim = config.n_embd // config.n_head
        self.scale = 1.0 / math.sqrt(head_dim)
        if config.scale_attn_by_inverse_layer_idx:
            # GPT-2 divides the logits of block i by (i + 1), on top of the
            # usual 1/sqrt(head_dim); the published Backpack enables it.
            self.scale /= float(layer_idx + 1)

    def forward(self, x, allowed=None):
        """``x`` [B, T, d]; ``allowed`` None or bool [B, 1, T, T].

        Arguments
        ---------
        x : torch.Tensor
            Hidden states, [B, T, d].
        allowed : torch.Tensor, optional
            Bool [B, 1, T, T] of the key positions each query may attend to;
            None for plain causal attention.

        Returns
        -------
        torch.Tensor
            Attention output after projection and dropout, [B, T, d].
        """
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # [B, T, d] -> [B, H, T, d/H]
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=allowed,
            dropout_p=self.attn_dropout if self.training else 0.0,
            is_causal=allowed is None,
            scale=self.scale,
        )
        # [B, H, T, d/H] -> [B, T, d]
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class Block(nn.Module):
    """Pre-norm GPT-2 block (``GPT2Block``).

    Arguments
    ---------
    config : BackpackConfig
        Gives the width, epsilon and the attention options.
    layer_idx : int
        Index of the block, passed to its attention.
    """

    def __init__(self, config, layer_idx):
        super().__init__()
        eps = config.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=eps)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=eps)
        d = config.n_embd
        self.mlp = MLP(d, 4 * d, d, config)

    def forward(self, x, allowed=None):
        """Attention and MLP, each on a layer-normed input, added back.

        Arguments
        ---------
        x : torch.Tensor
            Hidden states, [B, T, d].
        allowed : torch.Tensor, optional
            Bool [B, 1, T, T] of the key positions each query may attend to;
            None for plain causal attention.

        Returns
        -------
        torch.Tensor
            Hidden states, [B, T, d].
        """
        x = x + self.attn(self.ln_1(x), allowed)
        return x + self.mlp(self.ln_2(x))


class NoMixBlock(nn.Module):
    """Attention-free, post-norm block (reference ``BackpackNoMixBlock``).

    Takes the running residual separately, like the flash-attn
    ``Block(prenorm=True)`` it was ported from.

    Arguments
    ---------
    config : BackpackConfig
        Gives the width, epsilon and dropout.
    """

    def __init__(self, config):
        super().__init__()
        d, eps = config.n_embd, config.layer_norm_epsilon
        self.ln_1 = nn.LayerNorm(d, eps=eps)
        self.ln_2 = nn.LayerNorm(d, eps=eps)
        # 4*d regardless of sense_intermediate_scale, as in the reference.
        self.mlp = MLP(d, 4 * d, d, config)
        self.resid_dropout1 = nn.Dropout(config.dropout)
        self.resid_dropout2 = nn.Dropout(config.dropout)

    def forward(self, hidden, residual):
        """Adds ``hidden`` and the MLP output to the residual, post-norm.

        Arguments
        ---------
        hidden : torch.Tensor
            The sub-layer input, [B, T, d].
        residual : torch.Tensor
            The running residual stream, [B, T, d].

        Returns
        -------
        torch.Tensor
            The normalised new residual, [B, T, d].
        """
        residual = self.resid_dropout1(hidden) + residual
        hidden = self.ln_1(residual)
        # The reference drops the MLP output twice (inside the MLP and here).
        residual = self.resid_dropout2(self.mlp(hidden)) + residual
        return self.ln_2(residual)


class SenseNetwork(nn.Module):
    """Token embedding -> K sense vectors (reference ``BackpackSenseNetwork``).

    Position-wise: no positions, no mixing across tokens, so the senses of a
    token type do not depend on its context.

    Arguments
    ---------
    config : BackpackConfig
        Gives the width, K and ``sense_intermediate_scale``.
    """

    def __init__(self, config):
        super().__init__()
        self.num_senses = config.num_senses
        self.n_embd = config.n_embd
        self.dropout = nn.Dropout(config.dropout)
        self.block = NoMixBlock(config)
        self.ln = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        d = config.n_embd
        self.final_mlp = MLP(
            d,
            config.sense_intermediate_scale * d,
            config.num_senses * d,
            config,
        )

    def forward(self, tok_emb):
        """``tok_emb`` [B, T, d] -> senses [B, K, T, d].

        Arguments
        ---------
        tok_emb : torch.Tensor
            Token embeddings, [B, T, d].

        Returns
        -------
        torch.Tensor
            Sense vectors, [B, K, T, d].
        """
        B, T, _ = tok_emb.shape
        residual = self.dropout(tok_emb)
        hidden = self.block(self.ln(residual), residual)
        senses = self.final_mlp(hidden)  # [B, T, K*d]
        # [B, T, K*d] -> [B, T, K, d] -> [B, K, T, d]
        return senses.view(B, T, self.num_senses, self.n_embd).transpose(1, 2)


class WeightNetwork(nn.Module):
    """Contextualisation weights (reference ``BackpackWeightNetwork``).

    One query/key projection split into K heads of size d // K; each head k
    gives a causal distribution over source positions for sense k.

    Arguments
    ---------
    config : BackpackConfig
        Gives the width and K (which must divide it).
    """

    def __init__(self, config):
        super().__init__()
        self.num_senses = config.num_senses
        self.head_dim = config.n_embd // config.num_senses
        self.c_attn = nn.Linear(
            config.n_embd, 2 * config.num_senses * self.head_dim
        )
        self.scale = 1.0 / math.sqrt(self.head_dim)

    def forward(self, context_hidden, allowed=None, query_mask=None):
        """``context_hidden`` [B, T, d] -> alpha [B, K, T, T].

        Arguments
        ---------
        context_hidden : torch.Tensor
            Final hidden states of the GPT-2 trunk, [B, T, d].
        allowed : torch.Tensor, optional
            Bool [B, 1, T, T]; None for plain causal.
        query_mask : torch.Tensor, optional
            [B, T], 1 for real tokens and 0 for padding; padded queries get
            zero weights instead of a distribution.

        Returns
        -------
        torch.Tensor
            Weights alpha, [B, K, T, T], each query row a distribution over
            its allowed sources.
        """
        B, T, _ = context_hidden.shape
        qk = self.c_attn(context_hidden)  # [B, T, 2*K*h]
        # The first half of the output is the query, the second the key.
        q, k = qk.view(B, T, 2, self.num_senses, self.head_dim).unbind(dim=2)
        # [B, T, K, h] x [B, S, K, h] -> [B, K, T, S]
        scores = torch.einsum("btkh,bskh->bkts", q, k * self.scale)
        if allowed is None:
            allowed = torch.ones(
                T, T, dtype=torch.bool, device=scores.device
            ).tril()
        # A hard mask where the reference adds -10000: identical after the
        # softmax in fp32, and exact for the padding we add on top.
        scores = scores.masked_fill(~allowed, float("-inf"))
        alpha = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        if query_mask is not None:
            # [B, T] -> [B, 1, T, 1]: padded targets get no mixture at all.
            alpha = alpha * query_mask[:, None, :, None].to(alpha.dtype)
        return alpha


class BackpackLM(nn.Module):
    """Backpack language model with a GPT-2 contextualisation network.

    Sub-module names follow the reference so that :func:`hf_key_for` is a
    prefix rename: ``wte``, ``wpe``, ``h``, ``ln_f`` live under
    ``backpack.gpt2_model``; ``sense_network`` and ``sense_weight_net``
    under ``backpack``.

    Arguments
    ---------
    config : BackpackConfig
        Model hyper-parameters.

    Example
    -------
    >>> cfg = BackpackConfig(vocab_size=50, n_positions=16, n_embd=16,
    ...                      n_layer=2, n_head=2, num_senses=4)
    >>> model = BackpackLM(cfg).eval()
    >>> out = model(torch.randint(0, 50, (2, 5)), return_senses=True)
    >>> out.logits.shape, out.contextualization.shape
    (torch.Size([2, 5, 50]), torch.Size([2, 4, 5, 5]))
    >>> out.senses.shape
    torch.Size([2, 4, 5, 16])
    """

    def __init__(self, config: BackpackConfig):
        super().__init__()
        self.config = config
        d = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, d)
        self.wpe = nn.Embedding(config.n_positions, d)
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(d, eps=config.layer_norm_epsilon)
        self.sense_network = SenseNetwork(config)
        self.sense_weight_net = WeightNetwork(config)
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                # GPT-2's depth-scaled init of residual projections; HF's
                # _init_weights matches by name, so the sense network's
                # c_proj layers get it too.
                std = config.initializer_range / math.sqrt(2 * config.n_layer)
                nn.init.normal_(p, mean=0.0, std=std)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.wte.weight

    def _init_weights(self, module):
        """GPT-2 initialisation: normal weights, zero biases, unit norms."""
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids,
        attention_mask=None,
        position_ids=None,
        return_senses=False,
    ) -> BackpackOutput:
        """Run the Backpack on a batch of token ids.

        Arguments
        ---------
        input_ids : torch.LongTensor
            ``[B, T]`` token ids.
        attention_mask : torch.Tensor, optional
            ``[B, T]``, 1 for real tokens and 0 for padding (left or right).
            Padded positions are never attended to, neither by GPT-2 nor as
            sources of the sense mixture.
        position_ids : torch.LongTensor, optional
            ``[B, T]``; by default ``0..T-1``, or, with a mask, the number of
            real tokens before each position, so that left padding does not
            shift positions.
        return_senses : bool
            Also return the ``[B, K, T, d]`` sense vectors.

        Returns
        -------
        BackpackOutput
        """
        B, T = input_ids.shape
        if T > self.config.n_positions:
            raise ValueError(
                f"sequence length {T} > n_positions={self.config.n_positions}"
            )
        allowed = None
        if attention_mask is not None:
            attention_mask = attention_mask.to(torch.bool)
            allowed = _allowed_mask(attention_mask)  # [B, 1, T, T]
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(0)
            else:
                position_ids = torch.arange(T, device=input_ids.device)

        tok_emb = self.wte(input_ids)  # [B, T, d]
        senses = self.sense_network(tok_emb)  # [B, K, T, d]

        x = self.drop(tok_emb + self.wpe(position_ids))  # [B, T, d]
        for block in self.h:
            x = block(x, allowed)
        context_hidden = self.ln_f(x)
        alpha = self.sense_weight_net(context_hidden, allowed, attention_mask)

        # [B, K, T, S] x [B, K, S, d] -> [B, T, d]; the reference sums
        # (alpha @ senses) over K with no rescaling and no LayerNorm.
        hidden = torch.einsum("bkts,bksd->btd", alpha, senses)
        logits = self.lm_head(hidden)  # [B, T, V]
        return BackpackOutput(
            logits=logits,
            hidden=hidden,
            contextualization=alpha,
            context_hidden=context_hidden,
            senses=senses if return_senses else None,
        )

    def sense_vectors(self, token_ids):
        """Sense vectors of token types, computed on demand.

        The sense network is position-wise, so this equals the ``senses``
        returned by :meth:`forward` for the same tokens (in eval mode).

        Arguments
        ---------
        token_ids : torch.LongTensor
            ``[N]`` token ids.

        Returns
        -------
        torch.Tensor
            ``[N, K, d]``.

        Example
        -------
        >>> cfg = BackpackConfig(vocab_size=50, n_positions=8, n_embd=16,
        ...                      n_layer=1, n_head=2, num_senses=4)
        >>> BackpackLM(cfg).sense_vectors(torch.tensor([3, 7])).shape
        torch.Size([2, 4, 16])
        """
        tok_emb = self.wte(token_ids)[None]  # [N, d] -> [1, N, d]
        # [1, K, N, d] -> [N, K, d]
        return self.sense_network(tok_emb)[0].transpose(0, 1)

    @torch.no_grad()
    def sense_top_tokens(
        self, token_ids, top_k=10, chunk_size=256, largest=True
    ):
        """Vocabulary items each sense most promotes (or demotes).

        Scores are the logits a sense would contribute on its own,
        ``senses @ wte^T``. Tokens are processed ``chunk_size`` at a time so
        memory stays at ``chunk_size * K * V`` scores, whatever N is.

        Arguments
        ---------
        token_ids : torch.LongTensor
            ``[N]`` token ids whose senses to inspect.
        top_k : int
            Vocabulary items kept per sense.
        chunk_size : int
            Tokens scored at once.
        largest : bool
            False returns the most negative scores instead.

        Returns
        -------
        scores : torch.Tensor
            ``[N, K, top_k]`` projection scores, best first.
        indices : torch.LongTensor
            ``[N, K, top_k]`` vocabulary ids.

        Example
        -------
        >>> cfg = BackpackConfig(vocab_size=50, n_positions=8, n_embd=16,
        ...                      n_layer=1, n_head=2, num_senses=4)
        >>> scores, ids = BackpackLM(cfg).sense_top_tokens(
        ...     torch.tensor([1, 2, 3]), top_k=5, chunk_size=2)
        >>> ids.shape
        torch.Size([3, 4, 5])
        """
        all_scores, all_ids = [], []
        for chunk in token_ids.split(chunk_size):
            senses = self.sense_vectors(chunk)  # [n, K, d]
            proj = senses @ self.lm_head.weight.T  # [n, K, V]
            s, i = proj.topk(top_k, dim=-1, largest=largest)
            all_scores.append(s)
            all_ids.append(i)
        return torch.cat(all_scores), torch.cat(all_ids)

    # ------------------------------------------------------------------
    # Hugging Face ``stanfordnlp/backpack-gpt2`` checkpoint layout
    # ------------------------------------------------------------------

    def hf_state_dict(self, aliases=False):
        """This model's weights under the reference key names and shapes.

        Arguments
        ---------
        aliases : bool
            Also emit the names under which the reference stores the same
            tied tensors again: ``backpack.word_embeddings.weight``,
            ``backpack.position_embeddings.weight`` and (tied)
            ``lm_head.weight``.

        Returns
        -------
        dict
            HF key -> tensor (Conv1D weights as [in, out]).
        """
        tied = self.config.tie_word_embeddings
        out = {}
        for key, value in self.state_dict().items():
            if tied and key == "lm_head.weight":
                continue
            out[hf_key_for(key)] = value.T if is_conv1d_key(key) else value
        if aliases:
            out[_WORD_ALIAS] = out["backpack.gpt2_model.wte.weight"]
            out[_POS_ALIAS] = out["backpack.gpt2_model.wpe.weight"]
            if tied:
                out["lm_head.weight"] = out["backpack.gpt2_model.wte.weight"]
        return out

    def save_pretrained(self, save_dir, safe_serialization=True):
        """Write ``config.json`` plus weights in the reference layout.

        Arguments
        ---------
        save_dir : str or Path
            Target directory (created if needed).
        safe_serialization : bool
            True writes ``model.safetensors`` with each tensor once (like
            ``transformers``, which drops tied duplicates); False writes
            ``pytorch_model.bin`` with the alias keys as well, as the
            reference's own ``state_dict`` has them.
        """
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        with open(save_dir / "config.json", "w") as f:
            json.dump(self.config.to_hf_dict(), f, indent=2, sort_keys=True)
        if safe_serialization:
            from safetensors.torch import save_file

            state = {
                k: v.detach().contiguous().cpu()
                for k, v in self.hf_state_dict().items()
            }
            save_file(state, save_dir / "model.safetensors")
        else:
            state = self.hf_state_dict(aliases=True)
            state = {k: v.detach().cpu() for k, v in state.items()}
            torch.save(state, save_dir / "pytorch_model.bin")

    @classmethod
    def from_pretrained(cls, path, map_location="cpu", **config_overrides):
        """Load a ``stanfordnlp/backpack-gpt2``-layout checkpoint from disk.

        Arguments
        ---------
        path : str or Path
            A local directory with ``config.json`` and ``model.safetensors``
            or ``pytorch_model.bin`` (or their sharded ``*.index.json``), or
            the weight file itself with ``config.json`` beside it. Nothing is
            downloaded.
        map_location : str or torch.device
            Where tensors are loaded.
        **config_overrides
            Replace config fields, e.g. ``dropout=0.0``.

        Returns
        -------
        BackpackLM
            In eval mode, like ``transformers`` models; call ``.train()``
            to fine-tune.

        Raises
        ------
        ValueError
            Listing every missing, unexpected or mis-shaped key.
        """
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        config = BackpackConfig.from_pretrained(directory, **config_overrides)
        state = _load_weights(path, map_location)
        model = cls(config)
        model.load_state_dict(model._from_hf(state))
        return model.eval()

    def _from_hf(self, hf_state):
        """Map an HF-layout state dict to this module's keys and shapes."""
        tied = self.config.tie_word_embeddings
        expected = {
            k: v
            for k, v in self.state_dict().items()
            if not (tied and k == "lm_head.weight")
        }
        by_hf = {hf_key_for(k): k for k in expected}
        # Where the reference stores a tied tensor a second time.
        alias_of = {
            _WORD_ALIAS: "wte.weight",
            _POS_ALIAS: "wpe.weight",
        }
        if tied:
            alias_of["lm_head.weight"] = "wte.weight"

        state, aliases, unexpected = {}, {}, []
        for hf_key, value in hf_state.items():
            if _IGNORED_HF_KEY.match(hf_key):
                continue
            if hf_key in by_hf:
                state[by_hf[hf_key]] = value
            elif hf_key in alias_of:
                aliases.setdefault(alias_of[hf_key], []).append((hf_key, value))
            else:
                unexpected.append(hf_key)

        inconsistent = []
        for key, copies in aliases.items():
            for hf_key, value in copies:
                if key not in state:
                    state[key] = value
                elif value.shape != state[key].shape or not torch.equal(
                    value, state[key]
                ):
                    inconsistent.append(f"{hf_key} != {hf_key_for(key)}")

        missing = sorted(hf_key_for(k) for k in expected if k not in state)
        mis_shaped = []
        for key, value in list(state.items()):
            want = expected[key].shape
            if is_conv1d_key(key):
                want = torch.Size(reversed(want))
            if value.shape != want:
                mis_shaped.append(
                    f"{hf_key_for(key)}: expected {tuple(want)}, "
                    f"got {tuple(value.shape)}"
                )
            elif is_conv1d_key(key):
                state[key] = value.T

        problems = []
        if missing:
            problems.append("missing keys: " + ", ".join(missing))
        if unexpected:
            problems.append("unexpected keys: " + ", ".join(sorted(unexpected)))
        if mis_shaped:
            problems.append("shape mismatch: " + "; ".join(mis_shaped))
        if inconsistent:
            problems.append(
                "tied copies differ (is tie_word_embeddings right?): "
                + ", ".join(inconsistent)
            )
        if problems:
            raise ValueError(
                "checkpoint does not match the backpack-gpt2 layout for this "
                "config:\n  " + "\n  ".join(problems)
            )
        if tied:
            state["lm_head.weight"] = state["wte.weight"]
        return state


_WORD_ALIAS = "backpack.word_embeddings.weight"
_POS_ALIAS = "backpack.position_embeddings.weight"
# GPT-2's causal-mask buffers, saved by transformers < 4.31; not weights.
_IGNORED_HF_KEY = re.compile(
    r"^backpack\.gpt2_model\.h\.\d+\.attn\.(bias|masked_bias)$"
)


def hf_key_for(key: str) -> str:
    """Name of a :class:`BackpackLM` key in ``BackpackGPT2LMHeadModel``.

    Arguments
    ---------
    key : str
        A key of :meth:`BackpackLM.state_dict`.

    Returns
    -------
    str
        The reference model's key.

    Example
    -------
    >>> hf_key_for("h.0.attn.c_attn.weight")
    'backpack.gpt2_model.h.0.attn.c_attn.weight'
    >>> hf_key_for("sense_weight_net.c_attn.bias")
    'backpack.sense_weight_net.c_attn.bias'
    """
    if key.startswith(("wte.", "wpe.", "h.", "ln_f.")):
        return "backpack.gpt2_model." + key
    if key.startswith(("sense_network.", "sense_weight_net.")):
        return "backpack." + key
    return key  # lm_head.weight


def is_conv1d_key(key: str) -> bool:
    """Whether the reference stores this weight as a GPT-2 ``Conv1D``.

    ``Conv1D`` keeps its weight as [in, out], the transpose of
    ``nn.Linear``. All GPT-2 and sense-network projections are ``Conv1D``;
    the weight network's ``c_attn`` and ``lm_head`` are ``nn.Linear``.

    Arguments
    ---------
    key : str
        A key of :meth:`BackpackLM.state_dict`.

    Returns
    -------
    bool

    Example
    -------
    >>> is_conv1d_key("sense_network.final_mlp.c_fc.weight")
    True
    >>> is_conv1d_key("sense_weight_net.c_attn.weight")
    False
    """
    if key.startswith("sense_weight_net."):
        return False
    return key.endswith(
        ("attn.c_attn.weight", "c_proj.weight", "mlp.c_fc.weight")
    )


def _allowed_mask(attention_mask):
    """``[B, T]`` real-token mask -> ``[B, 1, T, T]`` attendable pairs.

    Causal, no padded sources; every position may see itself so that rows
    of padded queries are never empty (an empty row is NaN after softmax).
    """
    T = attention_mask.shape[1]
    eye = torch.eye(T, dtype=torch.bool, device=attention_mask.device)
    causal = eye.new_ones(T, T).tril()
    return (causal & attention_mask[:, None, None, :]) | eye


def _load_weights(path, map_location):
    """Read one or sharded safetensors / torch weight files."""
    if path.is_file():
        files = [path]
    else:
        files = None
        for name in ("model.safetensors", "pytorch_model.bin"):
            index = path / f"{name}.index.json"
            if (path / name).is_file():
                files = [path / name]
                break
            if index.is_file():
                with open(index) as f:
                    shards = sorted(set(json.load(f)["weight_map"].values()))
                files = [path / s for s in shards]
                break
        if files is None:
            raise FileNotFoundError(
                f"no model.safetensors or pytorch_model.bin in {path}"
            )
    state = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(file, device=str(map_location)))
        else:
            state.update(
                torch.load(file, map_location=map_location, weights_only=True)
            )
    return state
