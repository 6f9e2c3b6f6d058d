"""ONNX / onnxruntime export of SENSE encoders, at the feature level.

::

    python -m speechbrain_sense.encoders.onnx_export --model <model dir> \\
        --out <onnx dir> [--no-int8] [--opset 17] [--exporter torchscript]

turns a model folder written by :mod:`speechbrain_sense.encoders.export` into::

    <onnx dir>/sense_encoder.onnx            graph, fp32
    <onnx dir>/sense_encoder.onnx.data       its weights (ONNX external data)
    <onnx dir>/sense_encoder.int8.onnx       int8 dynamic quantisation
    <onnx dir>/sense_encoder.int8.onnx.data  its weights
    <onnx dir>/preprocessor_config.json      the w2v-BERT feature extractor
    <onnx dir>/onnx_config.json              what a runtime needs to know

The graph maps ``features`` (float32 ``[B, T, 160]``, the stacked fbank
of :class:`~speechbrain_sense.encoders.w2v_bert.W2VBertFbank`, zero-padded) and
``frame_counts`` (int64 ``[B]``) to ``embedding`` (float32 ``[B, D]``,
L2-normalised), with dynamic batch and time axes. The fbank stays outside
the graph: it is a float64 FFT per utterance with per-utterance
normalisation, which ONNX has no exact equivalent for, and it is cheap
(~0.3 ms per audio second). :class:`OnnxSenseEncoder` computes it with the
package's own :class:`~speechbrain_sense.encoders.w2v_bert.W2VBertFbank` and runs
the graph with onnxruntime, so it sees exactly the inputs of training and
of the PyTorch model.

An XLS-R model folder (the SAMU-XLSR baseline, ``samu_xlsr.yaml``) exports
the same way, from its own input: ``features`` are the per-utterance
normalised samples (float32 ``[B, T, 1]``, as
:class:`~speechbrain_sense.encoders.xls_r.XLSRFeatures` computes them in
training) and ``frame_counts`` the real samples per utterance; the graph
maps samples to frames itself (400 samples, then one frame every 320).
``onnx_config.json`` says which (``"input": "fbank"`` or ``"samples"``).

Both files always store their weights as one external-data file: the
600M-parameter w2v-BERT 2.0 is 2.4 GB in fp32, past protobuf's 2 GB limit,
and one layout for every size keeps runtimes simple. Tensors under
:data:`EXTERNAL_MIN_BYTES` (shape constants, small biases) stay in the
graph: onnxruntime's shape inference cannot read an ``Unsqueeze`` axes or
``Reshape`` shape initializer from external data.

Exporter: the TorchScript-based ``torch.onnx.export(dynamo=False)`` is the
default. It traces HuggingFace's w2v-BERT (its bidirectional attention
mask, the ``relative_key`` distance embeddings clamped to
``[-64, 8]`` and the masked depthwise convolution) with symbolic batch and
time axes, and exports w2v-BERT 2.0 in seconds. ``exporter="dynamo"``
(``torch.export``) gives the same graph up to rounding, ~7x slower to
export; its ONNX graph names an internal value ``embedding`` (from
``aten::embedding``), which is renamed so that the output keeps its name.

int8: ``onnxruntime.quantization.quantize_dynamic`` with int8 weights
(symmetric, one scale per output column) for the op types in
:data:`INT8_OP_TYPES`, i.e. every ``MatMul`` with a constant weight (the
attention, feed-forward and feature-projection ``Linear`` layers, ~87% of
w2v-BERT 2.0's weights); activations are quantised to uint8 at run time,
per tensor. The Conformer's convolutions, the distance embeddings, the
layer norms and the pooling head stay fp32.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from speechbrain_sense.encoders.pretrained import SenseEncoderInterface
from speechbrain_sense.encoders.w2v_bert import (
    FBANK_HOP,
    FBANK_WINDOW,
    FRAME_STACK,
    W2VBertFbank,
    check_waveform_batch,
    sample_counts,
)
from speechbrain_sense.encoders.xls_r import (
    HOP,
    RECEPTIVE_FIELD,
    padded_samples,
)

ONNX_FILE = "sense_encoder.onnx"
INT8_FILE = "sense_encoder.int8.onnx"
CONFIG_FILE = "onnx_config.json"
PREPROCESSOR_FILE = "preprocessor_config.json"
VARIANT_FILES = {"fp32": ONNX_FILE, "int8": INT8_FILE}
INPUT_NAMES = ("features", "frame_counts")
# Smaller initializers stay inline (onnx's own default threshold).
EXTERNAL_MIN_BYTES = 1024
OUTPUT_NAME = "embedding"
# LayerNormalization is an ONNX op from 17 on (one fused node, not six).
DEFAULT_OPSET = 17
# Linear layers only: ONNX Runtime's dynamic ConvInteger is slower than its
# fp32 Conv on CPU, and the convolutions hold ~13% of the weights.
INT8_OP_TYPES = ("MatMul",)
INT8_PER_CHANNEL = True
# An fp32 graph below this cosine to eager PyTorch is a broken export.
MIN_COSINE = 0.9999
# Check batch: lengths that pad each other and exceed the 64-frame left
# window of the relative-key position embeddings.
CHECK_SECONDS = (0.7, 2.3, 5.0)
SAMPLE_RATE = 16000
# What a folder of speechbrain_sense.encoders.export needs to load (its custom.py is
# not: this package provides the classes).
MODEL_FILES = ("hyperparams.yaml", "embedding_model.ckpt")


class FeatureLevelEncoder(nn.Module):
    """A SENSE encoder from its input features to embeddings (the graph).

    The exported module: the encoder's ``forward_features`` then the
    :class:`~speechbrain_sense.encoders.pooling.SenseEmbeddingHead`, both the
    training code itself.

    Arguments
    ---------
    utterance_encoder : nn.Module
        ``SenseUtteranceEncoder`` (``.encoder`` a ``SenseW2VBert`` or a
        ``SenseXLSR``, ``.head`` a ``SenseEmbeddingHead``), e.g. a loaded
        model's ``mods.embedding_model``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.encoders.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> module = FeatureLevelEncoder(student).eval()
    >>> module(torch.randn(2, 7, 160), torch.tensor([7, 4])).shape
    torch.Size([2, 16])
    """

    def __init__(self, utterance_encoder):
        super().__init__()
        self.encoder = utterance_encoder.encoder
        self.head = utterance_encoder.head

    def forward(self, features, frame_counts):
        """Embeddings of padded features.

        Arguments
        ---------
        features : torch.Tensor
            ``[B, T, 160]`` float32 zero-padded features (XLS-R:
            ``[B, T, 1]`` normalised samples).
        frame_counts : torch.Tensor
            ``[B]`` int64 real frames (XLS-R: samples) per utterance.

        Returns
        -------
        torch.Tensor
            ``[B, D]`` L2-normalised embeddings.
        """
        # [B, T, 160] -> [B, T, D_enc] -> [B, D]
        frames = self.encoder.forward_features(features, frame_counts)
        output_frame_counts = getattr(self.encoder, "output_frame_counts", None)
        if output_frame_counts is not None:
            # XLS-R: samples -> frames, traced into the graph.
            frame_counts = output_frame_counts(frame_counts)
        return self.head(frames, frame_counts)


def check_model_folder(model_dir):
    """Raises a clear error unless ``model_dir`` is an exported model folder.

    Arguments
    ---------
    model_dir : str or Path
        Supposed folder of :mod:`speechbrain_sense.encoders.export`.

    Returns
    -------
    Path
        ``model_dir``.

    Example
    -------
    >>> import tempfile
    >>> check_model_folder(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    ValueError: ... is not a SENSE model folder: it has no hyperparams.yaml...
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"{model_dir} is not a folder: export_onnx takes a local model "
            "folder written by speechbrain_sense.encoders.export (download a hub "
            "model first)"
        )
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ValueError(
            f"{model_dir} is not a SENSE model folder: it has no "
            f"{', '.join(missing)} (write one with speechbrain_sense.encoders.export)"
        )
    return model_dir


