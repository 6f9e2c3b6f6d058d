"""Data pipelines shared by the recipes: manifests in, features out.

Every speech recipe here reads the CSV manifests of its prepare script
into SpeechBrain ``DynamicItemDataset`` s and computes the encoder's input
from the audio inside the DataLoader workers, so the training thread only
receives ready, per-utterance feature matrices: w2v-BERT fbank features,
or an XLS-R encoder's normalised samples (:func:`encoder_features_class`
picks by the encoder's ``model_type``).

A clip that passed preparation can still fail to load in training (a disk
or network filesystem error, a file replaced under the run). With
``tolerate_load_errors`` the pipeline reports the failure instead of
raising inside a worker, :class:`LoadTolerantBatch` leaves the utterance
out of its batch, and :class:`LoadFailureGuard`, in the training process,
logs it by id and path and stops the run with a summary once failures
exceed a limit: never a raw DataLoader worker traceback, never a silent
drop.

Authors
 * speechbrain-sense developers 2026
"""

import json
from pathlib import Path

import speechbrain as sb
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.logger import get_logger

from speechbrain_sense.audio import AudioReadError, load_audio
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.encoders.w2v_bert import W2VBertFeatures
from speechbrain_sense.encoders.xls_r import XLSRFeatures

logger = get_logger(__name__)

SPLITS = ("train", "dev", "test")
# The dynamic item saying why an utterance failed to load (None: it did not).
LOAD_ERROR_KEY = "load_error"
# The workers' input of each encoder, by its HuggingFace model_type.
FEATURES_CLASSES = {
    "wav2vec2-bert": W2VBertFeatures,  # w2v-BERT 2.0: [frames, 160] fbank
    "wav2vec2": XLSRFeatures,  # XLS-R: [samples, 1] normalised samples
}


def encoder_model_type(source, cache_dir=None):
    """The HuggingFace ``model_type`` of an encoder or SENSE model.

    Arguments
    ---------
    source : str or Path
        An exported SENSE model folder or a HuggingFace directory (their
        ``config.json``), or a hub id (from the HuggingFace cache).
    cache_dir : str, optional
        HuggingFace cache directory.

    Returns
    -------
    str or None
        ``"wav2vec2-bert"``, ``"wav2vec2"`` ...

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xls_r
    >>> encoder_model_type(save_tiny_xls_r(tempfile.mkdtemp()))
    'wav2vec2'
    """
    config = Path(source) / "config.json"
    if config.is_file():
        return json.loads(config.read_text(encoding="utf-8")).get("model_type")
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(
        str(source), cache_dir=cache_dir
    ).model_type


def encoder_features_class(source, cache_dir=None):
    """What computes the encoder input of ``source`` from a waveform.

    Arguments
    ---------
    source : str or Path
        An exported SENSE model folder, a HuggingFace directory or a hub
        id (:func:`encoder_model_type`).
    cache_dir : str, optional
        HuggingFace cache directory.

    Returns
    -------
    type
        :class:`~speechbrain_sense.encoders.w2v_bert.W2VBertFeatures` for w2v-BERT
        2.0, :class:`~speechbrain_sense.encoders.xls_r.XLSRFeatures` for XLS-R.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> encoder_features_class(save_tiny_w2v_bert(tempfile.mkdtemp())).__name__
    'W2VBertFeatures'
    """
    model_type = encoder_model_type(source, cache_dir)
    if model_type not in FEATURES_CLASSES:
        raise ValueError(
            f"{source} is a {model_type!r} model: the recipes compute the "
            "input of w2v-BERT 2.0 ('wav2vec2-bert') and XLS-R ('wav2vec2') "
            "encoders and SENSE models only"
        )
    return FEATURES_CLASSES[model_type]


