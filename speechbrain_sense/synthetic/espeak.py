"""Speech synthesis with eSpeak NG, with word boundaries.

The synthetic Common Voice fixture (:mod:`speechbrain_sense.synthetic.common_voice`)
and the demo need real, intelligible, multilingual speech without
downloading anything, so they use eSpeak NG: tiny, fast, with voices for
about a hundred languages, and reproducible sample for sample with the
voices in ``REPRODUCIBLE_VARIANTS``.

Two backends exist:

* ``"library"`` (preferred): the shared library shipped by the pip package
  ``espeakng-loader``, driven through :mod:`ctypes` in synchronous mode. It
  reports word events, so word boundaries are exact (to the sample).
* ``"program"``: the ``espeak-ng`` executable (for example from
  ``apt install espeak-ng``) run with ``--stdout``. The program does not
  report word events, so word boundaries are estimated from the word
  lengths; they are approximate.

Authors
 * speechbrain-sense contributors 2025
"""

import bisect
import ctypes
import difflib
import re
import shutil
import subprocess
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "REPRODUCIBLE_VARIANTS",
    "ESpeakSynthesizer",
    "SynthesisResult",
    "WordBoundary",
]

# Constants from eSpeak NG's public header speak_lib.h (its espeakRATE is
# ESPEAK_RATE here).
AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE = 1
ESPEAK_PITCH = 3
ESPEAK_EVENT_LIST_TERMINATED = 0
ESPEAK_EVENT_WORD = 1
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
EE_OK = 0

# Variants built on the "klatt 6" generator, checked to give identical
# samples for identical calls (whatever was synthesised before), in every
# built-in language; the other variants drift (see ESpeakSynthesizer).
REPRODUCIBLE_VARIANTS = (
    "adam",
    "benjamin",
    "david",
    "edward2",
    "klatt6",
    "mike2",
    "Reed",
)

RATE_RANGE = (80, 450)
PITCH_RANGE = (0, 100)

_VOICES_HINT = (
    "List the available languages with "
    "`ESpeakSynthesizer().available_languages()` (or `espeak-ng --voices` "
    "on the command line)."
)


@dataclass(frozen=True)
class WordBoundary:
    """One word of the synthesised text and where it is in the audio.

    Arguments
    ---------
    word : str
        The word as written in the input text, without surrounding
        punctuation.
    start_s : float
        Time (seconds) at which eSpeak starts speaking the word.
    end_s : float
        Start of the next word, or the end of the audio for the last word.
    """

    word: str
    start_s: float
    end_s: float


@dataclass
class SynthesisResult:
    """Output of :meth:`ESpeakSynthesizer.synthesize`.

    Arguments
    ---------
    waveform : numpy.ndarray
        Mono float32 samples in [-1, 1].
    sample_rate : int
        Sampling rate of ``waveform`` (22050 Hz for eSpeak NG).
    words : list of WordBoundary
        One entry per written word that eSpeak spoke, in order.
    """

    waveform: np.ndarray
    sample_rate: int
    words: list[WordBoundary] = field(default_factory=list)

    @property
    def duration_s(self):
        """Length of the waveform in seconds."""
        return len(self.waveform) / self.sample_rate


class _Event(ctypes.Structure):
    """ctypes mirror of libespeak-ng's ``espeak_EVENT`` struct.

    The synthesis callback receives an array of these, ended by an event
    of type ``ESPEAK_EVENT_LIST_TERMINATED``; word events carry the
    1-based character position of the word and its sample index.
    """

    # The trailing union is 8 bytes (int / char* / char[8]).
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


class _Voice(ctypes.Structure):
    """ctypes mirror of libespeak-ng's ``espeak_VOICE`` struct.

    ``espeak_ListVoices`` returns a NULL-terminated array of pointers to
    these; only ``languages`` is read, to learn which language codes have
    a voice.
    """

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_short),
    ctypes.c_int,
    ctypes.POINTER(_Event),
)

