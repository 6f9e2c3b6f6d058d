"""Export a trained SENSE checkpoint as a self-contained SpeechBrain model.

::

    python -m speechbrain_sense.export --checkpoint <recipe save folder> \\
        --out <model dir> [--encoder-source DIR_OR_HUB_ID]

writes a directory that loads offline with stock SpeechBrain
(``EncoderClassifier.from_hparams(source=<model dir>)``) or with
:class:`speechbrain_sense.inference.SenseEncoder`::

    <model dir>/hyperparams.yaml          inference hparams (from the
                                          template hparams/sense_inference.yaml)
    <model dir>/embedding_model.ckpt      encoder + head weights
    <model dir>/config.json               the encoder's HuggingFace config
    <model dir>/preprocessor_config.json  its feature extractor
    <model dir>/README.md                 model card: data, languages,
                                          teacher, dev/test R@1
    <model dir>/training_hyperparams.yaml the recipe's resolved hparams

Two checkpoint layouts are accepted, found automatically:

* this project's recipe (``recipes/CommonVoice/SENSE``): a save folder
  with ``CKPT+*`` folders (the one with the best dev R@1 is exported) or
  one ``CKPT+*`` folder, each holding ``student.ckpt``, the state dict of
  ``SenseStudent`` (``encoder.model.*``, ``head.*``). The encoder's
  HuggingFace directory and the head's activation come from the recipe's
  ``hyperparams.yaml`` two levels up.
* the upstream SpeechBrain SENSE recipe: ``wav2vec2.ckpt`` (state dict of
  SpeechBrain's ``W2VBert``, keys ``model.*``) and ``model.ckpt`` (a
  ``ModuleList`` holding ``AttentionPooling``, keys
  ``0.attn_pooling_w.{weight,bias}``, and in the older ``train.yaml`` a
  ``Linear`` projection without activation, keys ``1.{weight,bias}``).
  Its ``hparams`` do not name a local encoder directory, so give
  ``--encoder-source`` (``facebook/w2v-bert-2.0`` from a HuggingFace cache,
  or a local copy). Upstream pooling softmaxes over padded frames too; the
  exported model masks them, which changes nothing for one utterance at a
  time and makes batched embeddings equal to single ones.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

TEMPLATE = (
    Path(__file__).resolve().parent.parent / "hparams" / "sense_inference.yaml"
)
WEIGHTS_FILE = "embedding_model.ckpt"
UPSTREAM_FILES = ("wav2vec2.ckpt", "model.ckpt")


def find_checkpoint(path):
    """The checkpoint folder to export and its layout.

    Arguments
    ---------
    path : str or Path
        A ``CKPT+*`` folder, a save folder holding several (the best dev
        R@1 wins, then the latest), or an upstream checkpoint folder.

    Returns
    -------
    folder : Path
        The checkpoint folder.
    layout : str
        ``"sense"`` (``student.ckpt``) or ``"upstream"``.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist")
    if (path / "student.ckpt").is_file():
        return path, "sense"
    if all((path / name).is_file() for name in UPSTREAM_FILES):
        return path, "upstream"
    candidates = [
        folder
        for folder in sorted(path.glob("CKPT+*"))
        if (folder / "student.ckpt").is_file()
        or all((folder / name).is_file() for name in UPSTREAM_FILES)
    ]
    if not candidates:
        raise FileNotFoundError(
            f"{path} holds no checkpoint: expected student.ckpt (this "
            f"project's recipe), {' + '.join(UPSTREAM_FILES)} (upstream "
            "SpeechBrain SENSE) or CKPT+* folders with either"
        )

    def preference(folder):
        meta = _read_ckpt_meta(folder)
        r1 = meta.get("R@1")
        return (r1 if isinstance(r1, (int, float)) else -1.0, folder.name)

    best = max(candidates, key=preference)
    return find_checkpoint(best)


def _read_ckpt_meta(folder):
    """The ``CKPT.yaml`` metadata SpeechBrain writes (empty if absent)."""
    import yaml

    meta_file = Path(folder) / "CKPT.yaml"
    if not meta_file.is_file():
        return {}
    return yaml.safe_load(meta_file.read_text(encoding="utf-8")) or {}


