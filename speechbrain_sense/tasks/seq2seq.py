"""Text decoders over speech frames, for translation and summarization.

The speech translation and summarization recipes put an autoregressive
text decoder on the (length-adapted) frames of a SENSE encoder. Two
decoders share one interface, so a recipe picks either with one ``!new:``
line in its yaml:

* :class:`TransformerTextDecoder`: a Transformer decoder trained from
  scratch (SpeechBrain's ``TransformerDecoder``) on a SentencePiece target
  vocabulary, decoded with SpeechBrain's beam searcher
  (:class:`TextDecoderBeamSearcher`, an ``S2SBeamSearcher``) or greedily.
* :class:`PretrainedTextDecoder`: the decoder of a pretrained HuggingFace
  sequence-to-sequence model (mBART-50, NLLB, BART...), whose
  cross-attention reads the projected speech frames in place of its text
  encoder's outputs, decoded with HuggingFace ``generate``.

The shared interface, with ``memory [B, S, D]`` the speech frames (zero
past ``memory_counts [B]``):

* ``encode_targets(texts) -> (targets [B, U], target_counts [B])``: token
  ids of the reference texts, ending with the end-of-sequence token;
* ``decoder_inputs(targets) -> [B, U]``: the teacher-forcing inputs (the
  targets shifted right behind the start token);
* ``forward(memory, memory_counts, decoder_inputs) -> [B, U, V]``
  log-probabilities;
* ``loss(memory, memory_counts, targets, target_counts) -> scalar``: the
  label-smoothed NLL per target token;
* ``decode(memory, memory_counts) -> list[str]``: beam search (or greedy)
  hypotheses, detokenised.

Under DDP, train through the wrapped module's ``forward`` (then
:func:`label_smoothed_nll`), not ``loss``: only ``forward`` calls
synchronise gradients. ``recipes/CoVoST2/ST/train.py`` shows the pattern.

Authors
 * speechbrain-sense developers 2026
"""

import math
from pathlib import Path

import torch
from speechbrain.decoders.seq2seq import S2SBeamSearcher, S2SGreedySearcher
from speechbrain.lobes.models.transformer.Transformer import (
    PositionalEncoding,
    TransformerDecoder,
)
from torch import nn

from speechbrain_sense.encoders.w2v_bert import frame_mask


def label_smoothed_nll(log_probs, targets, target_counts, label_smoothing=0.0):
    """Label-smoothed negative log-likelihood per real target token.

    With smoothing ``e`` the target distribution puts ``1 - e`` on the
    reference token and spreads ``e`` uniformly over the vocabulary
    (fairseq's and SpeechBrain's convention), so the loss is
    ``(1 - e) * NLL + e * mean_v(-log p_v)``. Padded positions (past
    ``target_counts``) do not count.

    Arguments
    ---------
    log_probs : torch.Tensor
        ``[B, U, V]`` log-probabilities.
    targets : torch.Tensor
        ``[B, U]`` reference token ids (any value past the counts).
    target_counts : torch.Tensor
        ``[B]`` real tokens per sequence.
    label_smoothing : float
        Probability mass spread over the vocabulary.

    Returns
    -------
    torch.Tensor
        Scalar: the mean over real tokens.

    Example
    -------
    >>> log_probs = torch.log(torch.tensor([[[0.5, 0.25, 0.25]] * 2]))
    >>> targets = torch.tensor([[0, 1]])
    >>> round(label_smoothed_nll(log_probs, targets, torch.tensor([1])).item(), 4)
    0.6931
    >>> value = label_smoothed_nll(log_probs, targets, torch.tensor([2]), 0.3)
    >>> expected = 0.7 * (math.log(2) + math.log(4)) / 2 + 0.3 * (
    ...     math.log(2) + 2 * math.log(4)
    ... ) / 3
    >>> abs(value.item() - expected) < 1e-6
    True
    """
    mask = frame_mask(target_counts.to(log_probs.device), targets.shape[1])
    log_probs = log_probs.float()
    safe_targets = targets.masked_fill(~mask, 0).unsqueeze(-1)
    nll = -log_probs.gather(-1, safe_targets).squeeze(-1)  # [B, U]
    if label_smoothing > 0:
        uniform = -log_probs.mean(dim=-1)  # [B, U]
        nll = (1 - label_smoothing) * nll + label_smoothing * uniform
    return (nll * mask).sum() / mask.sum().clamp(min=1)