# eSpeak NG keeps the voice, the parameters and the callback in global
# state, so every use of the library (and of the sink below) must hold this
# lock, and the library is initialised once per process.
_LOCK = threading.RLock()
_LIBRARY = None


class _Sink:
    """Where the callback puts samples and word events of one synthesis."""

    def __init__(self):
        self.chunks = []
        # (0-based char index, sample index, audio position in ms)
        self.word_events = []


_SINK = None


def _on_synth(wav, num_samples, events):
    # Called by eSpeak, in the calling thread (synchronous mode), with _LOCK
    # held by the caller; must not raise (ctypes would only print it).
    """Collect one callback's samples and word events into ``_SINK``.

    Arguments
    ---------
    wav : ctypes.POINTER(ctypes.c_short)
        The chunk of int16 samples eSpeak just produced (may be NULL).
    num_samples : int
        Number of samples in ``wav``.
    events : ctypes.POINTER(_Event)
        The events of this chunk, ended by a list-terminated event.

    Returns
    -------
    int
        Always 0, which tells eSpeak to go on synthesising.
    """
    sink = _SINK
    if sink is None:
        return 0
    if num_samples > 0 and wav:
        sink.chunks.append(
            np.ctypeslib.as_array(wav, shape=(num_samples,)).copy()
        )
    i = 0
    while events[i].type != ESPEAK_EVENT_LIST_TERMINATED:
        event = events[i]
        if event.type == ESPEAK_EVENT_WORD:
            sink.word_events.append(
                (event.text_position - 1, event.sample, event.audio_position)
            )
        i += 1
    return 0


# Kept at module level: eSpeak holds a raw pointer to it forever.
_CALLBACK = _SynthCallback(_on_synth)