def load_model(model_dir, savedir):
    """Loads an exported SENSE model folder on the CPU, in eval mode.

    Arguments
    ---------
    model_dir : str or Path
        Folder written by :mod:`speechbrain_sense.encoders.export`.
    savedir : str or Path
        Where SpeechBrain links the folder's files.

    Returns
    -------
    speechbrain_sense.encoders.pretrained.SenseEncoderInterface

    Raises
    ------
    FileNotFoundError, ValueError
        ``model_dir`` is not an exported SENSE model folder.
    """
    check_model_folder(model_dir)
    model = SenseEncoderInterface.from_hparams(
        source=str(model_dir),
        savedir=str(savedir),
        run_opts={"device": "cpu"},
    )
    if "embedding_model" not in model.mods:
        raise ValueError(
            f"{model_dir}/hyperparams.yaml has no embedding_model module: "
            "not a SENSE encoder folder"
        )
    model.mods.eval()
    return model


def pad_features(features):
    """Zero-pads per-utterance features into a batch.

    Arguments
    ---------
    features : list of torch.Tensor
        ``[T_i, 160]`` features.

    Returns
    -------
    padded : torch.Tensor
        ``[B, max T_i, 160]`` float32.
    frame_counts : torch.Tensor
        ``[B]`` int64 ``T_i``.

    Example
    -------
    >>> padded, counts = pad_features([torch.ones(3, 2), torch.ones(1, 2)])
    >>> padded.shape, counts.tolist(), padded[1, 1:].abs().sum().item()
    (torch.Size([2, 3, 2]), [3, 1], 0.0)
    """
    counts = torch.tensor([len(f) for f in features], dtype=torch.long)
    # [B] x [T_i, 160] -> [B, T, 160]
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    return padded.float(), counts