def _check_counts(memory, memory_counts):
    """Raises when a sequence has no frame to attend to (NaN attention)."""
    if memory_counts.numel() and int(memory_counts.min()) < 1:
        raise ValueError(
            "every memory sequence needs at least one frame, got counts "
            f"{memory_counts.tolist()}"
        )
    if memory_counts.numel() and int(memory_counts.max()) > memory.shape[1]:
        raise ValueError(
            f"memory_counts {memory_counts.tolist()} exceed the "
            f"{memory.shape[1]} memory frames"
        )


class SpeechTextDecoder(nn.Module):
    """What the recipes call on a text decoder over speech frames.

    Subclasses implement ``forward(memory, memory_counts, decoder_inputs)``
    (log-probabilities ``[B, U, V]``), ``encode_targets``,
    ``decoder_inputs``, ``decode_ids`` and ``detokenize``; the loss and
    text decoding are the same for all of them.
    """

    def loss(self, memory, memory_counts, targets, target_counts):
        """Label-smoothed NLL of the targets under teacher forcing.

        Arguments
        ---------
        memory : torch.Tensor
            ``[B, S, memory_dim]``.
        memory_counts : torch.Tensor
            ``[B]``.
        targets : torch.Tensor
            ``[B, U]`` from ``encode_targets``.
        target_counts : torch.Tensor
            ``[B]``.

        Returns
        -------
        torch.Tensor
            Scalar loss per real target token.
        """
        targets = targets.to(memory.device)
        log_probs = self(memory, memory_counts, self.decoder_inputs(targets))
        return label_smoothed_nll(
            log_probs, targets, target_counts, self.label_smoothing
        )

    def decode(self, memory, memory_counts, beam_size=None, greedy=None):
        """Detokenised hypotheses.

        Arguments
        ---------
        memory : torch.Tensor
            ``[B, S, memory_dim]``.
        memory_counts : torch.Tensor
            ``[B]``.
        beam_size : int, optional
            Overrides the decoder's ``beam_size``.
        greedy : bool, optional
            Overrides the decoder's ``greedy``.

        Returns
        -------
        list of str
        """
        hyps = self.decode_ids(memory, memory_counts, beam_size, greedy)
        return self.detokenize(hyps)