def convert_upstream_state(wav2vec2_state, model_state):
    """Maps the upstream SENSE recipe's state dicts to ``SenseStudent``'s.

    Arguments
    ---------
    wav2vec2_state : dict
        ``wav2vec2.ckpt``: SpeechBrain ``W2VBert`` state (``model.*``), or
        a bare HuggingFace ``Wav2Vec2BertModel`` state.
    model_state : dict
        ``model.ckpt``: the pooling (``...attn_pooling_w.weight/bias``) and
        optionally one ``Linear`` projection.

    Returns
    -------
    dict
        ``encoder.model.*``, ``head.pooling.attn_pooling_w.*`` and, with a
        projection, ``head.projection.0.*``.

    Example
    -------
    >>> state = convert_upstream_state(
    ...     {"model.masked_spec_embed": torch.zeros(4)},
    ...     {
    ...         "0.attn_pooling_w.weight": torch.zeros(1, 4),
    ...         "0.attn_pooling_w.bias": torch.zeros(1),
    ...         "1.weight": torch.zeros(4, 4),
    ...         "1.bias": torch.zeros(4),
    ...     },
    ... )
    >>> sorted(state)  # doctest: +NORMALIZE_WHITESPACE
    ['encoder.model.masked_spec_embed', 'head.pooling.attn_pooling_w.bias',
     'head.pooling.attn_pooling_w.weight', 'head.projection.0.bias',
     'head.projection.0.weight']
    """
    state = {}
    for key, value in wav2vec2_state.items():
        bare = key[len("model.") :] if key.startswith("model.") else key
        state[f"encoder.model.{bare}"] = value
    pooling = {}
    others = {}
    for key, value in model_state.items():
        match = re.search(r"attn_pooling_w\.(weight|bias)$", key)
        if match:
            pooling[match.group(1)] = value
        else:
            others[key] = value
    if set(pooling) != {"weight", "bias"}:
        raise ValueError(
            "model.ckpt has no attention pooling (attn_pooling_w.weight and "
            f".bias); its keys: {sorted(model_state)}"
        )
    for name, value in pooling.items():
        state[f"head.pooling.attn_pooling_w.{name}"] = value
    prefixes = {key.rsplit(".", 1)[0] for key in others}
    if len(prefixes) > 1:
        raise ValueError(
            "model.ckpt holds more than the pooling and one linear "
            f"projection: {sorted(model_state)}"
        )
    if prefixes:
        prefix = prefixes.pop()
        for name in ("weight", "bias"):
            key = f"{prefix}.{name}" if prefix else name
            if key not in others:
                raise ValueError(f"model.ckpt: projection lacks {key}")
            state[f"head.projection.0.{name}"] = others[key]
    return state