def waveform_features(fbank, wavs, wav_lens=None):
    """Padded fbank features of padded waveforms, as ``SenseW2VBert``.

    Same cut of each waveform as ``SenseW2VBert.waveform_features``
    (SpeechBrain relative lengths rounded to samples), same fbank.

    Arguments
    ---------
    fbank : W2VBertFbank
        The model's feature computation.
    wavs : torch.Tensor
        ``[B, T]`` padded 16 kHz waveforms.
    wav_lens : torch.Tensor, optional
        ``[B]`` lengths relative to ``T`` (default: all 1).

    Returns
    -------
    features : torch.Tensor
        ``[B, T', 160]`` zero-padded float32 features.
    frame_counts : torch.Tensor
        ``[B]`` int64 real frames.

    Example
    -------
    >>> from transformers import SeamlessM4TFeatureExtractor
    >>> fbank = W2VBertFbank(SeamlessM4TFeatureExtractor(stride=2))
    >>> feats, counts = waveform_features(
    ...     fbank, torch.randn(2, 16000), torch.tensor([1.0, 0.5])
    ... )
    >>> feats.shape, counts.tolist()
    (torch.Size([2, 49, 160]), [49, 24])
    """
    check_waveform_batch(wavs, wav_lens)
    if wav_lens is None:
        wav_lens = torch.ones(len(wavs))
    samples = sample_counts(torch.as_tensor(wav_lens), wavs.shape[1])
    short = [i for i, n in enumerate(samples.tolist()) if n < FBANK_WINDOW]
    if short:
        raise ValueError(
            f"utterance(s) {short} of the batch are shorter than one "
            f"w2v-BERT frame ({FBANK_WINDOW} samples at 16 kHz)"
        )
    with torch.no_grad():
        features = [
            fbank(w[: int(n)].detach().float().cpu())
            for w, n in zip(wavs, samples)
        ]
    return pad_features(features)


def check_waveforms(seconds=CHECK_SECONDS, seed=0):
    """A fixed padded batch of noise waveforms for export checks.

    Arguments
    ---------
    seconds : tuple of float
        Duration of each utterance.
    seed : int
        Seed of the noise.

    Returns
    -------
    wavs : torch.Tensor
        ``[B, T]`` zero-padded 16 kHz waveforms.
    wav_lens : torch.Tensor
        ``[B]`` SpeechBrain relative lengths.

    Example
    -------
    >>> wavs, lens = check_waveforms((1.0, 0.5))
    >>> wavs.shape, lens.tolist()
    (torch.Size([2, 16000]), [1.0, 0.5])
    """
    generator = torch.Generator().manual_seed(seed)
    lengths = [round(s * SAMPLE_RATE) for s in seconds]
    wavs = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        wavs[i, :n] = 0.1 * torch.randn(n, generator=generator)
    lens = torch.tensor([n / max(lengths) for n in lengths])
    return wavs, lens