class _Library:
    """The eSpeak NG shared library, initialised (once) in this process."""

    def __init__(self, library_path, data_path):
        lib = ctypes.CDLL(str(library_path))
        lib.espeak_Initialize.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
        ]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
        ]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        # eSpeak's noise (breath, frication) comes from its own generator
        # and from libc rand(); both are seeded before every synthesis so
        # that equal calls give equal samples.
        self.set_rand_seed = getattr(lib, "espeak_ng_SetRandSeed", None)
        if self.set_rand_seed is not None:
            self.set_rand_seed.argtypes = [ctypes.c_long]
            self.set_rand_seed.restype = ctypes.c_int
        self.libc_srand = _libc_srand()
        # DONT_EXIT: a missing data file must give an error code, not kill
        # the Python process.
        sample_rate = lib.espeak_Initialize(
            AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            str(data_path).encode(),
            ESPEAK_INITIALIZE_DONT_EXIT,
        )
        if sample_rate <= 0:
            raise RuntimeError(
                f"espeak_Initialize failed for data path {data_path}"
            )
        lib.espeak_SetSynthCallback(_CALLBACK)
        self.lib = lib
        self.sample_rate = sample_rate
        self.data_path = Path(data_path)
        self.languages = self._list_languages()

    def _list_languages(self):
        """Collect the language codes of every voice eSpeak NG lists.

        Returns
        -------
        set of str
            Lower-case language codes, e.g. ``{"en", "en-us", "fr"}``.
        """
        languages = set()
        voices = self.lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            voice = voices[i].contents
            # `languages` is a run of (priority byte, NUL-terminated
            # string) pairs, ended by a zero priority byte.
            address = voice.languages
            while address and ctypes.c_ubyte.from_address(address).value:
                code = ctypes.string_at(address + 1)
                languages.add(code.decode("utf-8").lower())
                address += 2 + len(code)
            i += 1
        return languages

    def variants(self):
        """Names of the voice variants in the data folder's ``voices/!v``.

        Returns
        -------
        set of str
            Variant file names, e.g. ``{"f3", "m2", "klatt"}``.
        """
        variant_dir = self.data_path / "voices" / "!v"
        return {p.name for p in variant_dir.iterdir() if p.is_file()}

    def synthesize(self, text, voice_name, rate, pitch, seed):
        """Speak ``text`` through the library, under the global lock.

        Arguments
        ---------
        text : str
            Text to speak, without NUL characters.
        voice_name : str
            eSpeak voice name, ``language`` or ``language+variant``.
        rate : int
            Speaking rate in words per minute.
        pitch : int
            Base pitch, 0 to 100.
        seed : int
            Seed for eSpeak's and libc's noise generators (31 bits).

        Returns
        -------
        samples : numpy.ndarray
            int16 samples, [time].
        sample_rate : int
            Sampling rate of ``samples``.
        events : list of tuple
            ``(char_index, sample_index)`` per word event, the character
            index 0-based in ``text``.
        """
        global _SINK
        with _LOCK:
            if self.set_rand_seed is not None:
                self.set_rand_seed(seed)
            if self.libc_srand is not None:
                self.libc_srand(seed)
            if self.lib.espeak_SetVoiceByName(voice_name.encode()) != EE_OK:
                raise ValueError(f"eSpeak NG rejected voice {voice_name!r}")
            # Voice changes reset some parameters, so set them after it.
            self.lib.espeak_SetParameter(ESPEAK_RATE, rate, 0)
            self.lib.espeak_SetParameter(ESPEAK_PITCH, pitch, 0)
            data = text.encode("utf-8") + b"\0"
            _SINK = sink = _Sink()
            try:
                status = self.lib.espeak_Synth(
                    data,
                    len(data),
                    0,
                    POS_CHARACTER,
                    0,
                    ESPEAK_CHARS_UTF8,
                    None,
                    None,
                )
            finally:
                _SINK = None
        if status != EE_OK:
            raise RuntimeError(f"espeak_Synth failed with code {status}")
        samples = (
            np.concatenate(sink.chunks)
            if sink.chunks
            else np.zeros(0, dtype=np.int16)
        )
        # `sample` is exact; `audio_position` (ms) is the fallback for a
        # build that leaves `sample` unset.
        events = [
            (
                char_index,
                sample
                if sample > 0 or milliseconds <= 0
                else milliseconds * self.sample_rate // 1000,
            )
            for char_index, sample, milliseconds in sink.word_events
        ]
        return samples, self.sample_rate, events


def _libc_srand():
    """libc's ``srand`` (as used by eSpeak NG), or None where unavailable."""
    try:
        srand = ctypes.CDLL(None).srand
    except (OSError, AttributeError, TypeError):
        return None
    srand.argtypes = [ctypes.c_uint]
    srand.restype = None
    return srand


def _load_library():
    """The process-wide :class:`_Library`, or None without espeakng-loader."""
    global _LIBRARY
    with _LOCK:
        if _LIBRARY is None:
            try:
                import espeakng_loader
            except ImportError:
                return None
            _LIBRARY = _Library(
                espeakng_loader.get_library_path(),
                espeakng_loader.get_data_path(),
            )
        return _LIBRARY


