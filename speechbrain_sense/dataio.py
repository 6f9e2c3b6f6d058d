"""Data pipelines shared by the recipes: manifests in, features out.

Every speech recipe here reads the CSV manifests of its prepare script
into SpeechBrain ``DynamicItemDataset`` s and computes w2v-BERT features
from the audio inside the DataLoader workers, so the training thread only
receives ready, per-utterance feature matrices.

Authors
 * speechbrain-sense developers 2026
"""

import speechbrain as sb

from speechbrain_sense.audio import load_audio
from speechbrain_sense.manifests import read_manifest
from speechbrain_sense.w2v_bert import W2VBertFeatures

SPLITS = ("train", "dev", "test")


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
):
    """Dynamic item ``wav -> (features, num_frames)`` for the workers.

    Arguments
    ---------
    encoder_source : str
        The w2v-BERT / SENSE model directory or hub id (its feature
        extractor's settings).
    sample_rate : int
        Rate the audio is resampled to.
    cache_dir : str, optional
        HuggingFace cache directory.
    cache_in_memory : bool
        Small corpora only: each (persistent) worker keeps the features it
        computed, so later epochs skip decoding. Off for real data.

    Returns
    -------
    callable
        A SpeechBrain dynamic item taking ``wav`` and providing
        ``features`` (``[frames, 160]``) and ``num_frames``.
    """
    features = W2VBertFeatures(
        encoder_source, cache_dir=cache_dir, sample_rate=sample_rate
    )
    memory_cache = {} if cache_in_memory else None

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("features", "num_frames")
    def audio_pipeline(wav):
        """Compute the w2v-BERT features of one audio file.

        Arguments
        ---------
        wav : str
            Path of the audio file.

        Yields
        ------
        features : torch.Tensor
            Feature matrix, [frames, 160].
        num_frames : int
            Number of feature frames.
        """
        frames = memory_cache.get(wav) if memory_cache is not None else None
        if frames is None:
            frames = features(load_audio(wav, sample_rate))
            if memory_cache is not None:
                memory_cache[wav] = frames
        yield frames
        yield frames.shape[0]

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