def row_cosines(a, b):
    """Cosine similarity of matching rows.

    Arguments
    ---------
    a : array-like
        ``[B, D]``.
    b : array-like
        ``[B, D]``.

    Returns
    -------
    numpy.ndarray
        ``[B]`` float64 cosines.

    Example
    -------
    >>> row_cosines([[1.0, 0.0], [1.0, 1.0]], [[2.0, 0.0], [1.0, 0.0]])
    array([1.        , 0.70710678])
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(norms, 1e-30)


def _rename_values(graph, renames):
    """Renames values (node inputs/outputs, initializers, outputs) of a graph.

    Arguments
    ---------
    graph : onnx.GraphProto
        Graph edited in place.
    renames : dict
        Old name -> new name.

    Example
    -------
    >>> import onnx
    >>> node = onnx.helper.make_node("Relu", ["x"], ["y"])
    >>> graph = onnx.helper.make_graph([node], "g", [], [])
    >>> _rename_values(graph, {"y": "z"})
    >>> list(graph.node[0].output)
    ['z']
    """
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                names[i] = renames.get(name, name)
    values = [*graph.output, *graph.value_info, *graph.initializer]
    for value in values:
        value.name = renames.get(value.name, value.name)


def _name_output(model, current, wanted):
    """Gives the graph output ``current`` the name ``wanted``.

    An internal value that already holds ``wanted`` (the dynamo exporter
    names the output of ``aten::embedding`` so) is renamed first, so the
    graph keeps one definition per name.

    Arguments
    ---------
    model : onnx.ModelProto
        Model edited in place.
    current : str
        Present name of the graph output.
    wanted : str
        Its new name.

    Example
    -------
    >>> import onnx
    >>> nodes = [
    ...     onnx.helper.make_node("Relu", ["x"], ["embedding"]),
    ...     onnx.helper.make_node("Neg", ["embedding"], ["out"]),
    ... ]
    >>> out = onnx.helper.make_tensor_value_info("out", 1, [1])
    >>> graph = onnx.helper.make_graph(nodes, "g", [], [out])
    >>> model = onnx.helper.make_model(graph)
    >>> _name_output(model, "out", "embedding")
    >>> [(*n.input, *n.output) for n in model.graph.node]
    [('x', 'embedding_internal'), ('embedding_internal', 'embedding')]
    >>> model.graph.output[0].name
    'embedding'
    """
    graph = model.graph
    taken = {name for node in graph.node for name in node.output}
    taken |= {value.name for value in graph.input}
    taken |= {tensor.name for tensor in graph.initializer}
    if wanted in taken:
        _rename_values(graph, {wanted: f"{wanted}_internal"})
    _rename_values(graph, {current: wanted})


def _save_external(model, path):
    """Saves an ONNX model with its weights in ``<path>.data``.

    Initializers under :data:`EXTERNAL_MIN_BYTES` stay in the graph file.

    Arguments
    ---------
    model : onnx.ModelProto
        Model with its weights loaded.
    path : Path
        Destination ``.onnx`` file.
    """
    import onnx

    data = path.with_name(path.name + ".data")
    # onnx appends to an existing data file instead of replacing it.
    data.unlink(missing_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=EXTERNAL_MIN_BYTES,
    )
    _match_mode(data, path)


def _match_mode(data, path):
    """Gives an external-data file the permissions of its graph file.

    onnx and onnxruntime create the data file owner-only (``0600``), which
    would make a shared model folder half-unreadable.

    Arguments
    ---------
    data : Path
        The ``.onnx.data`` file.
    path : Path
        Its ``.onnx`` file.
    """
    data.chmod(path.stat().st_mode & 0o777)


def export_graph(module, features, frame_counts, path, opset, exporter):
    """Exports the feature-level encoder to ``path`` (+ ``.data``).

    Arguments
    ---------
    module : FeatureLevelEncoder
        Module in eval mode.
    features : torch.Tensor
        ``[B, T, 160]`` example features (padded: the trace then holds the
        masking code of a real padded batch).
    frame_counts : torch.Tensor
        ``[B]`` example frame counts.
    path : Path
        Destination ``.onnx`` file.
    opset : int
        ONNX opset.
    exporter : str
        ``"torchscript"`` (``torch.onnx.export(dynamo=False)``) or
        ``"dynamo"`` (``torch.export``).
    """
    import onnx

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        raw = Path(tmp) / "raw.onnx"
        if exporter == "torchscript":
            with torch.no_grad():
                torch.onnx.export(
                    module,
                    (features, frame_counts),
                    str(raw),
                    dynamo=False,
                    input_names=list(INPUT_NAMES),
                    output_names=[OUTPUT_NAME],
                    opset_version=opset,
                    dynamic_axes={
                        "features": {0: "batch", 1: "frames"},
                        "frame_counts": {0: "batch"},
                        OUTPUT_NAME: {0: "batch"},
                    },
                    do_constant_folding=True,
                )
        elif exporter == "dynamo":
            batch = torch.export.Dim("batch")
            frames = torch.export.Dim("frames")
            with torch.no_grad():
                program = torch.onnx.export(
                    module,
                    (features, frame_counts),
                    dynamo=True,
                    input_names=list(INPUT_NAMES),
                    output_names=["sense_output"],
                    opset_version=opset,
                    dynamic_shapes={
                        "features": {0: batch, 1: frames},
                        "frame_counts": {0: batch},
                    },
                    verbose=False,
                )
            program.save(str(raw), external_data=True)
        else:
            raise ValueError(
                f"exporter must be torchscript or dynamo, not {exporter!r}"
            )
        # Whatever layout the exporter chose (one file under 2 GB, one file
        # per tensor above): reload and write one data file.
        model = onnx.load(str(raw), load_external_data=True)
        if exporter == "dynamo":
            _name_output(model, "sense_output", OUTPUT_NAME)
        _save_external(model, path)
    # By path: a ModelProto over 2 GB cannot be checked in memory.
    onnx.checker.check_model(str(path))


def quantize_int8(fp32_path, int8_path, op_types=INT8_OP_TYPES):
    """int8 dynamic quantisation of an exported graph.

    Arguments
    ---------
    fp32_path : Path
        ``sense_encoder.onnx`` (with its ``.data``).
    int8_path : Path
        Destination; its weights go to ``<int8_path>.data``.
    op_types : tuple of str
        ONNX op types to quantise.

    Returns
    -------
    dict
        The quantisation settings, for ``onnx_config.json``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path = Path(int8_path)
    int8_path.with_name(int8_path.name + ".data").unlink(missing_ok=True)
    quantize_dynamic(
        str(fp32_path),
        str(int8_path),
        op_types_to_quantize=list(op_types),
        per_channel=INT8_PER_CHANNEL,
        weight_type=QuantType.QInt8,
        use_external_data_format=True,
    )
    _match_mode(int8_path.with_name(int8_path.name + ".data"), int8_path)
    return {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "op_types": list(op_types),
        "weights": "int8, symmetric, per output channel"
        if INT8_PER_CHANNEL
        else "int8, symmetric, per tensor",
        "activations": "uint8, per tensor, computed at run time",
    }