class TransformerTextDecoder(SpeechTextDecoder):
    """A Transformer text decoder attending to speech frames.

    Pre-LayerNorm SpeechBrain ``TransformerDecoder`` layers with a causal
    self-attention mask and a cross-attention key-padding mask built from
    the frame counts, so an utterance's outputs do not depend on the
    batch it is decoded in. Token ids follow the SentencePiece model
    trained by the recipes: ``pad=0, bos=1, eos=2, unk=3``.

    Arguments
    ---------
    vocab_size : int
        Output vocabulary (the SentencePiece model's size).
    memory_dim : int
        Width of the speech frames (projected to ``d_model`` if different).
    d_model : int
        Decoder width.
    nhead : int
        Attention heads.
    num_layers : int
        Decoder layers.
    d_ffn : int
        Feed-forward width.
    dropout : float
        Dropout inside the layers and on the embeddings.
    tokenizer : str or Path or sentencepiece.SentencePieceProcessor, optional
        The target SentencePiece model, or the path of its ``.model`` file
        (read when first needed: the recipe trains it after the
        hyperparameters load). Needed by ``encode_targets`` and
        ``decode`` only.
    bos_index : int
        Start-of-sequence id (first decoder input).
    eos_index : int
        End-of-sequence id.
    pad_index : int
        Padding id of ``encode_targets``.
    tie_embeddings : bool
        Share the input embedding and output projection weights.
    label_smoothing : float
        Used by ``loss``.
    beam_size : int
        Beam width of ``decode``.
    greedy : bool
        Decode greedily (``S2SGreedySearcher``) instead of beam search.
    max_decode_ratio : float, optional
        At most ``max_decode_ratio * S`` tokens for ``S`` memory frames.
        SpeechBrain's searchers take ``S`` as the *padded* length of the
        batch, so a ratio makes hypotheses depend on their batch; the
        default (``None``) applies ``max_decode_steps`` only.
    max_decode_steps : int
        Cap on the hypothesis length.
    length_normalization : bool
        Rank finished beams by mean rather than total log-probability.
    max_positions : int
        Size of the sinusoidal position table (longest target).

    Example
    -------
    >>> decoder = TransformerTextDecoder(
    ...     vocab_size=12, memory_dim=6, d_model=8, nhead=2, num_layers=1,
    ...     d_ffn=16, beam_size=2, max_decode_steps=5,
    ... )
    >>> memory, counts = torch.randn(2, 7, 6), torch.tensor([7, 3])
    >>> log_probs = decoder(memory, counts, torch.tensor([[1, 5], [1, 6]]))
    >>> log_probs.shape
    torch.Size([2, 2, 12])
    >>> loss = decoder.loss(
    ...     memory, counts, torch.tensor([[5, 2], [2, 0]]), torch.tensor([2, 1])
    ... )
    >>> bool(loss > 0)
    True
    >>> hyps = decoder.decode_ids(memory, counts)
    >>> len(hyps), all(len(h) <= 5 for h in hyps)
    (2, True)
    """

    def __init__(
        self,
        vocab_size,
        memory_dim,
        d_model=256,
        nhead=4,
        num_layers=6,
        d_ffn=1024,
        dropout=0.1,
        tokenizer=None,
        bos_index=1,
        eos_index=2,
        pad_index=0,
        tie_embeddings=True,
        label_smoothing=0.1,
        beam_size=5,
        greedy=False,
        max_decode_ratio=None,
        max_decode_steps=200,
        length_normalization=True,
        max_positions=2500,
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.bos_index = bos_index
        self.eos_index = eos_index
        self.pad_index = pad_index
        self.label_smoothing = label_smoothing
        self.beam_size = beam_size
        self.greedy = greedy
        self.max_decode_ratio = max_decode_ratio
        self.max_decode_steps = max_decode_steps
        self.length_normalization = length_normalization
        self._tokenizer = tokenizer
        self.memory_projection = (
            nn.Linear(memory_dim, d_model)
            if memory_dim != d_model
            else nn.Identity()
        )
        self.embedding = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embedding.weight, std=d_model**-0.5)
        self.positional_encoding = PositionalEncoding(d_model, max_positions)
        self.dropout = nn.Dropout(dropout)
        self.decoder = TransformerDecoder(
            num_layers=num_layers,
            nhead=nhead,
            d_ffn=d_ffn,
            d_model=d_model,
            dropout=dropout,
            activation=nn.GELU,
            normalize_before=True,
        )
        self.output_projection = nn.Linear(d_model, vocab_size)
        if tie_embeddings:
            self.output_projection.weight = self.embedding.weight

    # ------------------------------------------------------------ text side
    @property
    def tokenizer(self):
        """The SentencePiece processor (loaded from its file on first use)."""
        if self._tokenizer is None:
            raise ValueError(
                "TransformerTextDecoder has no tokenizer: pass tokenizer= "
                "(a SentencePiece .model file or processor)"
            )
        if isinstance(self._tokenizer, (str, Path)):
            import sentencepiece as spm

            path = Path(self._tokenizer)
            if not path.is_file():
                raise FileNotFoundError(f"SentencePiece model {path} not found")
            self._tokenizer = spm.SentencePieceProcessor(model_file=str(path))
            self._tokenizer_source = path
        if self._tokenizer.get_piece_size() != self.vocab_size:
            source = getattr(self, "_tokenizer_source", "the tokenizer")
            raise ValueError(
                f"{source} has {self._tokenizer.get_piece_size()} pieces but "
                f"the decoder was built for vocab_size={self.vocab_size}"
            )
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value):
        """Set the tokenizer: a SentencePiece processor or its ``.model`` path.

        A path is loaded, and the vocabulary size checked, on first use.

        Arguments
        ---------
        value : str or Path or sentencepiece.SentencePieceProcessor or None
            The tokenizer; None leaves the decoder without one.
        """
        self._tokenizer = value

    def encode_targets(self, texts):
        """Token ids of reference texts, each ending with ``eos``.

        Arguments
        ---------
        texts : list of str
            Reference texts.

        Returns
        -------
        targets : torch.Tensor
            ``[B, U]`` ids, ``pad_index`` past the counts.
        target_counts : torch.Tensor
            ``[B]`` real tokens (text + eos).
        """
        ids = [
            list(piece_ids) + [self.eos_index]
            for piece_ids in self.tokenizer.encode(list(texts))
        ]
        counts = torch.tensor([len(x) for x in ids])
        targets = torch.full(
            (len(ids), int(counts.max()) if ids else 0), self.pad_index
        )
        for i, row in enumerate(ids):
            targets[i, : len(row)] = torch.tensor(row)
        return targets, counts

    def decoder_inputs(self, targets):
        """Teacher-forcing inputs: ``bos`` then the targets minus the last.

        Arguments
        ---------
        targets : torch.Tensor
            ``[B, U]`` from ``encode_targets``.

        Returns
        -------
        torch.Tensor
            ``[B, U]``.
        """
        bos = targets.new_full((targets.shape[0], 1), self.bos_index)
        return torch.cat([bos, targets[:, :-1]], dim=1)

    # ----------------------------------------------------------- model side
    def forward(self, memory, memory_counts, decoder_inputs):
        """Teacher-forced log-probabilities.

        Arguments
        ---------
        memory : torch.Tensor
            ``[B, S, memory_dim]`` speech frames.
        memory_counts : torch.Tensor
            ``[B]`` real frames.
        decoder_inputs : torch.Tensor
            ``[B, U]`` token ids starting with ``bos``.

        Returns
        -------
        torch.Tensor
            ``[B, U, V]`` log-probabilities of the next token.
        """
        _check_counts(memory, memory_counts)
        memory = self.memory_projection(memory)  # [B, S, d_model]
        # True = a padded frame no query may attend to.
        memory_padding = ~frame_mask(
            memory_counts.to(memory.device), memory.shape[1]
        )
        length = decoder_inputs.shape[1]
        # True above the diagonal: step u never sees the inputs after u.
        # No target key-padding mask is needed: right padding only ever
        # sits in the future of a real position.
        causal = torch.ones(
            length, length, dtype=torch.bool, device=memory.device
        ).triu(1)
        x = self.embedding(decoder_inputs) * math.sqrt(self.d_model)
        x = self.dropout(x + self.positional_encoding(x).to(x.dtype))
        x, _, _ = self.decoder(
            x,
            memory,
            tgt_mask=causal,
            memory_key_padding_mask=memory_padding,
        )  # [B, U, d_model]
        logits = self.output_projection(x)  # [B, U, V]
        return torch.log_softmax(logits.float(), dim=-1)

    def next_token_log_probs(self, prefixes, memory, memory_counts):
        """Log-probabilities of the token after each prefix.

        Arguments
        ---------
        prefixes : torch.Tensor
            ``[N, u]`` token ids starting with ``bos``.
        memory : torch.Tensor
            ``[N, S, memory_dim]``.
        memory_counts : torch.Tensor
            ``[N]``.

        Returns
        -------
        torch.Tensor
            ``[N, V]``.
        """
        return self(memory, memory_counts, prefixes)[:, -1]

    def searcher(self, beam_size=None, greedy=None):
        """A SpeechBrain searcher over this decoder.

        Arguments
        ---------
        beam_size : int, optional
            Overrides the decoder's ``beam_size``.
        greedy : bool, optional
            Overrides the decoder's ``greedy``.

        Returns
        -------
        TextDecoderBeamSearcher or TextDecoderGreedySearcher
        """
        greedy = self.greedy if greedy is None else greedy
        options = {
            "step_fn": self.next_token_log_probs,
            "vocab_size": self.vocab_size,
            "max_decode_steps": self.max_decode_steps,
            "bos_index": self.bos_index,
            "eos_index": self.eos_index,
            "min_decode_ratio": 0.0,
            # With S >= 1 frames, a ratio of max_decode_steps never binds
            # before the cap does.
            "max_decode_ratio": self.max_decode_ratio or self.max_decode_steps,
        }
        if greedy:
            return TextDecoderGreedySearcher(**options)
        return TextDecoderBeamSearcher(
            beam_size=beam_size or self.beam_size,
            length_normalization=self.length_normalization,
            using_eos_threshold=False,
            **options,
        )

    @torch.no_grad()
    def decode_ids(self, memory, memory_counts, beam_size=None, greedy=None):
        """Hypotheses as token ids (no ``bos``/``eos``).

        Arguments
        ---------
        memory : torch.Tensor
            ``[B, S, memory_dim]``.
        memory_counts : torch.Tensor
            ``[B]``.
        beam_size : int, optional
            Overrides the decoder's ``beam_size``.
        greedy : bool, optional
            Overrides the decoder's ``greedy``.

        Returns
        -------
        list of list of int
        """
        _check_counts(memory, memory_counts)
        counts = memory_counts.to(memory.device)
        # SpeechBrain searchers take lengths relative to the padded length
        # and round them back to frames.
        relative = counts.float() / memory.shape[1]
        hyps, *_ = self.searcher(beam_size, greedy)(memory, relative)
        return [[int(t) for t in hyp] for hyp in hyps]

    def detokenize(self, hyps):
        """Token id sequences to text (SentencePiece).

        Arguments
        ---------
        hyps : list of list of int
            Hypotheses from :meth:`decode_ids`.

        Returns
        -------
        list of str
        """
        return [self.tokenizer.decode(hyp) for hyp in hyps]


