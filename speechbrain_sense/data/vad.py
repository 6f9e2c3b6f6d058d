"""Speech activity from Silero VAD, on encoder frames.

The attention analysis (:mod:`speechbrain_sense.tasks.attention`) asks how much
pooling weight falls on frames where nobody speaks. Silero VAD (the
``silero-vad`` package, whose weights ship inside it, so it runs offline)
finds the speech segments of a 16 kHz waveform; :func:`frame_speech_mask`
turns segments into one flag per w2v-BERT frame (a frame counts as speech
when its centre lies in a segment).

Authors
 * speechbrain-sense developers 2026
"""

import threading

import torch

from speechbrain_sense.encoders.inference import frame_times

_PER_THREAD = threading.local()


def _silero_model():
    """This thread's Silero VAD model, keeping torch's thread count.

    The model is stateful (its recurrent state runs across the windows of
    a waveform), so threads that cut files in parallel (the search
    indexer) each get their own copy.
    """
    model = getattr(_PER_THREAD, "model", None)
    if model is not None:
        return model
    try:
        threads = torch.get_num_threads()
        # silero_vad sets torch to one thread when imported: undo that.
        from silero_vad import load_silero_vad

        torch.set_num_threads(threads)
    except ImportError as error:
        raise ImportError(
            "speech activity needs the silero-vad package "
            "(pip install silero-vad); its model ships inside it"
        ) from error
    _PER_THREAD.model = load_silero_vad()
    return _PER_THREAD.model


def speech_segments(
    waveform,
    sample_rate=16000,
    threshold=0.5,
    min_speech_ms=250,
    min_silence_ms=100,
    pad_ms=30,
):
    """Speech segments of a waveform, in seconds, by Silero VAD.

    Arguments
    ---------
    waveform : torch.Tensor
        ``[time]`` mono samples at ``sample_rate`` (8 or 16 kHz).
    sample_rate : int
        Rate of ``waveform``.
    threshold : float
        Speech probability above which a window is speech.
    min_speech_ms : int
        Shorter speech bursts are dropped.
    min_silence_ms : int
        Shorter pauses do not split a segment.
    pad_ms : int
        Padding added to both ends of each segment.

    Returns
    -------
    list of (float, float)
        ``(start_s, end_s)`` per segment, in order.
    """
    model = _silero_model()
    from silero_vad import get_speech_timestamps

    model.reset_states()
    stamps = get_speech_timestamps(
        waveform.float().cpu(),
        model,
        threshold=threshold,
        sampling_rate=sample_rate,
        min_speech_duration_ms=min_speech_ms,
        min_silence_duration_ms=min_silence_ms,
        speech_pad_ms=pad_ms,
    )
    return [
        (stamp["start"] / sample_rate, stamp["end"] / sample_rate)
        for stamp in stamps
    ]


def frame_speech_mask(segments, num_frames):
    """Which encoder frames lie in speech.

    Arguments
    ---------
    segments : list of (float, float)
        Speech segments in seconds.
    num_frames : int
        Number of w2v-BERT frames (50 Hz).

    Returns
    -------
    torch.Tensor
        ``[num_frames]`` bool, True where the frame centre is in a segment.

    Example
    -------
    >>> frame_speech_mask([(0.05, 0.1)], 6)
    tensor([False, False,  True,  True,  True, False])
    """
    centres = frame_times(num_frames)
    mask = torch.zeros(num_frames, dtype=torch.bool)
    for start, end in segments:
        mask |= (centres >= start) & (centres < end)
    return mask
