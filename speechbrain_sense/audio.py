"""Reading audio files as 16 kHz mono float tensors.

Common Voice ships 48 kHz MP3; the speech encoders expect 16 kHz. Feeding
48 kHz samples as if they were 16 kHz silently ruins training, so every
waveform in speechbrain-sense goes through :func:`load_audio`, which always
returns the requested rate. Decoding uses ``soundfile`` (libsndfile >= 1.1
decodes MP3, Ogg/Opus, FLAC and WAV) so that it works without an FFmpeg
install; resampling uses ``torchaudio.functional.resample`` with the
resampling kernel cached per rate pair.

Authors
 * speechbrain-sense developers 2026
"""

import functools
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio


class AudioReadError(RuntimeError):
    """An audio file could not be decoded (the message names the file)."""


class EmptyAudioError(AudioReadError):
    """An audio file decodes to no samples at all."""


def _read_failure(path, action, error):
    """An :class:`AudioReadError` that says what is wrong with ``path``.

    libsndfile's own messages are misleading: it reports "File does not
    exist" for a file that exists but is corrupt, and "System error" for
    one that is missing. The file system is asked instead.

    Arguments
    ---------
    path : str or Path
        The file that failed.
    action : str
        What was attempted ("decode", "read the header of").
    error : Exception
        libsndfile's exception (kept in the message as a detail).

    Returns
    -------
    AudioReadError

    Example
    -------
    >>> print(_read_failure("/no/such.mp3", "decode", OSError("System error")))
    cannot decode /no/such.mp3: the file does not exist
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return AudioReadError(
            f"cannot {action} {path}: the file does not exist"
        )
    except OSError as stat_error:
        return AudioReadError(f"cannot {action} {path}: {stat_error}")
    if not path.is_file():
        return AudioReadError(f"cannot {action} {path}: not a regular file")
    if size == 0:
        return EmptyAudioError(f"cannot {action} {path}: the file is empty")
    return AudioReadError(
        f"cannot {action} {path}: corrupt or not an audio file ({size} "
        f"bytes; libsndfile: {error})"
    )


@functools.lru_cache(maxsize=16)
def _resampler(orig_freq, new_freq):
    """A cached resampling transform per rate pair (its kernel is costly)."""
    return torchaudio.transforms.Resample(orig_freq, new_freq)


def resample(waveform, orig_freq, new_freq):
    """Resamples ``waveform`` (``[..., time]``) between two rates.

    Arguments
    ---------
    waveform : torch.Tensor
        Float samples, time on the last axis.
    orig_freq : int
        Rate of ``waveform``.
    new_freq : int
        Wanted rate.

    Returns
    -------
    torch.Tensor
        The resampled waveform (the input itself when the rates match).

    Example
    -------
    >>> resample(torch.zeros(48000), 48000, 16000).shape
    torch.Size([16000])
    """
    if orig_freq == new_freq:
        return waveform
    return _resampler(int(orig_freq), int(new_freq))(waveform)


def load_audio(path, sample_rate=16000):
    """Decodes an audio file to a mono float32 tensor at ``sample_rate``.

    Multi-channel audio is averaged to mono.

    Arguments
    ---------
    path : str or Path
        Audio file in any format libsndfile reads (MP3, Ogg, FLAC, WAV).
    sample_rate : int
        Rate of the returned waveform.

    Returns
    -------
    torch.Tensor
        ``[time]`` float32 samples in [-1, 1].

    Raises
    ------
    AudioReadError
        When the file is missing, empty or cannot be decoded.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
    >>> t = np.arange(48000) / 48000
    >>> soundfile.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), 48000)
    >>> load_audio(path).shape
    torch.Size([16000])
    """
    try:
        samples, file_rate = soundfile.read(
            str(path), dtype="float32", always_2d=True
        )
    except Exception as error:  # libsndfile raises several types
        failure = _read_failure(path, "decode", error)
        if isinstance(failure, EmptyAudioError) or not _has_ffmpeg():
            raise failure from error
        # Formats libsndfile lacks (AAC/M4A, WMA, WebM ...): FFmpeg.
        samples, file_rate = _ffmpeg_decode(path, failure)
    if samples.shape[0] == 0:
        raise EmptyAudioError(f"audio file {path} holds no samples")
    # [time, channels] -> [time]
    mono = torch.from_numpy(np.ascontiguousarray(samples.mean(axis=1)))
    return resample(mono, file_rate, sample_rate)


@functools.lru_cache(maxsize=1)
def _has_ffmpeg():
    """Whether PyAV (FFmpeg's libraries, the ``search`` extra) imports."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _ffmpeg_decode(path, failure):
    """Decodes with FFmpeg (PyAV) what libsndfile could not.

    Arguments
    ---------
    path : str or Path
        Audio file.
    failure : AudioReadError
        libsndfile's failure, raised (with FFmpeg's reason added) when
        FFmpeg cannot decode the file either.

    Returns
    -------
    samples : numpy.ndarray
        ``[time, channels]`` float32.
    sample_rate : int
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError("no audio stream")
            stream = container.streams.audio[0]
            # Planar or packed, any sample format -> packed float32.
            to_float = av.AudioResampler(format="flt", layout=stream.layout)
            chunks, rate = [], stream.rate
            for frame in container.decode(stream):
                for out in to_float.resample(frame):
                    chunks.append(
                        out.to_ndarray().reshape(-1, out.layout.nb_channels)
                    )
            for out in to_float.resample(None):
                chunks.append(
                    out.to_ndarray().reshape(-1, out.layout.nb_channels)
                )
    except Exception as error:  # PyAV raises FFmpeg's many error types
        raise AudioReadError(f"{failure}; FFmpeg: {error}") from error
    channels = stream.layout.nb_channels
    if not chunks:
        return np.zeros((0, channels), dtype=np.float32), rate
    return np.concatenate(chunks).astype(np.float32, copy=False), rate


def audio_duration(path):
    """Duration of an audio file in seconds, read from its header.

    Arguments
    ---------
    path : str or Path
        Audio file.

    Returns
    -------
    float
        Seconds.
    """
    try:
        info = soundfile.info(str(path))
    except Exception as error:
        raise _read_failure(path, "read the audio header of", error) from error
    return info.frames / info.samplerate
