"""Encoding long recordings (talks, lectures) in overlapping windows.

A TED talk lasts 10-20 minutes: 30k-60k w2v-BERT frames, far beyond what
self-attention over the whole sequence fits in memory (and beyond the
utterance lengths the encoder was trained on). :class:`LongFormEncoder`
therefore encodes a talk window by window and stitches the frames back:

* **Windows** (:func:`long_form_windows`) of ``window`` frames start every
  ``stride`` frames; the last one is shifted left to end exactly at the
  last frame, so no window is a short tail and every window of a long
  talk has the same length. A talk no longer than ``window`` is one
  window: exactly the plain encoder.
* **Stitching rule**: consecutive windows overlap; the overlap is cut at
  its midpoint, ``(start of the next window + end of this one) // 2``, and
  each side keeps its own frames. Every output frame therefore comes from
  exactly one window (no duplicate, no gap) and, for evenly spaced windows,
  each window contributes its central ``stride`` frames, at least
  ``(window - stride) // 2`` frames away from its edges, where a window
  lacks context. The first window keeps from frame 0, the last one to the
  end.
* **Exact counts**: a talk of ``m`` input steps gives
  ``(m - receptive) // hop + 1`` encoded frames (``m`` for w2v-BERT 2.0 on
  its 50 Hz features), whatever the windows.

Windows are cut from the encoder's input of the whole talk, computed in
the DataLoader workers: w2v-BERT's fbank features
(:class:`speechbrain_sense.encoders.w2v_bert.W2VBertFeatures`), one input
frame per output frame, or XLS-R's normalised samples
(:class:`speechbrain_sense.encoders.xls_r.XLSRFeatures`), 320 samples per
output frame after a 400-sample receptive field. A window of output frames
``[s, e)`` reads the input steps ``[s * hop, (e - 1) * hop + receptive)``,
exactly those its frames see, so its frames line up with the whole talk's
and no frame straddles a cut. The talk is normalised as a whole (fbank
statistics, XLS-R sample statistics) before it is cut, as a plain encoding
of the whole talk would be.

The windows of a whole batch of talks are encoded ``chunk_batch_size`` at a
time, which bounds memory independently of the talk lengths. Then the
frame rate is lowered for the decoder: :func:`average_pool_frames` averages
groups of ``pool_factor`` frames (padding excluded, exact counts), and an
optional :class:`speechbrain_sense.tasks.downstream.LengthAdaptor` (strided
convolutions) shortens and projects further.

Authors
 * speechbrain-sense developers 2026
"""

import math

import torch
from torch import nn

from speechbrain_sense.encoders.w2v_bert import frame_mask

FRAME_RATE = 50  # w2v-BERT 2.0 encoder frames per second


def seconds_to_frames(seconds, frame_rate=FRAME_RATE):
    """Number of encoder frames in ``seconds`` (rounded).

    Arguments
    ---------
    seconds : float
        A duration.
    frame_rate : float
        Frames per second (w2v-BERT 2.0: 50).

    Returns
    -------
    int

    Example
    -------
    >>> seconds_to_frames(30.0), seconds_to_frames(0.5)
    (1500, 25)
    """
    return int(round(seconds * frame_rate))


def long_form_windows(num_frames, window, stride):
    """Windows of a sequence and the part of each that is kept.

    Arguments
    ---------
    num_frames : int
        Length of the sequence (at least 1).
    window : int
        Frames per window.
    stride : int
        Frames between window starts (``1 <= stride <= window``).

    Returns
    -------
    list of tuple
        ``(start, end, keep_start, keep_end)`` per window: the window is
        ``[start, end)`` and it supplies the output frames
        ``[keep_start, keep_end)``; the kept ranges tile ``[0, num_frames)``.

    Example
    -------
    >>> long_form_windows(10, 4, 3)
    [(0, 4, 0, 3), (3, 7, 3, 6), (6, 10, 6, 10)]
    >>> long_form_windows(11, 6, 4)
    [(0, 6, 0, 5), (4, 10, 5, 7), (5, 11, 7, 11)]
    >>> long_form_windows(5, 8, 4)
    [(0, 5, 0, 5)]
    """
    if window < 1 or not 1 <= stride <= window:
        raise ValueError(
            f"need 1 <= stride <= window, got window={window}, "
            f"stride={stride} (a stride above the window would skip frames)"
        )
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if num_frames <= window:
        return [(0, num_frames, 0, num_frames)]
    starts = list(range(0, num_frames - window, stride))
    # The last window ends exactly at the end of the sequence.
    starts.append(num_frames - window)
    bounds = [(start, start + window) for start in starts]
    windows = []
    keep_start = 0
    for i, (start, end) in enumerate(bounds):
        if i + 1 < len(bounds):
            # Cut the overlap with the next window at its midpoint.
            keep_end = (bounds[i + 1][0] + end) // 2
        else:
            keep_end = num_frames
        windows.append((start, end, keep_start, keep_end))
        keep_start = keep_end
    return windows