def _load_state(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RuntimeError(f"cannot read checkpoint {path}: {error}") from error


def student_state_dict(folder, layout):
    """The ``SenseStudent`` state dict of a checkpoint folder.

    Arguments
    ---------
    folder : Path
        Checkpoint folder (see :func:`find_checkpoint`).
    layout : str
        ``"sense"`` or ``"upstream"``.

    Returns
    -------
    dict
        Parameter name -> tensor.
    """
    folder = Path(folder)
    if layout == "sense":
        return _load_state(folder / "student.ckpt")
    return convert_upstream_state(
        _load_state(folder / "wav2vec2.ckpt"),
        _load_state(folder / "model.ckpt"),
    )


def resolve_recipe_path(path, hparams_file):
    """A path from a recipe's hparams, valid from the current directory.

    Recipes write paths relative to the folder ``train.py`` ran in (e.g.
    ``results/sense_tiny/1986/tiny_w2v_bert``), which is an ancestor of the
    saved ``hyperparams.yaml``; exporting from elsewhere must find it there.
    Hub ids and paths that exist as given are returned unchanged.

    Arguments
    ---------
    path : str
        Path or hub id from the hparams.
    hparams_file : str or Path
        The recipe's saved ``hyperparams.yaml``.

    Returns
    -------
    str

    Example
    -------
    >>> import tempfile, os
    >>> run = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(run, "results/x/enc"))
    >>> hp = os.path.join(run, "results/x/hyperparams.yaml")
    >>> resolve_recipe_path("results/x/enc", hp) == os.path.join(run, "results/x/enc")
    True
    >>> resolve_recipe_path("facebook/w2v-bert-2.0", hp)
    'facebook/w2v-bert-2.0'
    """
    if Path(path).is_absolute() or Path(path).exists():
        return str(path)
    for folder in Path(hparams_file).resolve().parents:
        if (folder / path).exists():
            return str(folder / path)
    return str(path)


def read_training_hparams(path):
    """Plain facts from a recipe's resolved ``hyperparams.yaml``.

    The file is parsed, not loaded: loading would build the teacher and the
    encoder (and download them).

    Arguments
    ---------
    path : str or Path
        The ``hyperparams.yaml`` that SpeechBrain copies into the recipe's
        output folder.

    Returns
    -------
    dict
        ``encoder_source``, ``encoder_cache``, ``output_norm``,
        ``activation``, ``teacher`` (a description), ``teacher_dim``,
        ``languages``, ``data_folder`` (absent when not found).
    """
    from ruamel.yaml import YAML

    try:
        data = YAML(typ="rt").load(Path(path).read_text(encoding="utf-8"))
    except Exception as error:
        raise ValueError(f"cannot parse {path}: {error}") from error
    facts = {}
    encoder = data.get("encoder")
    if isinstance(encoder, Mapping):
        source = encoder.get("source")
        # The tiny recipe writes its random encoder with an !apply: the
        # directory is the call's out_dir.
        if isinstance(source, Mapping):
            source = source.get("out_dir")
        if source is not None:
            facts["encoder_source"] = str(source)
        if encoder.get("save_path") is not None:
            facts["encoder_cache"] = str(encoder["save_path"])
        facts["output_norm"] = bool(encoder.get("output_norm", False))
    head = data.get("head")
    if isinstance(head, Mapping):
        facts["activation"] = str(head.get("activation", "tanh"))
    teacher = data.get("teacher")
    if teacher is not None:
        tag = getattr(getattr(teacher, "tag", None), "value", None) or ""
        name = tag.split(":", 1)[-1].rsplit(".", 1)[-1] or str(teacher)
        source = data.get("teacher_source")
        if isinstance(teacher, Mapping) and teacher.get("source"):
            source = teacher["source"]
        facts["teacher"] = f"{name} ({source})" if source else name
    for key in ("teacher_dim", "data_folder"):
        if data.get(key) is not None:
            facts[key] = data[key]
    languages = data.get("languages")
    if isinstance(languages, str):
        # languages: auto -- the prepared languages are the report's keys.
        report = Path(path).parent / "save" / "prepare_report.json"
        languages = _read_json(report) if report.is_file() else None
    if languages is not None:
        facts["languages"] = [str(lang) for lang in languages]
    return facts


def _head_shape(state):
    """Encoder width, embedding width and projection flag from weights."""
    try:
        encoder_dim = state["head.pooling.attn_pooling_w.weight"].shape[1]
    except KeyError:
        raise ValueError(
            "the checkpoint has no head.pooling.attn_pooling_w.weight: not "
            "a SENSE student"
        ) from None
    projection = "head.projection.0.weight" in state
    embedding_dim = (
        state["head.projection.0.weight"].shape[0]
        if projection
        else encoder_dim
    )
    return int(encoder_dim), int(embedding_dim), projection


def fill_template(values, template=TEMPLATE):
    """The inference hparams with every ``!PLACEHOLDER`` filled in.

    Arguments
    ---------
    values : dict
        Top-level key -> value (Python scalars, written as YAML).
    template : str or Path
        The template file.

    Returns
    -------
    str
        The filled yaml text.

    Example
    -------
    >>> text = fill_template(
    ...     {
    ...         "encoder_dim": 32,
    ...         "output_norm": False,
    ...         "embedding_dim": 16,
    ...         "projection": True,
    ...         "activation": "tanh",
    ...     }
    ... )
    >>> "encoder_dim: 32" in text, ": !PLACEHOLDER" in text
    (True, False)
    """
    import yaml

    text = Path(template).read_text(encoding="utf-8")
    for key, value in values.items():
        scalar = yaml.safe_dump(value, default_flow_style=True)
        scalar = scalar.strip().removesuffix("...").strip()
        text, count = re.subn(
            rf"^({re.escape(key)}): !PLACEHOLDER",
            lambda match, scalar=scalar: f"{match.group(1)}: {scalar}",
            text,
            flags=re.M,
        )
        if count != 1:
            raise ValueError(f"{template} has no placeholder for {key!r}")
    left = re.findall(r"^(\w+): !PLACEHOLDER", text, flags=re.M)
    if left:
        raise ValueError(f"no value given for {left} of {template}")
    return text


def save_encoder_files(encoder_source, out_dir, cache_dir=None):
    """Copies the encoder's HuggingFace config and feature extractor.

    Arguments
    ---------
    encoder_source : str
        Hub id (from the local HuggingFace cache) or directory.
    out_dir : Path
        Model directory.
    cache_dir : str, optional
        HuggingFace cache the recipe used.
    """
    from transformers import AutoConfig, AutoFeatureExtractor

    try:
        config = AutoConfig.from_pretrained(encoder_source, cache_dir=cache_dir)
        extractor = AutoFeatureExtractor.from_pretrained(
            encoder_source, cache_dir=cache_dir
        )
    except OSError as error:
        raise FileNotFoundError(
            f"cannot read the encoder's HuggingFace config from "
            f"{encoder_source!r} (give --encoder-source: a local directory "
            f"or a cached hub id): {error}"
        ) from error
    config.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)


