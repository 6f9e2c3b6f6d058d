"""SENSE training checkpoints: find them, read them, convert upstream ones.

Two layouts are accepted:

* this project's recipe (``recipes/CommonVoice/SENSE``): a save folder
  with ``CKPT+*`` folders, each holding ``student.ckpt`` (the state dict
  of ``SenseStudent``: ``encoder.model.*``, ``head.*``); the recipe's
  resolved ``hyperparams.yaml`` sits two levels up;
* the upstream SpeechBrain SENSE recipe: ``wav2vec2.ckpt`` (SpeechBrain
  ``W2VBert``, keys ``model.*``) and ``model.ckpt`` (a ``ModuleList``
  with ``AttentionPooling``, keys ``0.attn_pooling_w.{weight,bias}``, and
  in the older ``train.yaml`` a ``Linear`` projection, ``1.{weight,bias}``).

Used by :mod:`speechbrain_sense.encoders.export` (which writes model folders) and
nothing here imports it back.

Authors
 * speechbrain-sense developers 2026
"""

import json
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from speechbrain_sense.teachers.sentence_encoders import (
    TEACHER_BUILDERS,
    TEACHER_LANGUAGES,
)

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
        """Sort key: the dev R@1 it was saved with, then its name.

        Arguments
        ---------
        folder : Path
            A candidate ``CKPT+*`` folder.

        Returns
        -------
        tuple
            ``(R@1 or -1.0, folder name)``.
        """
        meta = read_ckpt_meta(folder)
        r1 = meta.get("R@1")
        return (r1 if isinstance(r1, (int, float)) else -1.0, folder.name)

    best = max(candidates, key=preference)
    return find_checkpoint(best)


def read_ckpt_meta(folder):
    """The ``CKPT.yaml`` metadata SpeechBrain writes (empty if absent).

    Arguments
    ---------
    folder : str or Path
        A ``CKPT+*`` folder.

    Returns
    -------
    dict
        Its meta values (``R@1``, ``epoch`` ...).
    """
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
    """A tensor state dict from disk, with the file named on failure.

    Arguments
    ---------
    path : Path
        A ``torch.save``-d state dict.

    Returns
    -------
    dict
    """
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
        ``projection`` (or, for a run from before that key,
        ``legacy_projection``: the structure of a projection if the
        weights have one), ``teacher`` (a description), ``teacher_spec``
        (see :func:`teacher_spec`), ``teacher_dim``,
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
    if isinstance(head, Mapping) and "projection" in head:
        facts["projection"] = str(head["projection"])
    elif isinstance(head, Mapping):
        # A run from before the projection key: the head projected only
        # when the widths differed (or force_projection), and its
        # activation said whether a tanh followed. The weights tell
        # whether it projected.
        tanh = str(head.get("activation", "tanh")) == "tanh"
        facts["legacy_projection"] = "linear_tanh" if tanh else "linear"
    teacher = data.get("teacher")
    if teacher is not None:
        tag = getattr(getattr(teacher, "tag", None), "value", None) or ""
        name = tag.split(":", 1)[-1].rsplit(".", 1)[-1] or str(teacher)
        source = data.get("teacher_source")
        if isinstance(teacher, Mapping) and teacher.get("source"):
            source = teacher["source"]
        facts["teacher"] = f"{name} ({source})" if source else name
        spec = teacher_spec(teacher)
        if spec is not None:
            facts["teacher_spec"] = spec
    for key in ("teacher_dim", "data_folder"):
        if data.get(key) is not None:
            facts[key] = data[key]
    languages = data.get("languages")
    if isinstance(languages, str):
        # languages: auto -- the prepared languages are the report's keys.
        report = Path(path).parent / "save" / "prepare_report.json"
        languages = read_json(report) if report.is_file() else None
    if languages is not None:
        facts["languages"] = [str(lang) for lang in languages]
    language_filter = data.get("language_filter")
    if language_filter in TEACHER_LANGUAGES and "languages" in facts:
        covered = set(TEACHER_LANGUAGES[language_filter])
        facts["languages"] = [
            lang for lang in facts["languages"] if lang in covered
        ]
    return facts


def teacher_spec(node):
    """How to rebuild a recipe's teacher, from its resolved yaml node.

    Arguments
    ---------
    node : object
        The ``teacher`` value of a resolved ``hyperparams.yaml``, parsed
        by ruamel (a tagged mapping such as ``!apply:speechbrain_sense.
        teachers.teacher_from_source {source: ..., pooling: cls}``).

    Returns
    -------
    dict or None
        ``{"builder": name, "arguments": {...}}`` for
        :func:`speechbrain_sense.teachers.sentence_encoders.teacher_from_spec`, without the
        machine's ``cache_dir``; ``None`` when the node is not a call of
        one of :data:`speechbrain_sense.teachers.sentence_encoders.TEACHER_BUILDERS` with
        plain keyword arguments.
    """
    tag = getattr(getattr(node, "tag", None), "value", None) or ""
    builder = tag.split(":", 1)[-1].rsplit(".", 1)[-1]
    if builder not in TEACHER_BUILDERS or not isinstance(node, Mapping):
        return None
    arguments = {}
    for key, value in node.items():
        if key == "cache_dir":
            continue
        # ruamel's scalar subclasses become plain JSON values.
        for kind in (bool, int, float, str):
            if isinstance(value, kind):
                arguments[str(key)] = kind(value)
                break
        else:
            if value is not None:
                return None
            arguments[str(key)] = None
    return {"builder": builder, "arguments": arguments}


def recipe_folder(ckpt_folder):
    """The recipe output folder (``<out>/save/CKPT+...``), if it is one.

    Arguments
    ---------
    ckpt_folder : str or Path
        A ``CKPT+*`` folder.

    Returns
    -------
    Path or None
        The folder holding the recipe's ``hyperparams.yaml``.
    """
    output = Path(ckpt_folder).resolve().parent.parent
    if (output / "hyperparams.yaml").is_file():
        return output
    return None


def read_json(path):
    """A JSON file's content, or None when the file does not exist.

    Arguments
    ---------
    path : str or Path
        JSON file.

    Returns
    -------
    object or None
    """
    path = Path(path)
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