def input_span(start, end, hop=1, receptive_field=1):
    """The input steps that output frames ``[start, end)`` read.

    Arguments
    ---------
    start, end : int
        Output frames, end excluded.
    hop : int
        Input steps between consecutive output frames.
    receptive_field : int
        Input steps one output frame reads.

    Returns
    -------
    tuple
        ``(first, last)`` input steps, last excluded.

    Example
    -------
    >>> input_span(0, 3), input_span(2, 5, hop=320, receptive_field=400)
    ((0, 3), (640, 1680))
    """
    return start * hop, (end - 1) * hop + receptive_field


def output_frame_count(num_inputs, hop=1, receptive_field=1):
    """Output frames of ``num_inputs`` input steps (0 below one frame).

    Arguments
    ---------
    num_inputs : int
        Input steps (feature frames, or samples for XLS-R).
    hop : int
        Input steps between consecutive output frames.
    receptive_field : int
        Input steps one output frame reads.

    Returns
    -------
    int

    Example
    -------
    >>> output_frame_count(7), output_frame_count(16000, 320, 400)
    (7, 49)
    """
    if num_inputs < receptive_field:
        return 0
    return (num_inputs - receptive_field) // hop + 1


def num_long_form_windows(num_frames, window, stride):
    """How many windows :func:`long_form_windows` makes.

    Arguments
    ---------
    num_frames : int
        Sequence length.
    window : int
        Frames per window.
    stride : int
        Frames between window starts.

    Returns
    -------
    int

    Example
    -------
    >>> num_long_form_windows(1500 * 60, 1500, 1000)  # one hour at 50 Hz
    90
    """
    if num_frames <= window:
        return 1
    return math.ceil((num_frames - window) / stride) + 1


def average_pool_frames(frames, frame_counts, factor):
    """Averages groups of ``factor`` frames, ignoring padded frames.

    The last group of an utterance may be incomplete; it is the mean of
    its real frames only, so the result does not depend on padding.

    Arguments
    ---------
    frames : torch.Tensor
        ``[B, T, D]`` right-padded frames.
    frame_counts : torch.Tensor
        ``[B]`` real frames.
    factor : int
        Frames per group (1: unchanged).

    Returns
    -------
    frames : torch.Tensor
        ``[B, ceil(T / factor), D]``, zero past the new counts.
    frame_counts : torch.Tensor
        ``[B]`` ``ceil(count / factor)``.

    Example
    -------
    >>> x = torch.arange(5.0).view(1, 5, 1)
    >>> out, n = average_pool_frames(x, torch.tensor([5]), 2)
    >>> out.flatten().tolist(), n.tolist()
    ([0.5, 2.5, 4.0], [3])
    """
    counts = frame_counts.to(frames.device)
    if factor == 1:
        return frames, counts
    if factor < 1:
        raise ValueError(f"pool factor must be >= 1, got {factor}")
    batch, length, dim = frames.shape
    groups = math.ceil(length / factor)
    mask = frame_mask(counts, groups * factor).to(frames.dtype)  # [B, G*k]
    padded = nn.functional.pad(frames, (0, 0, 0, groups * factor - length))
    summed = (padded * mask.unsqueeze(-1)).view(batch, groups, factor, dim)
    real = mask.view(batch, groups, factor).sum(-1, keepdim=True)  # [B, G, 1]
    pooled = summed.sum(2) / real.clamp(min=1)  # [B, G, D]
    new_counts = torch.div(counts + factor - 1, factor, rounding_mode="floor")
    return pooled, new_counts


