"""End-to-end SLU by CTC on a SENSE encoder: tagged transcripts as output.

The SLUE-VoxPopuli NER and MEDIA recipes share everything here; their
``train.py`` files only name the metrics and call their data preparation.

* The model writes the tagged transcript (``i met <PERSON> john >``, see
  :mod:`speechbrain_sense.metrics.slu`) as a sequence of CTC units:
  characters, ``|`` between words, and each tag token (``<PERSON>``) and the
  closing ``>`` as single units (:func:`text_to_units`,
  :func:`units_to_text`).
* :class:`TaggedCTCHead`: a :class:`~speechbrain_sense.tasks.downstream.LengthAdaptor`
  over the encoder frames and a linear layer to the units, its size set
  from the label encoder once the data is prepared.
* :func:`ctc_greedy_decode` decodes with each utterance's true frame count.
* :class:`TaggedCTCBrain` trains the encoder (frozen or fine-tuned) and the
  head with CTC, decodes the dev/test sets greedily and scores them with
  :class:`~speechbrain_sense.metrics.slu.TaggedTranscriptStats`, writing
  ``<split>_metrics.json``, a per-utterance ``<split>_utterances.tsv`` and
  SpeechBrain's alignment files.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
from pathlib import Path

import numpy as np
import soundfile
import speechbrain as sb
import torch
from speechbrain.dataio.encoder import CTCTextEncoder
from speechbrain.utils.distributed import if_main_process
from speechbrain.utils.logger import get_logger
from torch import nn

from speechbrain_sense.audio import AudioReadError, load_audio, resample
from speechbrain_sense.data.dataio import (
    encoder_features_class,
    manifest_datasets,
)
from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.metrics.slu import (
    TAG_CLOSE,
    TaggedTranscriptStats,
    is_tag,
)
from speechbrain_sense.tasks.downstream import LengthAdaptor

logger = get_logger(__name__)

WORD_SEPARATOR = "|"
BLANK = "<blank>"
UNKNOWN = "<unk>"


def text_to_units(text):
    """CTC units of a tagged transcript.

    Words become their characters with ``|`` between consecutive words;
    tag tokens and ``>`` are single units and delimit words by themselves.

    Arguments
    ---------
    text : str
        Tagged transcript.

    Returns
    -------
    list of str

    Example
    -------
    >>> text_to_units("i met <PERSON> jo >")
    ['i', '|', 'm', 'e', 't', '<PERSON>', 'j', 'o', '>']
    """
    units = []
    previous_word = False
    for token in text.split():
        if is_tag(token) or token == TAG_CLOSE:
            units.append(token)
            previous_word = False
            continue
        if WORD_SEPARATOR in token:
            raise ValueError(
                f"word {token!r} contains the word separator "
                f"{WORD_SEPARATOR!r}: {text!r}"
            )
        if previous_word:
            units.append(WORD_SEPARATOR)
        units.extend(token)
        previous_word = True
    return units


def units_to_text(units):
    """Inverse of :func:`text_to_units` (any unit sequence decodes).

    Arguments
    ---------
    units : list of str
        CTC units.

    Returns
    -------
    str
        Tokens separated by single spaces.

    Example
    -------
    >>> units_to_text(["<X>", "a", "|", "|", "b", ">", ">", "c"])
    '<X> a b > > c'
    """
    tokens, word = [], []
    for unit in units:
        if unit == WORD_SEPARATOR or is_tag(unit) or unit == TAG_CLOSE:
            if word:
                tokens.append("".join(word))
                word = []
            if unit != WORD_SEPARATOR:
                tokens.append(unit)
        else:
            word.append(unit)
    if word:
        tokens.append("".join(word))
    return " ".join(tokens)


def ctc_min_frames(labels):
    """Frames CTC needs for a label sequence (repeats need a blank between).

    Arguments
    ---------
    labels : list
        Target labels.

    Returns
    -------
    int

    Example
    -------
    >>> ctc_min_frames(list("hello"))
    6
    """
    repeats = sum(a == b for a, b in zip(labels, labels[1:]))
    return len(labels) + repeats


def ctc_greedy_decode(log_probs, frame_counts, blank_index=0):
    """Best-path CTC decoding over each utterance's real frames.

    Arguments
    ---------
    log_probs : torch.Tensor
        ``[B, T, V]`` frame scores.
    frame_counts : torch.Tensor
        ``[B]`` real frames per utterance.
    blank_index : int
        Index of the blank.

    Returns
    -------
    list of list of int
        Label indices, repeats merged and blanks removed.

    Example
    -------
    >>> scores = torch.eye(3)[[1, 1, 0, 1, 2, 2]].unsqueeze(0).log()
    >>> ctc_greedy_decode(scores, torch.tensor([6]))
    [[1, 1, 2]]
    >>> ctc_greedy_decode(scores, torch.tensor([4]))
    [[1, 1]]
    """
    best = log_probs.argmax(dim=-1).cpu()  # [B, T]
    out = []
    for path, count in zip(best.tolist(), frame_counts.tolist()):
        labels, previous = [], None
        for index in path[:count]:
            if index != previous and index != blank_index:
                labels.append(index)
            previous = index
        out.append(labels)
    return out


def load_label_encoder(path, transcripts=None):
    """The CTC label encoder: loaded, or built from training transcripts.

    Index 0 is the blank, index 1 the unknown unit (dev/test characters
    never seen in training), then the training units in sorted order, so
    the same transcripts always give the same indices.

    Arguments
    ---------
    path : str or Path
        Where the encoder is saved (and loaded from when it exists).
    transcripts : iterable of str, optional
        Tagged training transcripts; needed when ``path`` does not exist.

    Returns
    -------
    CTCTextEncoder

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.txt")
    >>> encoder = load_label_encoder(path, ["<X> ab >", "ba"])
    >>> [encoder.ind2lab[i] for i in range(len(encoder))]
    ['<blank>', '<unk>', '<X>', '>', 'a', 'b']
    >>> encoder.encode_sequence(text_to_units("ab c"))
    [4, 5, 1, 1]
    >>> len(load_label_encoder(path))
    6
    """
    encoder = CTCTextEncoder()
    path = Path(path)
    if path.is_file():
        encoder.load(path)
        return encoder
    if transcripts is None:
        raise FileNotFoundError(f"no label encoder at {path}")
    units = set()
    for text in transcripts:
        units.update(text_to_units(text))
    encoder.insert_blank(BLANK, index=0)
    encoder.add_unk(UNKNOWN)
    encoder.update_from_iterable(
        sorted(units - {BLANK, UNKNOWN}), sequence_input=False
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder.save(path)
    return encoder


def prepare_label_encoder(train_csv, path):
    """Builds (once) the label encoder of a training manifest.

    Run it on the main process only (``run_on_main``); the other
    processes then load the saved file.

    Arguments
    ---------
    train_csv : str or Path
        Manifest with a ``tagged`` column.
    path : str or Path
        Where the encoder is saved.

    Returns
    -------
    CTCTextEncoder
    """
    rows = read_manifest(train_csv, path_columns=())
    return load_label_encoder(path, [row["tagged"] for row in rows.values()])


def load_segment(path, start=None, stop=None, channel=None, sample_rate=16000):
    """One channel of a time segment of an audio file, at ``sample_rate``.

    MEDIA keeps each dialogue in one stereo file with the caller on one
    channel; only the segment's frames are decoded.

    Arguments
    ---------
    path : str or Path
        Audio file.
    start : float, optional
        Segment start in seconds (the file's start when None).
    stop : float, optional
        Segment end in seconds (the file's end when None).
    channel : int, optional
        Channel to keep; None averages the channels.
    sample_rate : int
        Rate of the returned waveform.

    Returns
    -------
    torch.Tensor
        ``[time]`` float32.
    """
    if start is None and stop is None and channel is None:
        return load_audio(path, sample_rate)
    try:
        info = soundfile.info(str(path))
        first = int(round((start or 0.0) * info.samplerate))
        last = None if stop is None else int(round(stop * info.samplerate))
        samples, rate = soundfile.read(
            str(path), start=first, stop=last, dtype="float32", always_2d=True
        )
    except Exception as error:
        raise AudioReadError(f"cannot read {path}: {error}") from error
    if channel is None:
        samples = samples.mean(axis=1)
    elif channel >= samples.shape[1]:
        raise AudioReadError(
            f"{path} has {samples.shape[1]} channels, channel {channel} asked"
        )
    else:
        samples = samples[:, channel]
    waveform = torch.from_numpy(np.ascontiguousarray(samples))
    return resample(waveform, rate, sample_rate)


def _optional_float(value):
    """Read a manifest's optional number: None for an empty field.

    Arguments
    ---------
    value : str or float or None
        A ``start``/``stop`` field of a manifest row.

    Returns
    -------
    float or None
        The value as a float, None when it is empty or None.
    """
    return float(value) if value not in (None, "") else None


class TaggedCTCHead(nn.Module):
    """Length adaptor + linear CTC output over encoder frames.

    The output layer is created by :meth:`set_num_labels`, once the label
    encoder (built from the prepared training data) is known, and before
    the optimisers and checkpoints see the parameters.

    Arguments
    ---------
    input_dim : int
        Width of the encoder frames.
    adaptor_dim : int
        Width of the adaptor output.
    adaptor_layers : int
        Strided convolution layers (0: a linear projection).
    kernel_size : int
        Adaptor convolution width.
    stride : int
        Adaptor stride per layer (1 keeps the 50 Hz frame rate).
    dropout : float
        Dropout on the encoder frames and before the output layer.

    Example
    -------
    >>> head = TaggedCTCHead(32, 16, adaptor_layers=1, stride=2)
    >>> head.set_num_labels(7)
    >>> log_probs, counts = head(torch.randn(2, 10, 32), torch.tensor([10, 5]))
    >>> log_probs.shape, counts.tolist()
    (torch.Size([2, 5, 7]), [5, 3])
    """

    def __init__(
        self,
        input_dim,
        adaptor_dim,
        adaptor_layers=1,
        kernel_size=3,
        stride=1,
        dropout=0.0,
    ):
        super().__init__()
        self.adaptor = LengthAdaptor(
            input_dim,
            adaptor_dim,
            num_layers=adaptor_layers,
            kernel_size=kernel_size,
            stride=stride,
            dropout=dropout,
        )
        self.dropout = nn.Dropout(dropout)
        self.adaptor_dim = adaptor_dim
        self.output = None

    def set_num_labels(self, num_labels):
        """Creates the output layer for ``num_labels`` CTC labels.

        Arguments
        ---------
        num_labels : int
            Size of the label encoder, blank included.
        """
        if self.output is not None:
            if self.output.out_features != num_labels:
                raise ValueError(
                    f"output layer has {self.output.out_features} labels, "
                    f"{num_labels} asked"
                )
            return
        self.output = nn.Linear(self.adaptor_dim, num_labels)

    def forward(self, frames, frame_counts):
        """CTC log-probabilities of padded frames.

        Arguments
        ---------
        frames : torch.Tensor
            ``[B, T, D]`` encoder frames.
        frame_counts : torch.Tensor
            ``[B]`` real frames.

        Returns
        -------
        log_probs : torch.Tensor
            ``[B, T', V]``.
        frame_counts : torch.Tensor
            ``[B]`` real output frames.
        """
        if self.output is None:
            raise RuntimeError("call set_num_labels before the first forward")
        x, counts = self.adaptor(frames, frame_counts)  # [B, T', A]
        logits = self.output(self.dropout(x))  # [B, T', V]
        return logits.float().log_softmax(dim=-1), counts


class TaggedCTCBrain(sb.Brain):
    """CTC training and scoring of tagged transcripts.

    Subclasses name the metrics: ``metric_names`` maps the keys of
    :meth:`TaggedTranscriptStats.summarize` to the names logged and saved
    (e.g. ``tag_error_rate`` -> ``NEER``); its first entry selects the best
    checkpoint (lowest). The learning rates are annealed on the dev CTC
    loss: early in training CTC emits blanks only and the tag error rate
    sits at 100 %, which would anneal the rates away before anything is
    learnt. The brain needs ``label_encoder`` set before ``fit``.
    """

    metric_names = {
        "tag_error_rate": "tag_error_rate",
        "value_error_rate": "value_error_rate",
        "CER": "CER",
        "WER": "WER",
    }

    def compute_forward(self, batch, stage):
        """Encoder frames -> adaptor -> CTC log-probabilities.

        Arguments
        ---------
        batch : PaddedBatch
            Needs ``features`` and ``num_frames``.
        stage : sb.Stage
            The current stage (unused).

        Returns
        -------
        log_probs : torch.Tensor
            CTC log-probabilities, [batch, frames, labels].
        counts : torch.Tensor
            Real output frames of each utterance, [batch].
        """
        batch = batch.to(self.device)
        features, _ = batch.features
        frames, counts = self.modules.encoder(features, batch.num_frames)
        return self.modules.head(frames, counts)

    def compute_objectives(self, predictions, batch, stage):
        """CTC loss with exact lengths; greedy decoding and scoring.

        Outside training, the greedy CTC hypotheses are decoded to tagged
        transcripts and added to ``slu_stats``.

        Arguments
        ---------
        predictions : tuple
            ``(log_probs, counts)`` from :meth:`compute_forward`.
        batch : PaddedBatch
            Needs ``id``, ``units_encoded``, ``num_units``,
            ``min_frames`` and ``tagged``.
        stage : sb.Stage
            The current stage.

        Returns
        -------
        torch.Tensor
            The mean CTC loss, a scalar.
        """
        log_probs, counts = predictions
        blank_index = self.label_encoder.get_blank_index()
        targets, _ = batch.units_encoded
        target_counts = batch.num_units.to(targets.device)
        self._warn_infeasible(batch.id, counts, batch.min_frames)
        loss = nn.functional.ctc_loss(
            log_probs.transpose(0, 1),  # [T', B, V]
            targets,
            counts,
            target_counts,
            blank=blank_index,
            reduction="mean",
            zero_infinity=True,
        )
        if stage != sb.Stage.TRAIN:
            decoded = ctc_greedy_decode(log_probs, counts, blank_index)
            hypotheses = [
                units_to_text(self.label_encoder.decode_ndim(labels))
                for labels in decoded
            ]
            self.slu_stats.append(batch.id, hypotheses, batch.tagged)
        return loss

    def _warn_infeasible(self, ids, counts, min_frames):
        """Logs (once per utterance) targets longer than CTC can emit."""
        seen = self.__dict__.setdefault("_infeasible", set())
        needs = torch.as_tensor(min_frames).tolist()
        for utt_id, count, need in zip(ids, counts.tolist(), needs):
            if count < need and utt_id not in seen:
                seen.add(utt_id)
                logger.warning(
                    f"{utt_id}: {count} output frames for a target that "
                    f"needs {need}; its CTC loss is zeroed (lower the "
                    "adaptor stride)"
                )

    def init_optimizers(self):
        """One optimiser for the head, one for a fine-tuned encoder."""
        head = getattr(self.modules.head, "module", self.modules.head)
        encoder = getattr(self.modules.encoder, "module", self.modules.encoder)
        self.optimizers_dict = {
            "head_optimizer": self.hparams.head_opt_class(head.parameters())
        }
        encoder_params = [p for p in encoder.parameters() if p.requires_grad]
        if encoder_params:
            self.optimizers_dict["encoder_optimizer"] = (
                self.hparams.encoder_opt_class(encoder_params)
            )
        self.optimizer = self.optimizers_dict["head_optimizer"]
        if self.checkpointer is not None:
            for name, optimizer in self.optimizers_dict.items():
                self.checkpointer.add_recoverable(name, optimizer)

    def on_stage_start(self, stage, epoch=None):
        """Fresh metric accumulators.

        Arguments
        ---------
        stage : sb.Stage
            The stage starting (unused).
        epoch : int, optional
            The current epoch (unused).
        """
        self.slu_stats = TaggedTranscriptStats()

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Metrics, reports, LR annealing and checkpointing.

        Arguments
        ---------
        stage : sb.Stage
            The stage ending.
        stage_loss : float
            Average loss of the stage.
        epoch : int, optional
            The current epoch.
        """
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        summary = self.slu_stats.summarize()
        for key, name in self.metric_names.items():
            stats[name] = summary[key]
        split = "dev" if stage == sb.Stage.VALID else "test"
        if if_main_process():
            write_slu_reports(
                self.slu_stats,
                summary,
                self.metric_names,
                Path(self.hparams.output_folder),
                split,
            )
        main_metric = next(iter(self.metric_names.values()))
        # No reference tag at all: the rate is undefined; rank it worst.
        score = stats[main_metric]
        score = 100.0 if score is None else score
        # The logger formats numbers: leave undefined rates out.
        stats = {k: v for k, v in stats.items() if v is not None}
        if stage == sb.Stage.VALID:
            lrs = {}
            for key, optimizer in self.optimizers_dict.items():
                old, new = self.hparams.lr_annealing[key](stage_loss)
                sb.nnet.schedulers.update_learning_rate(optimizer, new)
                lrs[f"lr_{key.split('_')[0]}"] = old
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, **lrs},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={main_metric: score, "epoch": epoch},
                min_keys=[main_metric],
                num_to_keep=self.hparams.checkpoints_to_keep,
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )


UTTERANCE_COLUMNS = (
    "ID",
    "tag_errors",
    "tag_reference",
    "value_errors",
    "value_reference",
    "word_errors",
    "word_reference",
    "char_errors",
    "char_reference",
    "entity_matched",
    "entity_predicted",
    "entity_reference",
    "label_matched",
    "label_predicted",
    "label_reference",
    "unclosed_tags",
    "stray_closings",
    "reference",
    "hypothesis",
)


def write_slu_reports(stats, summary, metric_names, output_folder, split):
    """Writes the metric files of one evaluation.

    * ``<split>_metrics.json``: ``summary`` with the recipe's names added;
    * ``<split>_utterances.tsv``: one row per utterance, whose counts add
      up to the error rates and F1 of the summary;
    * ``<split>_<metric>_alignments.txt``: SpeechBrain's alignment report
      of each error rate.

    Arguments
    ---------
    stats : TaggedTranscriptStats
        The accumulated statistics.
    summary : dict
        ``stats.summarize()``.
    metric_names : dict
        Summary key -> recipe name (``tag_error_rate`` -> ``NEER``).
    output_folder : Path
        Experiment folder.
    split : str
        ``dev`` or ``test``.
    """
    output_folder.mkdir(parents=True, exist_ok=True)
    named = dict(summary)
    for key, name in metric_names.items():
        named[name] = summary[key]
    (output_folder / f"{split}_metrics.json").write_text(
        json.dumps(named, indent=1)
    )
    with open(
        output_folder / f"{split}_utterances.tsv",
        "w",
        encoding="utf-8",
        newline="",
    ) as f:
        writer = csv.DictWriter(f, fieldnames=UTTERANCE_COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(stats.utterance_rows())
    files = {"tag": "tag_error_rate", "value": "value_error_rate"}
    files.update(word="WER", char="CER")
    for unit, key in files.items():
        name = metric_names.get(key, key)
        path = output_folder / f"{split}_{name}_alignments.txt"
        with open(path, "w", encoding="utf-8") as f:
            stats.write_alignments(f, unit)


def dataio_prepare(
    csv_files,
    data_folder,
    label_encoder_file,
    encoder_source,
    sample_rate,
    sorting,
):
    """Datasets of the three prepared splits and the label encoder.

    Manifests need ``ID, duration, wav, start, stop, channel, tagged``
    (``start``/``stop``/``channel`` may be empty: the whole file, mixed to
    mono). Features are computed in the DataLoader workers.

    Arguments
    ---------
    csv_files : dict
        Split name -> CSV manifest path; needs ``"train"``, ``"dev"`` and
        ``"test"``.
    data_folder : str or Path
        The corpus folder, the value of ``$data_root`` in the manifests.
    label_encoder_file : str or Path
        The saved label encoder (written by
        :func:`prepare_label_encoder`).
    encoder_source : str
        The w2v-BERT / XLS-R / SENSE model directory or hub id, for its
        feature extractor's settings.
    sample_rate : int
        Rate the audio is resampled to.
    sorting : str
        Order of the training set: ``"random"``, ``"ascending"`` or
        ``"descending"`` duration. Dev and test are always ascending.

    Returns
    -------
    datasets : dict
        ``{"train", "dev", "test"}`` ``DynamicItemDataset``s.
    label_encoder : CTCTextEncoder
    """
    datasets = manifest_datasets(csv_files, data_folder)
    label_encoder = load_label_encoder(label_encoder_file)
    # W2VBertFeatures or XLSRFeatures, as the encoder's config says.
    features_class = encoder_features_class(encoder_source)
    features = features_class(encoder_source, sample_rate=sample_rate)

    @sb.utils.data_pipeline.takes("wav", "start", "stop", "channel")
    @sb.utils.data_pipeline.provides("features", "num_frames")
    def audio_pipeline(wav, start, stop, channel):
        """Load one utterance's segment and compute its encoder input.

        Arguments
        ---------
        wav : str
            Path of the audio file.
        start : str or float or None
            Segment start in seconds; empty for the file's start.
        stop : str or float or None
            Segment end in seconds; empty for the file's end.
        channel : str or int or None
            Channel to keep; empty to mix the channels to mono.

        Yields
        ------
        features : torch.Tensor
            Feature matrix, [frames, 160] (w2v-BERT) or [samples, 1]
            (XLS-R).
        num_frames : int
            Its length (frames, or samples).
        """
        waveform = load_segment(
            wav,
            _optional_float(start),
            _optional_float(stop),
            int(channel) if channel not in (None, "") else None,
            sample_rate,
        )
        frames = features(waveform)
        yield frames
        yield frames.shape[0]

    @sb.utils.data_pipeline.takes("tagged")
    @sb.utils.data_pipeline.provides("units_encoded", "num_units", "min_frames")
    def text_pipeline(tagged):
        """Encode one tagged transcript as CTC targets.

        Arguments
        ---------
        tagged : str
            Tagged transcript, e.g. ``"i met <PERSON> jo >"``.

        Yields
        ------
        units_encoded : torch.Tensor
            Label indices of the units, [units].
        num_units : int
            Number of units.
        min_frames : int
            Fewest encoder frames a CTC alignment of the units needs.
        """
        units = text_to_units(tagged)
        yield label_encoder.encode_sequence_torch(units)
        yield len(units)
        yield ctc_min_frames(units)

    keys = ["id", "features", "num_frames", "units_encoded", "num_units"]
    keys += ["min_frames", "tagged"]
    for dataset in datasets.values():
        dataset.add_dynamic_item(audio_pipeline)
        dataset.add_dynamic_item(text_pipeline)
        dataset.set_output_keys(keys)
    if sorting not in ("random", "ascending", "descending"):
        raise ValueError(
            f"sorting must be random, ascending or descending, not {sorting!r}"
        )
    if sorting != "random":
        datasets["train"] = datasets["train"].filtered_sorted(
            sort_key="duration", reverse=sorting == "descending"
        )
    for split in ("dev", "test"):
        # Similar lengths batched together: less padding to encode.
        datasets[split] = datasets[split].filtered_sorted(sort_key="duration")
    return datasets, label_encoder


def log_vocabulary(label_encoder):
    """Logs the label inventory (tags listed, characters counted).

    Arguments
    ---------
    label_encoder : CTCTextEncoder
        The encoder of :func:`load_label_encoder`.
    """
    labels = [label_encoder.ind2lab[i] for i in range(len(label_encoder))]
    tags = [label for label in labels if is_tag(label)]
    special = {BLANK, UNKNOWN, TAG_CLOSE, WORD_SEPARATOR}
    characters = [x for x in labels if not is_tag(x) and x not in special]
    logger.info(
        f"{len(labels)} CTC labels: {len(tags)} tags {tags}, "
        f"{len(characters)} characters {''.join(characters)!r}, blank, "
        f"unk, word separator {WORD_SEPARATOR!r} and {TAG_CLOSE!r}"
    )