def _parse_wav_stream(data):
    """Decode the 16-bit PCM WAV that ``espeak-ng --stdout`` writes.

    The header's size fields are placeholders when eSpeak writes to a
    pipe, so the samples are taken as everything after the ``data`` chunk
    header rather than trusting the declared size.

    Arguments
    ---------
    data : bytes
        The WAV file bytes.

    Returns
    -------
    samples : numpy.ndarray
        int16 samples.
    sample_rate : int
        Sampling rate from the ``fmt`` chunk.

    Example
    -------
    >>> import struct
    >>> header = b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVE"
    >>> fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    >>> body = struct.pack("<3h", 0, 100, -100)
    >>> wav = (header + b"fmt " + struct.pack("<I", 16) + fmt
    ...        + b"data" + struct.pack("<I", 0x7FFFFFFF) + body)
    >>> samples, rate = _parse_wav_stream(wav)
    >>> samples.tolist(), rate
    ([0, 100, -100], 22050)
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError("espeak-ng did not write a WAV file")
    position = 12
    sample_rate = None
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if chunk_id == b"fmt ":
            fmt = data[position + 8 : position + 24]
            channels = int.from_bytes(fmt[2:4], "little")
            sample_rate = int.from_bytes(fmt[4:8], "little")
            bits = int.from_bytes(fmt[14:16], "little")
            if channels != 1 or bits != 16:
                raise RuntimeError(
                    "expected 16-bit mono WAV from espeak-ng, got "
                    f"{channels} channel(s) of {bits} bits"
                )
        elif chunk_id == b"data":
            if sample_rate is None:
                raise RuntimeError("WAV data chunk before fmt chunk")
            body = data[position + 8 :]
            body = body[: len(body) - len(body) % 2]
            return np.frombuffer(body, dtype="<i2").copy(), sample_rate
        position += 8 + size + size % 2
    raise RuntimeError("no data chunk in the WAV from espeak-ng")


class _Program:
    """The ``espeak-ng`` executable, for systems without espeakng-loader."""

    def __init__(self, executable):
        self.executable = executable
        self.languages = self._list(["--voices"], column=1)
        self.languages = {code.lower() for code in self.languages}

    def _list(self, options, column):
        """Run ``espeak-ng`` with ``options`` and read one column of its table.

        Arguments
        ---------
        options : list of str
            Command-line options, e.g. ``["--voices"]``.
        column : int
            0-based column of the voice table to collect.

        Returns
        -------
        set of str
            The values of that column, header row excluded.
        """
        out = subprocess.run(
            [self.executable, *options],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # Table: "Pty Language Age/Gender VoiceName File Other Languages".
        rows = [line.split() for line in out.splitlines()[1:]]
        return {row[column] for row in rows if len(row) > column}

    def variants(self):
        """Names of the voice variants that ``espeak-ng`` lists.

        Returns
        -------
        set of str
            Variant names, e.g. ``{"f3", "m2", "klatt"}``.
        """
        files = self._list(["--voices=variant"], column=4)
        return {name.split("/")[-1] for name in files}

    def synthesize(self, text, voice_name, rate, pitch, seed):
        # Each run is a fresh process, so `seed` is not needed for
        # repeatability (and the program has no option for it).
        # The text goes through stdin so that text starting with "-" cannot
        # be parsed as an option.
        """Speak ``text`` with one run of the ``espeak-ng`` program.

        Arguments
        ---------
        text : str
            Text to speak, sent through stdin.
        voice_name : str
            eSpeak voice name, ``language`` or ``language+variant``.
        rate : int
            Speaking rate in words per minute.
        pitch : int
            Base pitch, 0 to 100.
        seed : int
            Unused: each run is a fresh process, so equal calls already
            give equal audio.

        Returns
        -------
        samples : numpy.ndarray
            int16 samples, [time].
        sample_rate : int
            Sampling rate of ``samples``.
        events : list of tuple
            Estimated ``(char_index, sample_index)`` word starts.
        """
        completed = subprocess.run(
            [
                self.executable,
                "-v",
                voice_name,
                "-s",
                str(rate),
                "-p",
                str(pitch),
                "-b",
                "1",
                "--stdin",
                "--stdout",
            ],
            input=text.encode("utf-8"),
            capture_output=True,
            check=False,
        )
        if completed.returncode != 0:
            message = completed.stderr.decode("utf-8", "replace").strip()
            raise RuntimeError(f"espeak-ng failed: {message}")
        samples, sample_rate = _parse_wav_stream(completed.stdout)
        return samples, sample_rate, _estimate_word_events(text, samples)


def _estimate_word_events(text, samples):
    """Approximate (char index, sample index) word starts, for `_Program`.

    The speech between the first and last clearly non-silent samples is
    shared out among the words in proportion to their length plus one (for
    the gap after each word).
    """
    tokens = list(re.finditer(r"\S+", text))
    if not tokens or len(samples) == 0:
        return []
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)
    first, last = (loud[0], loud[-1]) if len(loud) else (0, len(samples))
    weights = np.array([len(m.group()) + 1 for m in tokens], dtype=float)
    starts = first + (last - first) * np.concatenate(
        [[0.0], np.cumsum(weights)[:-1] / weights.sum()]
    )
    return [(m.start(), int(s)) for m, s in zip(tokens, starts)]


def _strip_punctuation(token):
    """Remove leading/trailing punctuation and symbols from a token."""
    start, end = 0, len(token)
    while start < end and unicodedata.category(token[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(token[end - 1])[0] in "PS":
        end -= 1
    return token[start:end] or token


def _word_boundaries(text, word_events, num_samples, sample_rate):
    """Turn eSpeak word events into one `WordBoundary` per written word.

    eSpeak may emit several events for one written token (e.g. "23" is
    spoken as "twenty three") or skip a token (punctuation only); events are
    therefore mapped onto the whitespace-separated tokens of the input, the
    first event of a token giving its start.
    """
    tokens = list(re.finditer(r"\S+", text))
    token_ends = [match.end() for match in tokens]
    starts = {}
    for char_index, sample in word_events:
        # First token ending after the position: an event that points at
        # whitespace belongs to the next token.
        index = bisect.bisect_right(token_ends, char_index)
        if index < len(tokens):
            starts.setdefault(index, sample)
    words = []
    previous = 0
    ordered = sorted(starts.items())
    for k, (index, sample) in enumerate(ordered):
        # Keep times non-decreasing even if eSpeak reorders events.
        start = min(max(sample, previous), num_samples)
        previous = start
        if k + 1 < len(ordered):
            end = min(max(ordered[k + 1][1], start), num_samples)
        else:
            end = num_samples
        words.append(
            WordBoundary(
                word=_strip_punctuation(tokens[index].group()),
                start_s=start / sample_rate,
                end_s=end / sample_rate,
            )
        )
    return words


class ESpeakSynthesizer:
    """Text-to-speech with eSpeak NG, returning audio and word boundaries.

    eSpeak NG has process-wide state, so all instances share one engine and
    calls are serialised by a module-level lock; the class is safe to use
    from several threads but synthesis does not run in parallel.

    Reproducibility: with the library backend the noise generators are
    seeded on every call, but eSpeak's classic waveform generator keeps its
    pitch-flutter phase from one call to the next, so with most voices the
    same call gives slightly different audio (and length, by a few ms)
    each time. Variants on the "klatt 6" generator have no such state and
    give identical samples for identical calls: see
    ``REPRODUCIBLE_VARIANTS``.

    Arguments
    ---------
    backend : str
        ``"library"`` (ctypes on the library from the ``espeakng-loader``
        package, exact word boundaries), ``"program"`` (the ``espeak-ng``
        executable, approximate word boundaries) or ``"auto"`` (the
        library if ``espeakng-loader`` is installed, else the program).
    executable : str
        Name or path of the ``espeak-ng`` program for the program backend.

    Example
    -------
    >>> tts = ESpeakSynthesizer()
    >>> result = tts.synthesize("Hello world.", "en")
    >>> result.sample_rate
    22050
    >>> [w.word for w in result.words]
    ['Hello', 'world']
    >>> result.words[-1].end_s == result.duration_s
    True
    >>> tts.has_language("en"), tts.has_language("klingon")
    (True, False)
    """

    def __init__(self, backend="auto", executable="espeak-ng"):
        if backend not in ("auto", "library", "program"):
            raise ValueError(
                f"backend must be 'auto', 'library' or 'program', "
                f"not {backend!r}"
            )
        self._engine = None
        if backend in ("auto", "library"):
            self._engine = _load_library()
            if self._engine is None and backend == "library":
                raise RuntimeError(
                    "The eSpeak NG library backend needs the "
                    "'espeakng-loader' package: pip install espeakng-loader"
                )
        if self._engine is None:
            path = shutil.which(executable)
            if path is None:
                raise RuntimeError(
                    "eSpeak NG is not available: install the Python package "
                    "('pip install espeakng-loader') or the program "
                    f"{executable!r} (e.g. 'apt install espeak-ng')"
                )
            self._engine = _Program(path)
        self._variants = None

    @property
    def backend(self):
        """``"library"`` or ``"program"``: which backend is in use."""
        return "library" if isinstance(self._engine, _Library) else "program"

    def available_languages(self):
        """Sorted language codes (lower case) that have an eSpeak voice.

        Returns
        -------
        list of str
            For example ``["af", "am", "an", ...]``.
        """
        return sorted(self._engine.languages)

    def has_language(self, language):
        """Whether eSpeak NG has a voice for ``language`` (e.g. ``"fa"``).

        Arguments
        ---------
        language : str
            eSpeak language code, compared case-insensitively.

        Returns
        -------
        bool
            True if some voice speaks ``language``.
        """
        return language.lower() in self._engine.languages

    def available_variants(self):
        """Sorted names of the voice variants (e.g. ``"f3"``, ``"m2"``).

        The list is read once and cached.

        Returns
        -------
        list of str
            Names accepted as ``voice_variant`` by :meth:`synthesize`.
        """
        if self._variants is None:
            self._variants = self._engine.variants()
        return sorted(self._variants)

    def synthesize(
        self, text, language, voice_variant=None, rate=175, pitch=50, seed=0
    ):
        """Synthesise ``text`` in ``language``.

        Arguments
        ---------
        text : str
            Text to speak (any script; passed to eSpeak as UTF-8). Not
            interpreted as SSML.
        language : str
            eSpeak language code, e.g. ``"en"``, ``"fr"``, ``"fa"``,
            ``"pt-br"``; see :meth:`available_languages`.
        voice_variant : str, optional
            eSpeak voice variant (the speaker), e.g. ``"m3"``, ``"f2"``,
            ``"klatt"``; see :meth:`available_variants`.
        rate : int
            Speaking rate in words per minute (80 to 450).
        pitch : int
            Base pitch, 0 to 100 (50 is the voice's default).
        seed : int
            Seed of eSpeak's noise generators (library backend; only the
            low 31 bits count), set before every call so that equal calls
            give equal noise. See the class docstring for voices whose
            timing still drifts.

        Returns
        -------
        SynthesisResult
            The waveform (float32 in [-1, 1]), its sample rate, and the
            word boundaries.
        """
        if not self.has_language(language):
            close = difflib.get_close_matches(
                language.lower(), self._engine.languages, n=3
            )
            suggestion = f" Close matches: {close}." if close else ""
            raise ValueError(
                f"eSpeak NG has no voice for language {language!r}."
                f"{suggestion} {_VOICES_HINT}"
            )
        voice_name = language
        if voice_variant is not None:
            if voice_variant not in self.available_variants():
                raise ValueError(
                    f"Unknown eSpeak NG voice variant {voice_variant!r}; see "
                    "ESpeakSynthesizer().available_variants() (or "
                    "`espeak-ng --voices=variant`)."
                )
            voice_name = f"{language}+{voice_variant}"
        for name, value, (low, high) in (
            ("rate", rate, RATE_RANGE),
            ("pitch", pitch, PITCH_RANGE),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}]")
        # A NUL would end the C string early and shift nothing else, so it
        # is replaced in place (same length: word positions stay valid).
        text = text.replace("\0", " ")
        if not text.strip():
            raise ValueError("text is empty")
        samples, sample_rate, events = self._engine.synthesize(
            text, voice_name, int(rate), int(pitch), int(seed) & 0x7FFFFFFF
        )
        waveform = samples.astype(np.float32) / 32768.0
        words = _word_boundaries(text, events, len(waveform), sample_rate)
        return SynthesisResult(waveform, sample_rate, words)