def manifest_datasets(csv_files, data_folder):
    """One ``DynamicItemDataset`` per prepared split.

    Arguments
    ---------
    csv_files : dict
        Split name -> path of that split's CSV manifest; one dataset is
        made per entry.
    data_folder : str or Path
        The corpus folder: the value of ``$data_root`` in the manifests'
        path columns.

    Returns
    -------
    dict
        Split name -> ``DynamicItemDataset``.

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "dev.csv").write_text(
    ...     "ID,wav,text\\na,$data_root/a.wav,costs 5$\\n"
    ... )
    >>> data = manifest_datasets({"dev": folder / "dev.csv"}, "/corpus")
    >>> data["dev"].data["a"]["wav"], data["dev"].data["a"]["text"]
    ('/corpus/a.wav', 'costs 5$')
    """
    data_root = {"data_root": str(data_folder)}
    # Not DynamicItemDataset.from_csv: it would rewrite "$" in the text.
    return {
        split: sb.dataio.dataset.DynamicItemDataset(
            read_manifest(csv_file, data_root)
        )
        for split, csv_file in csv_files.items()
    }


def audio_feature_pipeline(
    encoder_source,
    sample_rate=16000,
    cache_dir=None,
    cache_in_memory=False,
    tolerate_load_errors=False,
    features_class=None,
):
    """Dynamic item ``wav -> (features, num_frames)`` for the workers.

    Arguments
    ---------
    encoder_source : str
        The w2v-BERT / XLS-R / SENSE model directory or hub id (its feature
        extractor's settings).
    sample_rate : int
        Rate the audio is resampled to.
    cache_dir : str, optional
        HuggingFace cache directory.
    cache_in_memory : bool
        Small corpora only: each (persistent) worker keeps the features it
        computed, so later epochs skip decoding. Off for real data.
    tolerate_load_errors : bool
        A clip that fails to decode, or is too short for one frame, gives
        ``features=None`` and its error message as ``load_error`` instead
        of raising in the worker; collate with :class:`LoadTolerantBatch`.
    features_class : type, optional
        What computes an utterance's encoder input from its waveform,
        built as ``features_class(encoder_source, cache_dir=...,
        sample_rate=...)``: :class:`W2VBertFeatures` or
        :class:`speechbrain_sense.encoders.xls_r.XLSRFeatures` (samples,
        ``[T, 1]``). Default: the one of the encoder's ``model_type``
        (:func:`encoder_features_class`).

    Returns
    -------
    callable
        A SpeechBrain dynamic item taking ``wav`` and providing
        ``features`` (``[frames, 160]``, or ``[samples, 1]`` for XLS-R),
        ``num_frames`` (their length) and ``load_error`` (``None``, or why
        the clip failed).
    """
    if features_class is None:
        features_class = encoder_features_class(encoder_source, cache_dir)
    features = features_class(
        encoder_source, cache_dir=cache_dir, sample_rate=sample_rate
    )
    memory_cache = {} if cache_in_memory else None

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("features", "num_frames", LOAD_ERROR_KEY)
    def audio_pipeline(wav):
        """Compute the encoder input of one audio file.

        Arguments
        ---------
        wav : str
            Path of the audio file.

        Yields
        ------
        features : torch.Tensor
            Feature matrix, [frames, 160] (w2v-BERT) or [samples, 1]
            (XLS-R).
        num_frames : int
            Its length (frames, or samples).
        load_error : str or None
            Why the clip could not be used (``tolerate_load_errors``).
        """
        frames = memory_cache.get(wav) if memory_cache is not None else None
        if frames is None:
            try:
                frames = features(load_audio(wav, sample_rate))
            except (AudioReadError, ValueError) as error:
                if not tolerate_load_errors:
                    raise
                yield None
                yield 0
                yield f"{wav}: {error}"
                return
            if memory_cache is not None:
                memory_cache[wav] = frames
        yield frames
        yield frames.shape[0]
        yield None

    return audio_pipeline


def loader_options(options):
    """DataLoader options without the worker-only ones when there are none.

    Arguments
    ---------
    options : dict
        ``dataloader_options`` of a yaml file.

    Returns
    -------
    dict
        A copy; ``persistent_workers`` and ``prefetch_factor`` are dropped
        when ``num_workers`` is 0 (the DataLoader rejects them).

    Example
    -------
    >>> loader_options({"num_workers": 0, "persistent_workers": True})
    {'num_workers': 0}
    """
    options = dict(options)
    if not options.get("num_workers"):
        options.pop("persistent_workers", None)
        options.pop("prefetch_factor", None)
    return options