def fbank_settings(extractor):
    """The feature computation in words and numbers, for other runtimes.

    Arguments
    ---------
    extractor : transformers.SeamlessM4TFeatureExtractor
        The model's feature extractor.

    Returns
    -------
    dict
        JSON-serialisable settings.

    Example
    -------
    >>> from transformers import SeamlessM4TFeatureExtractor
    >>> settings = fbank_settings(SeamlessM4TFeatureExtractor(stride=2))
    >>> settings["num_mel_bins"], settings["frame_count"]
    (80, '(1 + (samples - 400) // 160) // 2, 0 below 400 samples')
    """
    return {
        "extractor": type(extractor).__name__,
        "config": PREPROCESSOR_FILE,
        "computation": (
            "Kaldi log-mel fbank of samples * 2**15 (float64: per-frame DC "
            "removal, pre-emphasis 0.97, Povey window, 512-point power "
            "spectrum, mel filters, log clamped at float32 eps), mean and "
            "unbiased variance normalisation per mel bin over the "
            "utterance, pairs of frames stacked: "
            "speechbrain_sense.encoders.w2v_bert.W2VBertFbank"
        ),
        "sampling_rate": int(extractor.sampling_rate),
        "num_mel_bins": int(extractor.num_mel_bins),
        "window_samples": FBANK_WINDOW,
        "hop_samples": FBANK_HOP,
        "stride": FRAME_STACK,
        "frame_count": (
            f"(1 + (samples - {FBANK_WINDOW}) // {FBANK_HOP}) // "
            f"{FRAME_STACK}, 0 below {FBANK_WINDOW} samples"
        ),
    }