def _append_token(inp_tokens, prefixes):
    """``[N, u] + [N] -> [N, u + 1]``; the first call starts the prefixes."""
    inp_tokens = inp_tokens.unsqueeze(1)
    if prefixes is None:
        return inp_tokens
    return torch.cat([prefixes, inp_tokens], dim=-1)


class TextDecoderBeamSearcher(S2SBeamSearcher):
    """SpeechBrain beam search over a next-token function.

    The search memory is the token prefix of every beam; each step
    re-runs the decoder on the prefixes (no key/value cache: simple, and
    cheap for sentence-length outputs).

    Arguments
    ---------
    step_fn : callable
        ``(prefixes [N, u], memory [N, S, D], memory_counts [N]) ->
        log-probs [N, V]``.
    vocab_size : int
        ``V``.
    max_decode_steps : int, optional
        Absolute cap on the number of decoding steps, on top of
        ``max_decode_ratio``.
    **kwargs
        ``S2SBeamSearcher`` arguments (``bos_index``, ``eos_index``,
        ``min_decode_ratio``, ``max_decode_ratio``, ``beam_size``...).
    """

    def __init__(self, step_fn, vocab_size, max_decode_steps=None, **kwargs):
        super().__init__(**kwargs)
        self.step_fn = step_fn
        self.vocab_size = vocab_size
        self.max_steps_cap = max_decode_steps

    def set_n_out(self):
        """Size of the output layer the searcher scores, the vocabulary.

        Returns
        -------
        int
            ``vocab_size``.
        """
        return self.vocab_size

    def change_max_decoding_length(self, min_decode_steps, max_decode_steps):
        """Applies the absolute cap, plus one step for the final ``eos``.

        ``S2SBeamSearcher`` ends a hypothesis still alive after the last
        step by overwriting that step's token with ``eos``; one extra step
        lets a capped hypothesis keep ``max_decode_steps`` tokens, as a
        capped greedy hypothesis does.

        Arguments
        ---------
        min_decode_steps : int
            Fewest steps, from ``min_decode_ratio``.
        max_decode_steps : int
            Most steps, from ``max_decode_ratio``.

        Returns
        -------
        min_decode_steps : int
            Unchanged.
        max_decode_steps : int
            The capped maximum (at least 1), plus one.
        """
        if self.max_steps_cap is not None:
            max_decode_steps = min(max_decode_steps, self.max_steps_cap)
        return min_decode_steps, max(max_decode_steps, 1) + 1

    def reset_mem(self, batch_size, device):
        """Start the search memory as None: no prefix before the first step.

        Arguments
        ---------
        batch_size : int
            Number of hypotheses searched (unused).
        device : torch.device
            Device of the search (unused).
        """
        return None

    def permute_mem(self, memory, index):
        """Reorders the prefixes to follow the surviving beams.

        Arguments
        ---------
        memory : torch.Tensor
            Token prefixes of the beams, [N, u].
        index : torch.Tensor
            Row of ``memory`` each surviving beam comes from, [N].

        Returns
        -------
        torch.Tensor
            The reordered prefixes, [N, u].
        """
        return torch.index_select(memory, dim=0, index=index)

    def forward_step(self, inp_tokens, memory, enc_states, enc_lens):
        """One decoding step: ``(log-probs [N, V], prefixes, no attention)``.

        Arguments
        ---------
        inp_tokens : torch.Tensor
            Token chosen by each beam at the previous step, [N].
        memory : torch.Tensor or None
            Token prefixes so far, [N, u]; None at the first step.
        enc_states : torch.Tensor
            Speech memory, [N, S, D].
        enc_lens : torch.Tensor
            Valid frames of each row of ``enc_states``, [N].

        Returns
        -------
        log_probs : torch.Tensor
            Next-token log-probabilities, [N, V].
        prefixes : torch.Tensor
            The prefixes with ``inp_tokens`` appended, [N, u + 1].
        attention : None
            No attention weights are returned.
        """
        prefixes = _append_token(inp_tokens, memory)
        return self.step_fn(prefixes, enc_states, enc_lens), prefixes, None