def export_student(
    state,
    encoder_source,
    out_dir,
    activation="tanh",
    output_norm=False,
    card="",
    cache_dir=None,
    check=True,
):
    """Writes a model directory from a ``SenseStudent`` state dict.

    Arguments
    ---------
    state : dict
        ``SenseStudent`` state dict (``encoder.model.*``, ``head.*``).
    encoder_source : str
        HuggingFace directory or cached hub id of the encoder (for its
        config and feature extractor; its weights are not used).
    out_dir : str or Path
        Model directory (created; existing files are replaced).
    activation : str
        Activation after the head's projection (``"tanh"`` or ``"none"``).
    output_norm : bool
        Whether the encoder layer-normalises its output frames.
    card : str
        Model card (``README.md``) text.
    cache_dir : str, optional
        HuggingFace cache directory.
    check : bool
        Load the written model back (every weight must match the
        hyperparams) and embed one second of noise.

    Returns
    -------
    Path
        ``out_dir``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> from speechbrain_sense.w2v_bert import SenseW2VBert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> out = export_student(student.state_dict(), d, tempfile.mkdtemp())
    >>> sorted(p.name for p in out.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['README.md', 'config.json', 'embedding_model.ckpt', 'hyperparams.yaml',
     'preprocessor_config.json']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_dim, embedding_dim, projection = _head_shape(state)
    save_encoder_files(encoder_source, out_dir, cache_dir)
    text = fill_template(
        {
            "encoder_dim": encoder_dim,
            "output_norm": bool(output_norm),
            "embedding_dim": embedding_dim,
            "projection": projection,
            "activation": activation,
        }
    )
    (out_dir / "hyperparams.yaml").write_text(text, encoding="utf-8")
    torch.save(
        {key: value.detach().cpu() for key, value in state.items()},
        out_dir / WEIGHTS_FILE,
    )
    (out_dir / "README.md").write_text(card or _minimal_card(), "utf-8")
    if check:
        _check_loads(out_dir)
    return out_dir


def _check_loads(model_dir):
    import tempfile

    from speechbrain_sense.inference import SenseEncoder

    with tempfile.TemporaryDirectory() as savedir:
        model = SenseEncoder.from_hparams(
            source=str(model_dir), savedir=savedir, run_opts={"device": "cpu"}
        )
        noise = torch.randn(1, model.sample_rate, generator=_generator())
        emb = model.encode_batch(0.1 * noise)
    if not torch.isfinite(emb).all():
        raise RuntimeError(f"{model_dir}: the exported model embeds to NaN")


def _generator():
    return torch.Generator().manual_seed(0)


def _minimal_card():
    return (
        "# SENSE speech encoder\n\n"
        "Load with `speechbrain_sense.inference.SenseEncoder.from_hparams`"
        " or SpeechBrain's `EncoderClassifier.from_hparams`.\n"
    )


def _recipe_folder(ckpt_folder):
    """The recipe output folder (``<out>/save/CKPT+...``), if it is one."""
    output = Path(ckpt_folder).resolve().parent.parent
    if (output / "hyperparams.yaml").is_file():
        return output
    return None


def _read_json(path):
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def model_card(ckpt_folder, layout, facts, state, activation):
    """The ``README.md`` of an exported model.

    Arguments
    ---------
    ckpt_folder : Path
        The exported checkpoint.
    layout : str
        ``"sense"`` or ``"upstream"``.
    facts : dict
        :func:`read_training_hparams` output (may be empty).
    state : dict
        The exported state dict (for sizes).
    activation : str
        Activation after the projection.

    Returns
    -------
    str
        Markdown.
    """
    encoder_dim, embedding_dim, projection = _head_shape(state)
    parameters = sum(v.numel() for v in state.values())
    meta = _read_ckpt_meta(ckpt_folder)
    recipe = _recipe_folder(ckpt_folder)
    report = (
        _read_json(recipe / "save" / "prepare_report.json") if recipe else None
    )
    dev = _read_json(recipe / "dev_metrics.json") if recipe else None
    test = _read_json(recipe / "test_metrics.json") if recipe else None
    head = "length-masked attentive pooling"
    if projection:
        head += f" + Linear({encoder_dim} -> {embedding_dim})"
        head += " + tanh" if activation == "tanh" else ""
    origin = (
        "this project's `recipes/CommonVoice/SENSE`"
        if layout == "sense"
        else "the upstream SpeechBrain SENSE recipe (converted)"
    )
    lines = [
        "# SENSE speech encoder",
        "",
        "A semantic speech encoder (SENSE, arXiv 2509.12093): the utterance "
        "embedding is trained to match the frozen sentence embedding of the "
        "transcript, so speech and text share one space.",
        "",
        "| | |",
        "|---|---|",
        f"| encoder | w2v-BERT 2.0 architecture, {encoder_dim}-d frames "
        f"({facts.get('encoder_source', 'source unknown')}) |",
        f"| head | {head}, L2-normalised, {embedding_dim}-d |",
        f"| parameters | {parameters / 1e6:.2f}M |",
        f"| teacher | {facts.get('teacher', 'unknown')}"
        + (f", {facts['teacher_dim']}-d |" if "teacher_dim" in facts else " |"),
        f"| languages | {', '.join(facts.get('languages', [])) or 'unknown'} |",
        f"| training data | {facts.get('data_folder', 'unknown')} |",
        f"| trained with | {origin} |",
        f"| checkpoint | `{Path(ckpt_folder).name}`"
        + (f", epoch {meta['epoch']}" if "epoch" in meta else "")
        + " |",
    ]
    if isinstance(meta.get("R@1"), (int, float)):
        lines.append(
            "| dev R@1 (mean over languages, speech to text) | "
            f"{100 * meta['R@1']:.1f}% |"
        )
    if report:
        lines += [
            "",
            "## Training data",
            "",
            "| language | train utterances | train hours | dev | test |",
            "|---|---|---|---|---|",
        ]
        for lang, splits in report.items():
            train = splits.get("train", {})
            lines.append(
                f"| {lang} | {train.get('kept', '-')} | "
                f"{train.get('kept_hours', 0):.2f} | "
                f"{splits.get('dev', {}).get('kept', '-')} | "
                f"{splits.get('test', {}).get('kept', '-')} |"
            )
    for title, metrics in (
        ("Test retrieval (this checkpoint)", test),
        ("Dev retrieval (last validated epoch)", dev),
    ):
        if not metrics:
            continue
        lines += [
            "",
            f"## {title}",
            "",
            "Speech to text, each utterance against the distinct "
            "transcripts of its language.",
            "",
            "| language | utterances | candidates | R@1 | R@5 | R@10 |",
            "|---|---|---|---|---|---|",
        ]
        for lang, row in metrics.items():
            if not isinstance(row, Mapping):
                continue
            lines.append(
                f"| {lang} | {row.get('count', '-')} | "
                f"{row.get('candidates', '-')} | "
                + " | ".join(
                    f"{100 * row[k]:.1f}" for k in ("R@1", "R@5", "R@10")
                )
                + " |"
            )
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from speechbrain.inference.classifiers import EncoderClassifier",
        "",
        'model = EncoderClassifier.from_hparams(source="<this folder>", '
        'savedir="tmp")',
        "emb = model.encode_batch(wavs, wav_lens)  # [B, 1, D], 16 kHz input",
        "",
        "from speechbrain_sense.inference import SenseEncoder",
        "",
        'model = SenseEncoder.from_hparams(source="<this folder>", '
        'savedir="tmp")',
        'emb = model.encode_file("speech.wav")  # [D], any rate or channels',
        "frames, counts = model.encode_frames(wavs, wav_lens)",
        "weights, counts = model.attention_weights(wavs, wav_lens)",
        "```",
        "",
    ]
    return "\n".join(lines)


def export_model(
    checkpoint,
    out_dir,
    encoder_source=None,
    hparams_file=None,
    activation=None,
    check=True,
):
    """Exports a training checkpoint as a SpeechBrain model directory.

    Arguments
    ---------
    checkpoint : str or Path
        Recipe save folder, ``CKPT+*`` folder, or upstream checkpoint folder.
    out_dir : str or Path
        Model directory to write.
    encoder_source : str, optional
        The encoder's HuggingFace directory or hub id (default: read from
        the recipe's hyperparameters).
    hparams_file : str or Path, optional
        The recipe's resolved ``hyperparams.yaml`` (default:
        ``<checkpoint>/../../hyperparams.yaml`` when it exists).
    activation : str, optional
        Activation after the projection (default: the recipe's, or
        ``"none"`` for upstream checkpoints).
    check : bool
        Load the result back and embed noise.

    Returns
    -------
    Path
        ``out_dir``.
    """
    folder, layout = find_checkpoint(checkpoint)
    if hparams_file is None:
        recipe = _recipe_folder(folder)
        hparams_file = recipe / "hyperparams.yaml" if recipe else None
    facts = read_training_hparams(hparams_file) if hparams_file else {}
    if encoder_source is None and "encoder_source" in facts:
        encoder_source = resolve_recipe_path(
            facts["encoder_source"], hparams_file
        )
    if encoder_source is None:
        raise ValueError(
            f"{folder}: the encoder's HuggingFace directory is unknown (no "
            "recipe hyperparams.yaml next to the checkpoint); give "
            "encoder_source / --encoder-source"
        )
    if activation is None:
        activation = facts.get(
            "activation", "tanh" if layout == "sense" else "none"
        )
    state = student_state_dict(folder, layout)
    card = model_card(folder, layout, facts, state, activation)
    out_dir = export_student(
        state,
        encoder_source,
        out_dir,
        activation=activation,
        output_norm=facts.get("output_norm", False),
        card=card,
        cache_dir=facts.get("encoder_cache"),
        check=check,
    )
    if hparams_file:
        shutil.copyfile(hparams_file, out_dir / "training_hyperparams.yaml")
    return out_dir


def main(argv=None):
    """Command line: ``python -m speechbrain_sense.export --help``."""
    parser = argparse.ArgumentParser(
        description="Export a SENSE checkpoint as a SpeechBrain model folder."
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="recipe save folder, one CKPT+* folder, or an upstream SENSE "
        "checkpoint folder (wav2vec2.ckpt + model.ckpt)",
    )
    parser.add_argument("--out", required=True, help="model folder to write")
    parser.add_argument(
        "--encoder-source",
        help="HuggingFace folder or cached hub id of the encoder (default: "
        "from the recipe's hyperparams.yaml)",
    )
    parser.add_argument(
        "--hparams", help="the recipe's resolved hyperparams.yaml"
    )
    parser.add_argument(
        "--activation",
        choices=("tanh", "none"),
        help="activation after the projection (default: the recipe's)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="do not load the exported model back",
    )
    args = parser.parse_args(argv)
    out = export_model(
        args.checkpoint,
        args.out,
        encoder_source=args.encoder_source,
        hparams_file=args.hparams,
        activation=args.activation,
        check=not args.no_check,
    )
    print(f"Exported {args.checkpoint} to {out}")
    return out


if __name__ == "__main__":
    main()