def export_onnx(
    model_dir,
    out_dir,
    quantize=True,
    opset=DEFAULT_OPSET,
    check=True,
    exporter="torchscript",
):
    """Exports a SENSE model folder to ONNX (fp32 and int8).

    Arguments
    ---------
    model_dir : str or Path
        Model folder of :mod:`speechbrain_sense.encoders.export`.
    out_dir : str or Path
        Output folder (created); see the module docstring for its files.
    quantize : bool
        Also write the int8 variant ``sense_encoder.int8.onnx``.
    opset : int
        ONNX opset (17: LayerNormalization is one op).
    check : bool
        Run onnxruntime on a padded batch (0.7, 2.3 and 5 s of noise) and
        compare with the eager PyTorch model's ``encode_batch``; raise if
        the fp32 graph's cosine is below :data:`MIN_COSINE`. The int8
        cosines are recorded in ``onnx_config.json``, not enforced.
    exporter : str
        ``"torchscript"`` (default) or ``"dynamo"``.

    Returns
    -------
    Path
        ``out_dir``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.encoders.export import export_student
    >>> from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.encoders.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> model_dir = export_student(student.state_dict(), d, tempfile.mkdtemp())
    >>> out = export_onnx(model_dir, tempfile.mkdtemp())
    >>> sorted(p.name for p in out.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['onnx_config.json', 'preprocessor_config.json', 'sense_encoder.int8.onnx',
     'sense_encoder.int8.onnx.data', 'sense_encoder.onnx',
     'sense_encoder.onnx.data']
    >>> encoder = OnnxSenseEncoder.from_folder(out, variant="int8")
    >>> encoder.encode_batch(torch.randn(2, 8000)).shape
    torch.Size([2, 16])
    """
    check_model_folder(model_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as savedir:
        model = load_model(model_dir, savedir)
        utterance_encoder = model.mods.embedding_model
        encoder = utterance_encoder.encoder
        samples = getattr(encoder, "output_frame_counts", None) is not None
        if encoder.fbank is None and not samples:
            raise ValueError(
                f"{model_dir}'s feature extractor is not w2v-BERT's "
                "SeamlessM4T fbank: the ONNX runtime could not rebuild it"
            )
        module = FeatureLevelEncoder(utterance_encoder).eval()
        # Two utterances, one padded: the trace is that of a padded batch.
        wavs, lens = check_waveforms((1.0, 0.6), seed=1)
        if samples:
            normalize = bool(encoder.normalize_input)
            features, counts = padded_samples(wavs, lens, normalize)
        else:
            features, counts = waveform_features(encoder.fbank, wavs, lens)
        export_graph(
            module, features, counts, out_dir / ONNX_FILE, opset, exporter
        )
        encoder.feature_extractor.to_json_file(str(out_dir / PREPROCESSOR_FILE))
        config = {
            "format": "speechbrain-sense onnx encoder",
            "version": 1,
            "sample_rate": int(encoder.sample_rate),
            "feature_dim": int(features.shape[-1]),
            "encoder_dim": int(encoder.output_dim),
            "embedding_dim": int(utterance_encoder.head.output_dim),
            "opset": _graph_opset(out_dir / ONNX_FILE),
            "exporter": exporter,
            "input": "samples" if samples else "fbank",
            "inputs": {
                "features": "float32 [batch, frames, 160], zero-padded",
                "frame_counts": "int64 [batch], real frames",
            },
            "outputs": {OUTPUT_NAME: "float32 [batch, dim], L2-normalised"},
            "variants": {"fp32": _file_entry(out_dir, ONNX_FILE)},
            "source": str(model_dir),
        }
        if samples:
            config["inputs"] = {
                "features": "float32 [batch, samples, 1], each utterance "
                "normalised over its real samples, zero-padded",
                "frame_counts": "int64 [batch], real samples",
            }
            config["samples"] = {
                "normalize": normalize,
                "receptive_field": RECEPTIVE_FIELD,
                "hop": HOP,
            }
        else:
            config["fbank"] = fbank_settings(encoder.feature_extractor)
        if quantize:
            settings = quantize_int8(out_dir / ONNX_FILE, out_dir / INT8_FILE)
            config["variants"]["int8"] = {
                **_file_entry(out_dir, INT8_FILE),
                "quantization": settings,
            }
        _write_config(out_dir, config)
        if check:
            config["check"] = check_export(model, out_dir)
            _write_config(out_dir, config)
    return out_dir


def _graph_opset(path):
    """The default-domain opset an ONNX file declares.

    The dynamo exporter writes opset 18 when it cannot convert its graph
    down to the requested one, so the file, not the request, is recorded.

    Arguments
    ---------
    path : Path
        An ``.onnx`` file.

    Returns
    -------
    int
        Its ``ai.onnx`` opset version.
    """
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    versions = [
        entry.version
        for entry in model.opset_import
        if entry.domain in ("", "ai.onnx")
    ]
    return int(versions[0])


def _file_entry(out_dir, name):
    """File names and sizes of one variant, for ``onnx_config.json``.

    Arguments
    ---------
    out_dir : Path
        Export folder.
    name : str
        The ``.onnx`` file.

    Returns
    -------
    dict
        ``model``, ``data`` (external data file) and ``bytes`` (both).
    """
    data = name + ".data"
    size = (out_dir / name).stat().st_size + (out_dir / data).stat().st_size
    return {"model": name, "data": data, "bytes": size}


def _write_config(out_dir, config):
    """Writes ``onnx_config.json``.

    Arguments
    ---------
    out_dir : Path
        Export folder.
    config : dict
        Its contents.
    """
    text = json.dumps(config, indent=2) + "\n"
    (out_dir / CONFIG_FILE).write_text(text, encoding="utf-8")


def check_export(model, out_dir, seconds=CHECK_SECONDS):
    """Compares every exported variant with the eager model.

    Arguments
    ---------
    model : speechbrain_sense.encoders.inference.SenseEncoder
        The loaded PyTorch model.
    out_dir : Path
        Export folder with ``onnx_config.json``.
    seconds : tuple of float
        Utterance durations of the padded check batch.

    Returns
    -------
    dict
        Per variant: ``min_cosine`` and ``max_abs_diff`` to eager, and the
        batch's ``seconds``.
    """
    wavs, lens = check_waveforms(seconds)
    with torch.no_grad():
        # [B, 1, D] -> [B, D]
        eager = model.encode_batch(wavs, lens)[:, 0].float().numpy()
    config = json.loads((Path(out_dir) / CONFIG_FILE).read_text())
    results = {"seconds": list(seconds)}
    for variant in config["variants"]:
        onnx_model = OnnxSenseEncoder.from_folder(out_dir, variant=variant)
        emb = onnx_model.encode_batch(wavs.numpy(), lens.numpy())
        cosines = row_cosines(emb, eager)
        results[variant] = {
            "min_cosine": float(cosines.min()),
            "max_abs_diff": float(np.abs(emb - eager).max()),
        }
    fp32 = results["fp32"]["min_cosine"]
    if not fp32 >= MIN_COSINE:
        raise RuntimeError(
            f"the ONNX graph in {out_dir} disagrees with the PyTorch model: "
            f"cosine {fp32:.6f} < {MIN_COSINE} (max abs diff "
            f"{results['fp32']['max_abs_diff']:.3g}) on {len(seconds)} "
            f"padded utterances of {list(seconds)} s"
        )
    return results


class OnnxSenseEncoder:
    """A SENSE encoder run by onnxruntime, its input computed in PyTorch.

    Arguments
    ---------
    session : onnxruntime.InferenceSession
        Session of ``sense_encoder.onnx`` or ``sense_encoder.int8.onnx``.
    fbank : W2VBertFbank or None
        The feature computation (from ``preprocessor_config.json``); None
        for an XLS-R graph, whose input is normalised samples.
    config : dict
        ``onnx_config.json``.
    max_seconds : float, optional
        Longest utterance :meth:`encode_batch` accepts. The graph attends
        over the whole utterance, so its memory grows with the square of
        the length; longer input is refused with an error rather than
        exhausting memory (``SenseEncoder`` windows it instead). ``None``:
        no limit.

    Example
    -------
    See :func:`export_onnx`. Outputs follow the inputs' type::

        encoder = OnnxSenseEncoder.from_folder("onnx_dir", variant="int8")
        emb = encoder.encode_batch(wavs, wav_lens)  # [B, D]
    """

    def __init__(self, session, fbank, config, max_seconds=60.0):
        self.session = session
        self.fbank = fbank
        self.config = config
        self.max_seconds = max_seconds

    @classmethod
    def from_folder(
        cls,
        path,
        variant="fp32",
        providers=None,
        threads=None,
        max_seconds=60.0,
    ):
        """Loads an export folder of :func:`export_onnx`.

        Arguments
        ---------
        path : str or Path
            Export folder.
        variant : str
            ``"fp32"`` or ``"int8"``.
        providers : list, optional
            onnxruntime execution providers (default: CPU).
        threads : int, optional
            Intra-op threads (default: onnxruntime's, one per core).
        max_seconds : float, optional
            Longest utterance accepted (see the class).

        Returns
        -------
        OnnxSenseEncoder

        Raises
        ------
        FileNotFoundError
            ``path`` has no ``onnx_config.json``.
        ValueError
            ``variant`` was not exported.
        """
        import onnxruntime
        from transformers import AutoFeatureExtractor

        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise FileNotFoundError(
                f"{path} has no {CONFIG_FILE}: not a folder written by "
                "speechbrain_sense.encoders.onnx_export"
            )
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        if variant not in config["variants"]:
            raise ValueError(
                f"{path} has no {variant!r} model; it has "
                f"{sorted(config['variants'])}"
            )
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        session = onnxruntime.InferenceSession(
            str(path / config["variants"][variant]["model"]),
            sess_options=options,
            providers=providers or ["CPUExecutionProvider"],
        )
        fbank = None
        if config.get("input", "fbank") == "fbank":
            extractor = AutoFeatureExtractor.from_pretrained(str(path))
            fbank = W2VBertFbank(extractor)
        return cls(session, fbank, config, max_seconds)

    @property
    def sample_rate(self):
        """Rate of the waveforms :meth:`encode_batch` expects."""
        return self.config["sample_rate"]

    @property
    def embedding_dim(self):
        """Width of the embeddings."""
        return self.config["embedding_dim"]

    def encode_features(self, features, frame_counts):
        """Embeddings of padded input features.

        Arguments
        ---------
        features : torch.Tensor or numpy.ndarray
            ``[B, T, 160]`` zero-padded fbank features, or ``[B, T, 1]``
            normalised samples for an XLS-R graph.
        frame_counts : torch.Tensor or numpy.ndarray
            ``[B]`` real frames (XLS-R: samples) per utterance.

        Returns
        -------
        torch.Tensor or numpy.ndarray
            ``[B, D]`` float32 L2-normalised embeddings, a tensor when
            ``features`` is one.
        """
        as_torch = isinstance(features, torch.Tensor)
        feed = {
            "features": _numpy(features, np.float32),
            "frame_counts": _numpy(frame_counts, np.int64),
        }
        (embedding,) = self.session.run([OUTPUT_NAME], feed)
        return torch.from_numpy(embedding) if as_torch else embedding

    def encode_batch(self, wavs, wav_lens=None):
        """Embeddings of padded 16 kHz waveforms.

        Arguments
        ---------
        wavs : torch.Tensor or numpy.ndarray
            ``[B, T]`` (or ``[T]``) padded waveforms.
        wav_lens : torch.Tensor or numpy.ndarray, optional
            ``[B]`` lengths relative to ``T`` (default: all 1).

        Returns
        -------
        torch.Tensor or numpy.ndarray
            ``[B, D]`` float32 L2-normalised embeddings, a tensor when
            ``wavs`` is one (``[0, D]`` for an empty batch).

        Raises
        ------
        ValueError
            A batch that :func:`check_waveform_batch` refuses, or an
            utterance longer than ``max_seconds``.
        """
        as_torch = isinstance(wavs, torch.Tensor)
        wavs = torch.as_tensor(wavs)
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wav_lens is not None:
            wav_lens = torch.as_tensor(wav_lens)
        check_waveform_batch(wavs, wav_lens)
        if len(wavs) == 0:
            empty = np.zeros((0, self.embedding_dim), np.float32)
            return torch.from_numpy(empty) if as_torch else empty
        if self.max_seconds is not None:
            lens = torch.ones(len(wavs)) if wav_lens is None else wav_lens
            seconds = sample_counts(lens, wavs.shape[1]) / self.sample_rate
            long = (seconds > self.max_seconds).nonzero().flatten().tolist()
            if long:
                raise ValueError(
                    f"utterance(s) {long} of the batch are longer than "
                    f"max_seconds={self.max_seconds} "
                    f"({seconds.max().item():.1f} s): split them, or use "
                    "SenseEncoder, which encodes long input in windows"
                )
        if self.fbank is None:
            normalize = self.config["samples"]["normalize"]
            features, counts = padded_samples(wavs, wav_lens, normalize)
            short = (counts < RECEPTIVE_FIELD).nonzero().flatten().tolist()
            if short:
                raise ValueError(
                    f"utterance(s) {short} of the batch are shorter than "
                    f"one XLS-R frame ({RECEPTIVE_FIELD} samples at 16 kHz)"
                )
        else:
            features, counts = waveform_features(self.fbank, wavs, wav_lens)
        embedding = self.encode_features(features.numpy(), counts.numpy())
        return torch.from_numpy(embedding) if as_torch else embedding


def _numpy(array, dtype):
    """A C-contiguous NumPy array of ``dtype`` (from torch or NumPy).

    Arguments
    ---------
    array : torch.Tensor or array-like
        Input.
    dtype : numpy.dtype
        Wanted type.

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> _numpy(torch.tensor([1, 2]), np.int64).dtype
    dtype('int64')
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(array, dtype=dtype)


def parse_arguments(argv=None):
    """Command-line options (see the module docstring).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    argparse.Namespace
    """
    parser = argparse.ArgumentParser(
        description="Export a SENSE model folder to ONNX (fp32 + int8).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="SENSE model folder")
    parser.add_argument("--out", required=True, help="ONNX output folder")
    parser.add_argument(
        "--no-int8", action="store_true", help="skip the int8 variant"
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    parser.add_argument(
        "--exporter", choices=("torchscript", "dynamo"), default="torchscript"
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip the onnxruntime vs PyTorch comparison",
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Exports from the command line and prints the check's figures.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    Path
        The output folder.
    """
    options = parse_arguments(argv)
    out = export_onnx(
        options.model,
        options.out,
        quantize=not options.no_int8,
        opset=options.opset,
        check=not options.no_check,
        exporter=options.exporter,
    )
    config = json.loads((out / CONFIG_FILE).read_text(encoding="utf-8"))
    for variant, entry in config["variants"].items():
        line = f"{variant}: {out / entry['model']} ({entry['bytes'] / 2**20:.1f} MiB)"
        if "check" in config:
            result = config["check"][variant]
            line += f", cosine to PyTorch >= {result['min_cosine']:.6f}"
        print(line)
    return out


if __name__ == "__main__":
    main()