class TextDecoderGreedySearcher(S2SGreedySearcher):
    """SpeechBrain greedy search over a next-token function.

    Arguments
    ---------
    step_fn : callable
        ``(prefixes [N, u], memory [N, S, D], memory_counts [N]) ->
        log-probs [N, V]``.
    vocab_size : int
        ``V``.
    max_decode_steps : int, optional
        Absolute cap on the number of decoding steps.
    **kwargs
        ``S2SGreedySearcher`` arguments (``bos_index``, ``eos_index``,
        ``min_decode_ratio``, ``max_decode_ratio``).
    """

    def __init__(self, step_fn, vocab_size, max_decode_steps=None, **kwargs):
        super().__init__(**kwargs)
        self.step_fn = step_fn
        self.vocab_size = vocab_size
        self.max_steps_cap = max_decode_steps
        self.temperature = 0.0  # argmax

    def set_n_out(self):
        """Size of the output layer the searcher scores, the vocabulary.

        Returns
        -------
        int
            ``vocab_size``.
        """
        return self.vocab_size

    def change_max_decoding_length(self, min_decode_steps, max_decode_steps):
        """Applies the absolute cap, keeping at least one step.

        Arguments
        ---------
        min_decode_steps : int
            Fewest steps, from ``min_decode_ratio``.
        max_decode_steps : int
            Most steps, from ``max_decode_ratio``.

        Returns
        -------
        min_decode_steps : int
            Unchanged.
        max_decode_steps : int
            The capped maximum, at least 1.
        """
        if self.max_steps_cap is not None:
            max_decode_steps = min(max_decode_steps, self.max_steps_cap)
        return min_decode_steps, max(max_decode_steps, 1)

    def reset_mem(self, batch_size, device):
        """Start the search memory as None: no prefix before the first step.

        Arguments
        ---------
        batch_size : int
            Number of hypotheses searched (unused).
        device : torch.device
            Device of the search (unused).
        """
        return None

    def forward_step(
        self, inp_tokens, memory, enc_states, enc_lens, attention_mask=None
    ):
        """One decoding step: ``(log-probs [N, V], prefixes, no attention)``.

        Arguments
        ---------
        inp_tokens : torch.Tensor
            Token chosen for each hypothesis at the previous step, [N].
        memory : torch.Tensor or None
            Token prefixes so far, [N, u]; None at the first step.
        enc_states : torch.Tensor
            Speech memory, [N, S, D].
        enc_lens : torch.Tensor
            Valid frames of each row of ``enc_states``, [N].
        attention_mask : torch.Tensor, optional
            Passed by ``S2SGreedySearcher``; unused (``enc_lens`` masks).

        Returns
        -------
        log_probs : torch.Tensor
            Next-token log-probabilities, [N, V].
        prefixes : torch.Tensor
            The prefixes with ``inp_tokens`` appended, [N, u + 1].
        attention : None
            No attention weights are returned.
        """
        prefixes = _append_token(inp_tokens, memory)
        return self.step_fn(prefixes, enc_states, enc_lens), prefixes, None