class LoadTolerantBatch(PaddedBatch):
    """``PaddedBatch`` of the examples that loaded; the others are listed.

    The DataLoader's ``collate_fn`` for datasets whose output keys include
    ``load_error`` (:func:`audio_feature_pipeline` with
    ``tolerate_load_errors``). Examples with an error are left out of the
    padded batch and named in :attr:`load_failures`; the training process
    reports them through :class:`LoadFailureGuard`.

    Arguments
    ---------
    examples : list of dict
        The examples of one batch.
    **kwargs
        Passed to ``PaddedBatch``.

    Example
    -------
    >>> import torch
    >>> batch = LoadTolerantBatch([
    ...     {"id": "a", "x": torch.ones(2), "load_error": None},
    ...     {"id": "b", "x": None, "load_error": "b.mp3: corrupt"},
    ... ])
    >>> batch.id, batch.load_failures
    (['a'], [('b', 'b.mp3: corrupt')])
    """

    def __init__(self, examples, **kwargs):
        self.load_failures = [
            (example.get("id"), example[LOAD_ERROR_KEY])
            for example in examples
            if example.get(LOAD_ERROR_KEY) is not None
        ]
        good = [
            {k: v for k, v in example.items() if k != LOAD_ERROR_KEY}
            for example in examples
            if example.get(LOAD_ERROR_KEY) is None
        ]
        self.loaded = len(good)
        if good:
            super().__init__(good, **kwargs)

    def to(self, *args, **kwargs):
        """Moves the tensors (nothing to move when no example loaded).

        Arguments
        ---------
        *args
            Passed to ``PaddedBatch.to``.
        **kwargs
            Passed to ``PaddedBatch.to``.

        Returns
        -------
        LoadTolerantBatch
            ``self``.
        """
        if self.loaded:
            super().to(*args, **kwargs)
        return self


class LoadFailureGuard:
    """Reports utterances that failed to load, and stops a run with too many.

    Arguments
    ---------
    max_failures : int
        Failures tolerated in one run (per process); one more stops it with
        a summary of the first ones.

    Example
    -------
    >>> import torch
    >>> guard = LoadFailureGuard(max_failures=1)
    >>> batch = LoadTolerantBatch([
    ...     {"id": "a", "x": torch.ones(2), "load_error": None},
    ...     {"id": "b", "x": None, "load_error": "b.mp3: corrupt"},
    ... ])
    >>> guard.check(batch, "train")
    >>> guard.failures
    [('b', 'b.mp3: corrupt')]
    """

    SUMMARY_LENGTH = 10

    def __init__(self, max_failures):
        self.max_failures = int(max_failures)
        self.failures = []

    def check(self, batch, stage):
        """Logs a batch's load failures; raises past the limit.

        Arguments
        ---------
        batch : LoadTolerantBatch or PaddedBatch
            A collated batch.
        stage : object
            Where it is used (for the log, e.g. ``sb.Stage.TRAIN``).

        Raises
        ------
        RuntimeError
            When failures exceed ``max_failures``, or no utterance of the
            batch loaded (a lost disk, not a bad clip).
        """
        failures = getattr(batch, "load_failures", [])
        for utterance, message in failures:
            logger.warning(f"{stage}: utterance {utterance} skipped: {message}")
        self.failures.extend(failures)
        if len(self.failures) > self.max_failures:
            raise RuntimeError(
                f"{len(self.failures)} utterances failed to load, more than "
                f"max_load_failures={self.max_failures}: "
                f"{self._summary()}"
            )
        if failures and not getattr(batch, "loaded", 1):
            raise RuntimeError(
                f"no utterance of a batch of {len(failures)} loaded (is the "
                f"data folder still there?): {self._summary()}"
            )

    def _summary(self):
        """The first failures, one per line."""
        shown = self.failures[: self.SUMMARY_LENGTH]
        more = len(self.failures) - len(shown)
        lines = [f"{utterance}: {message}" for utterance, message in shown]
        if more:
            lines.append(f"... and {more} more")
        return "\n  " + "\n  ".join(lines)