class LongFormEncoder(nn.Module):
    """Window-by-window frame encoding of long recordings + downsampling.

    Arguments
    ---------
    frame_encoder : nn.Module
        Called as ``frame_encoder(inputs [N, T, F], input_counts [N])`` and
        returning ``(frames [N, T', D], frame_counts)``
        (:class:`speechbrain_sense.tasks.downstream.SenseFrameEncoder`).
    window : int
        Window length in frames (:func:`seconds_to_frames` converts
        seconds).
    stride : int
        Hop between windows, in frames.
    chunk_batch_size : int
        Windows encoded in one call of ``frame_encoder`` (bounds memory).
    pool_factor : int
        Frames averaged into one after stitching (1: none).
    adaptor : nn.Module, optional
        Applied last as ``adaptor(frames, counts) -> (frames, counts)``
        (a :class:`speechbrain_sense.tasks.downstream.LengthAdaptor`).
    hop : int, optional
        Input steps between consecutive output frames (default: the frame
        encoder's ``input_hop``, else 1: w2v-BERT features).
    receptive_field : int, optional
        Input steps one output frame reads (default: the frame encoder's
        ``input_receptive_field``, else 1).

    Example
    -------
    >>> encoder = LongFormEncoder(
    ...     lambda x, n: (2 * x, n), window=4, stride=3, pool_factor=2
    ... )
    >>> features = torch.arange(10.0).view(1, 10, 1)
    >>> memory, counts = encoder(features, torch.tensor([10]))
    >>> memory.flatten().tolist(), counts.tolist()
    ([1.0, 5.0, 9.0, 13.0, 17.0], [5])
    """

    def __init__(
        self,
        frame_encoder,
        window,
        stride,
        chunk_batch_size=8,
        pool_factor=1,
        adaptor=None,
        hop=None,
        receptive_field=None,
    ):
        super().__init__()
        if isinstance(frame_encoder, nn.Module):
            self.frame_encoder = frame_encoder
        else:  # a plain function (tests, doctests)
            self._encode = frame_encoder
        for name, value in (("window", window), ("stride", stride)):
            if int(value) != value:
                raise ValueError(
                    f"{name} is a number of frames, got {value}; convert "
                    "seconds with seconds_to_frames"
                )
        self.window, self.stride = int(window), int(stride)
        long_form_windows(1, self.window, self.stride)  # validates
        if chunk_batch_size < 1:
            raise ValueError(
                f"chunk_batch_size must be >= 1: {chunk_batch_size}"
            )
        self.chunk_batch_size = chunk_batch_size
        self.pool_factor = pool_factor
        self.adaptor = adaptor
        # XLS-R reads 400 samples a frame, every 320: its windows are cut
        # from the waveform where its frames' receptive fields begin.
        if hop is None:
            hop = getattr(frame_encoder, "input_hop", 1)
        if receptive_field is None:
            receptive_field = getattr(frame_encoder, "input_receptive_field", 1)
        if not 1 <= hop <= receptive_field:
            raise ValueError(
                f"need 1 <= hop <= receptive_field, got {hop} and "
                f"{receptive_field}"
            )
        self.hop, self.receptive_field = int(hop), int(receptive_field)

    def encode_frames(self, features, frame_counts):
        """Encodes every talk window by window and stitches the frames.

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, F]`` right-padded encoder input (features, or XLS-R
            samples as ``[B, T, 1]``).
        frame_counts : torch.Tensor
            ``[B]`` real input steps per talk.

        Returns
        -------
        frames : torch.Tensor
            ``[B, T', D]`` (``T'`` the output frames of ``T`` steps), zero
            past the counts.
        frame_counts : torch.Tensor
            ``[B]`` real output frames.
        """
        encode = getattr(self, "frame_encoder", None)
        if encode is None:
            encode = self._encode
        hop, field = self.hop, self.receptive_field
        inputs = [int(n) for n in frame_counts.tolist()]
        counts = [output_frame_count(n, hop, field) for n in inputs]
        if min(counts) < 1:
            raise ValueError(
                f"every talk needs a frame, got {inputs} input steps "
                f"(one frame reads {field})"
            )
        # (talk, start, end, keep_start, keep_end) of every window.
        chunks = [
            (b, *bounds)
            for b, n in enumerate(counts)
            for bounds in long_form_windows(n, self.window, self.stride)
        ]
        output = None
        for first in range(0, len(chunks), self.chunk_batch_size):
            group = chunks[first : first + self.chunk_batch_size]
            spans = [input_span(s, e, hop, field) for _, s, e, _, _ in group]
            lengths = [hi - lo for lo, hi in spans]
            batch = features.new_zeros(
                len(group), max(lengths), features.shape[-1]
            )  # [N, W, F]
            for i, ((b, *_), (lo, hi)) in enumerate(zip(group, spans)):
                batch[i, : hi - lo] = features[b, lo:hi]
            chunk_counts = torch.tensor(lengths, device=features.device)
            frames, out_counts = encode(batch, chunk_counts)  # [N, W', D]
            expected = [end - start for _, start, end, _, _ in group]
            if out_counts.tolist() != expected:
                raise ValueError(
                    f"the frame encoder must return one frame per {hop} "
                    f"input step(s) after the first {field}; got "
                    f"{out_counts.tolist()} for {expected}"
                )
            if output is None:
                length = output_frame_count(features.shape[1], hop, field)
                output = frames.new_zeros(
                    features.shape[0], length, frames.shape[-1]
                )  # [B, T', D]
            for i, (b, start, _, keep_start, keep_end) in enumerate(group):
                output[b, keep_start:keep_end] = frames[
                    i, keep_start - start : keep_end - start
                ]
        return output, torch.tensor(counts, device=output.device)

    def forward(self, features, frame_counts):
        """Encoded, stitched and downsampled frames (the decoder's memory).

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, F]`` right-padded encoder input.
        frame_counts : torch.Tensor
            ``[B]`` real input steps per talk.

        Returns
        -------
        memory : torch.Tensor
            ``[B, T', D']``, zero past the counts.
        memory_counts : torch.Tensor
            ``[B]`` real memory frames.
        """
        frames, counts = self.encode_frames(features, frame_counts)
        frames, counts = average_pool_frames(frames, counts, self.pool_factor)
        if self.adaptor is not None:
            frames, counts = self.adaptor(frames, counts)
        return frames, counts