class _NoTextEncoder(nn.Module):
    """Stands in for a dropped text encoder: speech frames replace it."""

    def forward(self, *args, **kwargs):
        """Never called: the decoder always gets ``encoder_outputs``."""
        raise RuntimeError(
            "the text encoder of this PretrainedTextDecoder was dropped: "
            "pass speech frames as encoder_outputs"
        )


class PretrainedTextDecoder(SpeechTextDecoder):
    """The decoder of a pretrained HuggingFace seq2seq model over speech.

    The speech frames are projected to the model width and passed as
    ``encoder_outputs`` (with an ``attention_mask`` from the counts), so the
    pretrained decoder cross-attends to speech instead of text. The text
    encoder is dropped by default (it is never run, and is most of the
    model's memory). Targets are tokenised as the model's own labels
    (mBART-50 and NLLB put the target language code first), and
    ``generate`` forces that language code as the first token when the
    tokenizer knows ``target_language``.

    Arguments
    ---------
    source : str
        Hub id or local directory of an ``AutoModelForSeq2SeqLM`` and its
        tokenizer (``facebook/mbart-large-50``,
        ``facebook/nllb-200-distilled-600M``, ``facebook/bart-base``...).
    memory_dim : int
        Width of the speech frames.
    target_language : str, optional
        Target language code of the tokenizer (``en_XX`` for mBART-50,
        ``eng_Latn`` for NLLB); ``None`` for monolingual models.
    label_smoothing : float
        Used by ``loss``.
    beam_size : int
        ``num_beams`` of ``generate``.
    greedy : bool
        Decode with one beam.
    max_new_tokens : int
        Longest hypothesis.
    length_penalty : float
        ``generate``'s length penalty.
    freeze : bool
        Keep the pretrained decoder fixed (only the projection trains).
    drop_text_encoder : bool
        Remove the unused text encoder's layers.
    cache_dir : str, optional
        HuggingFace cache directory.

    Example
    -------
    See ``tests/unittests/test_seq2seq.py`` (a tiny random mBART-50).
    """

    def __init__(
        self,
        source,
        memory_dim,
        target_language=None,
        label_smoothing=0.1,
        beam_size=5,
        greedy=False,
        max_new_tokens=200,
        length_penalty=1.0,
        freeze=False,
        drop_text_encoder=True,
        cache_dir=None,
    ):
        super().__init__()
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model = AutoModelForSeq2SeqLM.from_pretrained(
            source, cache_dir=cache_dir
        )
        self.tokenizer = AutoTokenizer.from_pretrained(
            source, cache_dir=cache_dir
        )
        self.target_language = target_language
        self.forced_bos_token_id = None
        if target_language is not None:
            token_id = self.tokenizer.convert_tokens_to_ids(target_language)
            if token_id is None or token_id == self.tokenizer.unk_token_id:
                raise ValueError(
                    f"{source}: the tokenizer has no language code "
                    f"{target_language!r}"
                )
            if hasattr(self.tokenizer, "tgt_lang"):
                self.tokenizer.tgt_lang = target_language
            self.forced_bos_token_id = token_id
        if drop_text_encoder:
            text_encoder = self.model.get_encoder()
            text_encoder.layers = nn.ModuleList()
            text_encoder.forward = _NoTextEncoder().forward
            # What is left of it (position table, norms) is never used:
            # fixed, so DDP does not wait for its gradients. The token
            # embedding is the decoder's too and stays trainable.
            shared = self.model.get_input_embeddings().weight
            for param in text_encoder.parameters():
                if param is not shared:
                    param.requires_grad = False
        if freeze:
            for param in self.model.parameters():
                param.requires_grad = False
        self.label_smoothing = label_smoothing
        self.beam_size = beam_size
        self.greedy = greedy
        self.max_new_tokens = max_new_tokens
        self.length_penalty = length_penalty
        d_model = self.model.config.d_model
        self.memory_projection = nn.Sequential(
            nn.Linear(memory_dim, d_model), nn.LayerNorm(d_model)
        )

    @property
    def vocab_size(self):
        """Output vocabulary size."""
        return self.model.config.vocab_size

    def encode_targets(self, texts):
        """The model's labels for reference texts (ending with ``eos``).

        Arguments
        ---------
        texts : list of str
            Reference texts.

        Returns
        -------
        targets : torch.Tensor
            ``[B, U]`` ids, the pad id past the counts.
        target_counts : torch.Tensor
            ``[B]``.
        """
        encoded = self.tokenizer(
            text_target=list(texts), padding=True, return_tensors="pt"
        )
        return encoded["input_ids"], encoded["attention_mask"].sum(dim=1)

    def decoder_inputs(self, targets):
        """The model's own right shift of its labels.

        Arguments
        ---------
        targets : torch.Tensor
            ``[B, U]`` from ``encode_targets``.

        Returns
        -------
        torch.Tensor
            ``[B, U]``.
        """
        return self.model.prepare_decoder_input_ids_from_labels(labels=targets)

    def _encoder_outputs(self, memory, memory_counts):
        """Projected frames and their attention mask."""
        from transformers.modeling_outputs import BaseModelOutput

        _check_counts(memory, memory_counts)
        hidden = self.memory_projection(memory)  # [B, S, d_model]
        mask = frame_mask(memory_counts.to(memory.device), memory.shape[1])
        return BaseModelOutput(last_hidden_state=hidden), mask.long()

    def forward(self, memory, memory_counts, decoder_inputs):
        """Teacher-forced log-probabilities.

        Arguments
        ---------
        memory : torch.Tensor
            ``[B, S, memory_dim]``.
        memory_counts : torch.Tensor
            ``[B]``.
        decoder_inputs : torch.Tensor
            ``[B, U]`` from ``decoder_inputs``.

        Returns
        -------
        torch.Tensor
            ``[B, U, V]``.
        """
        encoder_outputs, mask = self._encoder_outputs(memory, memory_counts)
        out = self.model(
            encoder_outputs=encoder_outputs,
            attention_mask=mask,
            decoder_input_ids=decoder_inputs.to(memory.device),
            use_cache=False,
        )
        return torch.log_softmax(out.logits.float(), dim=-1)

    @torch.no_grad()
    def decode_ids(self, memory, memory_counts, beam_size=None, greedy=None):
        """Hypotheses as token ids, from HuggingFace ``generate``.

        Arguments
        ---------
        memory : torch.Tensor
            ``[B, S, memory_dim]``.
        memory_counts : torch.Tensor
            ``[B]``.
        beam_size : int, optional
            Overrides the decoder's ``beam_size``.
        greedy : bool, optional
            Overrides the decoder's ``greedy``.

        Returns
        -------
        list of list of int
            With the model's special tokens (decoder start, language code,
            ``eos``, padding).
        """
        greedy = self.greedy if greedy is None else greedy
        encoder_outputs, mask = self._encoder_outputs(memory, memory_counts)
        options = {}
        if self.forced_bos_token_id is not None:
            options["forced_bos_token_id"] = self.forced_bos_token_id
        generated = self.model.generate(
            encoder_outputs=encoder_outputs,
            attention_mask=mask,
            num_beams=1 if greedy else (beam_size or self.beam_size),
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            length_penalty=self.length_penalty,
            **options,
        )
        return generated.tolist()

    def detokenize(self, hyps):
        """Token id sequences to text (special tokens dropped).

        Arguments
        ---------
        hyps : list of list of int
            Hypotheses from :meth:`decode_ids`.

        Returns
        -------
        list of str
        """
        return self.tokenizer.batch_decode(hyps, skip_special_tokens=True)
