"""Cutting long recordings into the passages a search returns.

A search hit is a stretch of a recording, not a whole file: a one-hour
meeting holds hundreds of topics. Passages are built from speech activity
(:func:`speechbrain_sense.data.vad.speech_segments`, Silero VAD):

* consecutive speech segments are merged while the pause between them is
  at most ``max_gap`` seconds and the merged passage stays within
  ``max_passage`` seconds, so a passage is about one sentence or a few
  short ones, the unit the encoder was trained on (Common Voice clips);
* a segment longer than ``max_passage`` (a monologue without pauses) is
  cut into windows of ``max_passage`` seconds every ``max_passage -
  overlap`` seconds, the last one ending at the segment's end
  (:func:`speechbrain_sense.encoders.long_form.long_form_windows`' rule), so that
  a sentence straddling a cut is whole in one of the two windows;
* without VAD (``fixed_spans``), the whole recording is windowed the same
  way.

Authors
 * speechbrain-sense developers 2026
"""

from speechbrain_sense.encoders.long_form import long_form_windows

# Passage bounds are computed on a 10 ms grid (the VAD's resolution is
# 32 ms), which keeps window arithmetic in integers.
_GRID = 100


def window_spans(start, end, window, overlap):
    """Windows of ``window`` seconds covering ``[start, end]``.

    Arguments
    ---------
    start : float
        Start of the stretch, seconds.
    end : float
        End of the stretch, seconds.
    window : float
        Seconds per window.
    overlap : float
        Seconds shared by consecutive windows (``0 <= overlap < window``).

    Returns
    -------
    list of (float, float)
        ``(start, end)`` per window; one window when the stretch is no
        longer than ``window``.

    Example
    -------
    >>> window_spans(0.0, 25.0, window=10.0, overlap=2.0)
    [(0.0, 10.0), (8.0, 18.0), (15.0, 25.0)]
    """
    if not 0 <= overlap < window:
        raise ValueError(
            f"need 0 <= overlap < window, got overlap={overlap}, "
            f"window={window}"
        )
    first = int(round(start * _GRID))
    length = max(1, int(round(end * _GRID)) - first)
    size = int(round(window * _GRID))
    stride = size - int(round(overlap * _GRID))
    return [
        ((first + lo) / _GRID, (first + hi) / _GRID)
        for lo, hi, _, _ in long_form_windows(length, size, stride)
    ]


def passage_spans(segments, max_passage=15.0, max_gap=1.0, overlap=2.0):
    """Passages from speech segments: merge short ones, window long ones.

    Arguments
    ---------
    segments : list of (float, float)
        Speech segments in seconds, in order (e.g. from the VAD).
    max_passage : float
        Longest passage, seconds.
    max_gap : float
        Longest pause kept inside a passage, seconds.
    overlap : float
        Overlap of the windows a long segment is cut into, seconds.

    Returns
    -------
    list of (float, float)
        ``(start, end)`` per passage, in order.

    Example
    -------
    >>> passage_spans([(0.0, 2.0), (2.5, 4.0), (9.0, 10.0)], max_passage=6)
    [(0.0, 4.0), (9.0, 10.0)]
    >>> passage_spans([(1.0, 14.0)], max_passage=6.0, overlap=1.0)
    [(1.0, 7.0), (6.0, 12.0), (8.0, 14.0)]
    """
    passages = []
    current = None
    for start, end in segments:
        if end <= start:
            continue
        if (
            current is not None
            and start - current[1] <= max_gap
            and end - current[0] <= max_passage
        ):
            current = (current[0], end)
            continue
        if current is not None:
            passages.append(current)
        current = (start, end)
        if end - start > max_passage:
            passages.extend(window_spans(start, end, max_passage, overlap))
            current = None
    if current is not None:
        passages.append(current)
    return passages


def fixed_spans(duration, window=15.0, overlap=2.0):
    """Passages that window a whole recording, speech or not.

    Arguments
    ---------
    duration : float
        Seconds of audio.
    window : float
        Seconds per passage.
    overlap : float
        Seconds shared by consecutive passages.

    Returns
    -------
    list of (float, float)

    Example
    -------
    >>> fixed_spans(4.0, window=15.0)
    [(0.0, 4.0)]
    """
    if duration <= 0:
        return []
    return window_spans(0.0, duration, window, overlap)
