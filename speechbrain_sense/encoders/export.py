"""Export a trained SENSE checkpoint as a self-contained SpeechBrain model.

::

    python -m speechbrain_sense.encoders.export --checkpoint <recipe save folder> \\
        --out <model dir> [--encoder-source DIR_OR_HUB_ID] \\
        [--repo-id org/name] [--format speechbrain|onnx]

writes a directory that loads with nothing but SpeechBrain installed,
from a folder or from the Hub::

    <model dir>/hyperparams.yaml          inference hparams, self-contained:
                                          the encoder's HuggingFace config
                                          and feature extractor are inline
                                          (template: the package's
                                          hparams/sense_inference.yaml, or
                                          sense_inference_xls_r.yaml for
                                          an XLS-R student)
    <model dir>/embedding_model.ckpt      encoder + head weights
    <model dir>/custom.py                 the classes the yaml builds
                                          (custom_module_source)
    <model dir>/README.md                 model card: Hub front matter,
                                          data, languages, teacher, R@1
    <model dir>/config.json               the encoder's HuggingFace config
    <model dir>/preprocessor_config.json  its feature extractor (read by
                                          downstream recipes' features)
    <model dir>/training_hyperparams.yaml the recipe's resolved hparams

Only the first three are needed to load it::

    foreign_class(source, pymodule_file="custom.py",
                  classname="SenseEncoderInterface")  # SpeechBrain only
    speechbrain_sense.encoders.inference.SenseEncoder.from_hparams(source)

``--format onnx`` also writes ``<model dir>/onnx/`` with
:mod:`speechbrain_sense.encoders.onnx_export`; ``--repo-id org/name`` names the Hub
repo in the model card's snippet.

Two checkpoint layouts are accepted, found automatically:

* this project's recipe (``recipes/CommonVoice/SENSE``): a save folder
  with ``CKPT+*`` folders (the one with the best dev R@1 is exported) or
  one ``CKPT+*`` folder, each holding ``student.ckpt``, the state dict of
  ``SenseStudent`` (``encoder.model.*``, ``head.*``). The encoder's
  HuggingFace directory and the head's ``projection`` come from the
  recipe's ``hyperparams.yaml`` two levels up. The encoder is w2v-BERT 2.0
  (``hparams/sense.yaml`` ...) or XLS-R (``hparams/samu_xlsr.yaml``, the
  SAMU-XLSR baseline); its config's ``model_type`` (``wav2vec2-bert`` or
  ``wav2vec2``) picks the template.
* the upstream SpeechBrain SENSE recipe: ``wav2vec2.ckpt`` (state dict of
  SpeechBrain's ``W2VBert``, keys ``model.*``) and ``model.ckpt`` (a
  ``ModuleList`` holding ``AttentionPooling``, keys
  ``0.attn_pooling_w.{weight,bias}``, and in the older ``train.yaml`` a
  ``Linear`` projection without activation, keys ``1.{weight,bias}``,
  exported as ``projection: linear``).
  Its ``hparams`` do not name a local encoder directory, so give
  ``--encoder-source`` (``facebook/w2v-bert-2.0`` from a HuggingFace cache,
  or a local copy). Upstream pooling softmaxes over padded frames too; the
  exported model masks them, which changes nothing for one utterance at a
  time and makes batched embeddings equal to single ones.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import ast
import importlib
import json
import re
import shutil
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import torch

from speechbrain_sense.encoders.checkpoint import (
    find_checkpoint,
    read_ckpt_meta,
    read_json,
    read_training_hparams,
    recipe_folder,
    resolve_recipe_path,
    student_state_dict,
)
from speechbrain_sense.encoders.pooling import PROJECTIONS
from speechbrain_sense.teachers.sentence_encoders import TRAINING_FILE

TEMPLATE_NAME = "sense_inference.yaml"
# The inference template of each encoder, by its HuggingFace model_type.
TEMPLATES = {
    "wav2vec2-bert": TEMPLATE_NAME,  # w2v-BERT 2.0 (SENSE)
    "wav2vec2": "sense_inference_xls_r.yaml",  # XLS-R (SAMU-XLSR)
}
WEIGHTS_FILE = "embedding_model.ckpt"
CUSTOM_FILE = "custom.py"
# Bundled into custom.py, in this order: each imports only the ones before.
CUSTOM_MODULES = (
    "speechbrain_sense.encoders.w2v_bert",
    "speechbrain_sense.encoders.xls_r",
    "speechbrain_sense.encoders.long_form",
    "speechbrain_sense.encoders.pooling",
    "speechbrain_sense.encoders.pretrained",
)
# What SpeechBrain fetches from a hub repo to load the model. The other
# files of the folder are for people and for downstream recipes.
LOADING_FILES = ("hyperparams.yaml", WEIGHTS_FILE, CUSTOM_FILE)
DEFAULT_REPO_ID = "<org>/<name>"
# The teacher of the upstream SENSE recipe (train_sense.yaml's bge_model).
UPSTREAM_TEACHER = {"builder": "bge_m3", "arguments": {"source": "BAAI/bge-m3"}}


def _head_shape(state):
    """Encoder width, embedding width and projection flag from weights.

    Arguments
    ---------
    state : dict
        ``SenseStudent`` state dict.

    Returns
    -------
    encoder_dim : int
        Width of the w2v-BERT frames (the attention's input).
    embedding_dim : int
        Width of the embedding (the projection's output, else
        ``encoder_dim``).
    projection : bool
        Whether the head has a linear projection.
    """
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


def head_projection(state, projection=None):
    """The head structure of a state dict, checked against the one asked for.

    Weights tell whether there is a projection, not whether a tanh follows
    it: ``projection`` says that.

    Arguments
    ---------
    state : dict
        ``SenseStudent`` state dict.
    projection : str, optional
        ``"linear_tanh"``, ``"linear"`` or ``"none"`` (default: ``"none"``
        without projection weights, ``"linear_tanh"`` with them).

    Returns
    -------
    str
        The ``SenseEmbeddingHead`` projection to build.

    Example
    -------
    >>> state = {"head.projection.0.weight": torch.zeros(4, 8)}
    >>> head_projection(state), head_projection(state, "linear")
    ('linear_tanh', 'linear')
    >>> head_projection({}, "linear")
    Traceback (most recent call last):
      ...
    ValueError: projection 'linear' asks for a projection, but the checkpoint has no head.projection.0.weight
    """
    has_projection = "head.projection.0.weight" in state
    if projection is None:
        return "linear_tanh" if has_projection else "none"
    if projection not in PROJECTIONS:
        raise ValueError(
            f"projection must be one of {', '.join(PROJECTIONS)}, not "
            f"{projection!r}"
        )
    if has_projection and projection == "none":
        raise ValueError(
            "projection 'none', but the checkpoint has a projection "
            "(head.projection.0.weight): use linear or linear_tanh"
        )
    if not has_projection and projection != "none":
        raise ValueError(
            f"projection {projection!r} asks for a projection, but the "
            "checkpoint has no head.projection.0.weight"
        )
    return projection


def template_text(name=TEMPLATE_NAME):
    """An inference hparams template shipped inside the package.

    Arguments
    ---------
    name : str
        A file of :data:`TEMPLATES` (default: w2v-BERT 2.0's).

    Returns
    -------
    str
        ``speechbrain_sense/hparams/<name>``, read through
        ``importlib.resources`` (so it is found in a wheel, a zip or an
        editable install alike).
    """
    template = resources.files("speechbrain_sense") / "hparams" / name
    return template.read_text(encoding="utf-8")


def _yaml_value(value):
    """YAML text of a value: a flow scalar, or an indented block mapping.

    Arguments
    ---------
    value : object
        A Python scalar, list or dict.

    Returns
    -------
    str
        ``" 32"`` for a scalar (with its leading space), or a newline and
        the mapping indented by four spaces.
    """
    import yaml

    if isinstance(value, Mapping):
        block = yaml.safe_dump(
            dict(value), default_flow_style=False, sort_keys=True, width=78
        )
        return "\n" + "".join(
            f"    {line}\n" if line else "\n"
            for line in block.rstrip("\n").split("\n")
        ).rstrip("\n")
    scalar = yaml.safe_dump(value, default_flow_style=True)
    return " " + scalar.strip().removesuffix("...").strip()


def fill_template(values, template=None, template_name=TEMPLATE_NAME):
    r"""The inference hparams with every ``!PLACEHOLDER`` filled in.

    Arguments
    ---------
    values : dict
        Top-level key -> value. Scalars are written inline, mappings (the
        HuggingFace configs) as indented block YAML under their key.
    template : str or Path, optional
        A template file (default: the package's template
        ``template_name``).
    template_name : str
        The packaged template used without ``template``: one of
        :data:`TEMPLATES` (default: w2v-BERT 2.0's
        ``sense_inference.yaml``).

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
    ...         "encoder_config": {"model_type": "wav2vec2-bert"},
    ...         "feature_extractor_config": {"sampling_rate": 16000},
    ...         "embedding_dim": 16,
    ...         "projection": "linear_tanh",
    ...     }
    ... )
    >>> "encoder_dim: 32" in text, ": !PLACEHOLDER" in text
    (True, False)
    >>> "encoder_config:\n    model_type: wav2vec2-bert\n" in text
    True
    """
    if template is None:
        name, text = template_name, template_text(template_name)
    else:
        name, text = str(template), Path(template).read_text(encoding="utf-8")
    for key, value in values.items():
        written = _yaml_value(value)
        block = isinstance(value, Mapping)
        text, count = re.subn(
            rf"^({re.escape(key)}): !PLACEHOLDER(.*)$",
            # A trailing comment stays on the key's line, above a block.
            lambda match, written=written, block=block: (
                f"{match.group(1)}:{match.group(2).rstrip()}{written}"
                if block
                else f"{match.group(1)}:{written}{match.group(2)}"
            ),
            text,
            flags=re.M,
        )
        if count != 1:
            raise ValueError(f"{name} has no placeholder for {key!r}")
    left = re.findall(r"^(\w+): !PLACEHOLDER", text, flags=re.M)
    if left:
        raise ValueError(f"no value given for {left} of {name}")
    return text


def encoder_configs(encoder_source, cache_dir=None):
    """The encoder's HuggingFace config and feature extractor.

    Arguments
    ---------
    encoder_source : str
        Hub id (from the local HuggingFace cache) or directory.
    cache_dir : str, optional
        HuggingFace cache the recipe used.

    Returns
    -------
    config : transformers.PretrainedConfig
        The encoder's config: ``model_type`` ``"wav2vec2-bert"`` (w2v-BERT
        2.0) or ``"wav2vec2"`` (XLS-R, with layer norm in its
        convolutional encoder).
    extractor : transformers.FeatureExtractionMixin
        Its feature extractor.
    """
    from transformers import AutoConfig, AutoFeatureExtractor

    from speechbrain_sense.encoders.xls_r import check_xls_r_config

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
    if config.model_type not in TEMPLATES:
        # The model folder's hyperparams.yaml builds one of these encoders.
        raise ValueError(
            f"{encoder_source} is a {config.model_type} model: the export "
            "writes w2v-BERT 2.0 (model_type 'wav2vec2-bert') and XLS-R "
            "(model_type 'wav2vec2') students only"
        )
    if config.model_type == "wav2vec2":
        check_xls_r_config(config, encoder_source)
    return config, extractor


def config_values(config, extractor):
    """The two configs as the plain dicts the yaml holds inline.

    Arguments
    ---------
    config : transformers.PretrainedConfig
        The encoder's config.
    extractor : transformers.FeatureExtractionMixin
        Its feature extractor.

    Returns
    -------
    encoder_config : dict
        ``config.json`` without private keys (``_name_or_path`` is the
        local folder it was read from).
    feature_extractor_config : dict
        ``preprocessor_config.json``, with ``feature_extractor_type``.
    """
    encoder_config = {
        key: value
        for key, value in config.to_dict().items()
        if not key.startswith("_")
    }
    extractor_config = {
        key: value
        for key, value in extractor.to_dict().items()
        if not key.startswith("_")
    }
    return encoder_config, extractor_config


def custom_module_source():
    """The ``custom.py`` of a model folder: the classes its yaml builds.

    The modules of :data:`CUSTOM_MODULES` concatenated, each without its
    imports of ``speechbrain_sense`` (the names they import are defined
    above them in the same file), so the folder loads with SpeechBrain's
    ``foreign_class`` where this package is not installed.

    Returns
    -------
    str
        Python source.

    Example
    -------
    >>> source = custom_module_source()
    >>> [  # its own imports of the package are gone (doctests keep theirs)
    ...     node.lineno
    ...     for node in ast.walk(ast.parse(source))
    ...     if isinstance(node, ast.ImportFrom)
    ...     and node.module.startswith("speechbrain_sense")
    ... ]
    []
    >>> "class SenseEncoderInterface(EncoderClassifier):" in source
    True
    """
    from speechbrain_sense import __version__

    parts = [
        f'"""SENSE speech encoder classes (speechbrain-sense {__version__}).',
        "",
        "Generated by ``python -m speechbrain_sense.encoders.export`` from the modules",
        f"{', '.join(CUSTOM_MODULES)}; hyperparams.yaml builds its",
        "``custom.<Name>`` objects from here. Load the model folder with",
        'SpeechBrain\'s ``foreign_class(source, pymodule_file="custom.py",',
        'classname="SenseEncoderInterface")``.',
        '"""',
        "",
    ]
    defined = {}
    for name in CUSTOM_MODULES:
        module = importlib.import_module(name)
        source = Path(module.__file__).read_text(encoding="utf-8")
        tree = ast.parse(source)
        drop = set()
        for node in ast.walk(tree):
            imported = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if not any(
                m.split(".")[0] == "speechbrain_sense" for m in imported
            ):
                continue
            if node not in tree.body:
                raise ValueError(
                    f"{module.__file__}:{node.lineno}: an import of "
                    "speechbrain_sense inside a function cannot be bundled "
                    "into custom.py; import at module level"
                )
            drop.update(range(node.lineno, node.end_lineno + 1))
        for node in tree.body:
            for target in _defined_names(node):
                if target in defined and not target.startswith("__"):
                    raise ValueError(
                        f"{name} and {defined[target]} both define "
                        f"{target!r}: custom.py would keep only one"
                    )
                defined[target] = name
        lines = [
            line
            for number, line in enumerate(source.split("\n"), start=1)
            if number not in drop
        ]
        parts += [
            "",
            f"# {'-' * 72}",
            f"# {name}",
            f"# {'-' * 72}",
            "\n".join(lines).strip("\n"),
            "",
        ]
    return "\n".join(parts)


def _defined_names(node):
    """Module-level names a statement binds (defs, classes, assignments).

    Arguments
    ---------
    node : ast.stmt
        A top-level statement.

    Returns
    -------
    list of str
        The names; imports are not counted (they may repeat).
    """
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target]
        )
        return [t.id for t in targets if isinstance(t, ast.Name)]
    return []


def export_student(
    state,
    encoder_source,
    out_dir,
    projection=None,
    output_norm=False,
    card="",
    cache_dir=None,
    check=True,
    training=None,
):
    """Writes a model directory from a ``SenseStudent`` state dict.

    Arguments
    ---------
    state : dict
        ``SenseStudent`` state dict (``encoder.model.*``, ``head.*``) of
        a w2v-BERT 2.0 or an XLS-R student.
    encoder_source : str
        HuggingFace directory or cached hub id of the encoder (for its
        config and feature extractor; its weights are not used). Its
        ``model_type`` picks the template (:data:`TEMPLATES`).
    out_dir : str or Path
        Model directory (created; existing files are replaced).
    projection : str, optional
        The head's structure, ``"linear_tanh"``, ``"linear"`` or
        ``"none"`` (default: ``"none"`` when the state has no projection
        weights, else ``"linear_tanh"``); checked against the weights.
    output_norm : bool
        Whether the encoder layer-normalises its output frames.
    card : str
        Model card (``README.md``) text.
    cache_dir : str, optional
        HuggingFace cache directory.
    check : bool
        Load the written model back (every weight must match the
        hyperparams) and embed one second of noise.
    training : dict, optional
        Written as ``training.json``: ``{"teacher": spec, "languages":
        [...]}``, the teacher the model was trained against
        (:func:`speechbrain_sense.teachers.sentence_encoders.teacher_from_spec`) and its
        training languages, which evaluations read
        (:func:`speechbrain_sense.teachers.sentence_encoders.model_teacher`).

    Returns
    -------
    Path
        ``out_dir``.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    >>> from speechbrain_sense.encoders.student import SenseStudent
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert
    >>> from speechbrain_sense.encoders.w2v_bert import SenseW2VBert
    >>> d = str(save_tiny_w2v_bert(tempfile.mkdtemp()))
    >>> student = SenseStudent(SenseW2VBert(d, d), SenseEmbeddingHead(32, 16))
    >>> out = export_student(student.state_dict(), d, tempfile.mkdtemp())
    >>> sorted(p.name for p in out.iterdir())  # doctest: +NORMALIZE_WHITESPACE
    ['README.md', 'config.json', 'custom.py', 'embedding_model.ckpt',
     'hyperparams.yaml', 'preprocessor_config.json']
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_dim, embedding_dim, _ = _head_shape(state)
    projection = head_projection(state, projection)
    config, extractor = encoder_configs(encoder_source, cache_dir)
    encoder_config, extractor_config = config_values(config, extractor)
    text = fill_template(
        {
            "encoder_dim": encoder_dim,
            "output_norm": bool(output_norm),
            "encoder_config": encoder_config,
            "feature_extractor_config": extractor_config,
            "embedding_dim": embedding_dim,
            "projection": projection,
        },
        template_name=TEMPLATES[config.model_type],
    )
    (out_dir / "hyperparams.yaml").write_text(text, encoding="utf-8")
    (out_dir / CUSTOM_FILE).write_text(custom_module_source(), "utf-8")
    # Not read to load the model: downstream recipes compute features
    # with W2VBertFeatures or XLSRFeatures(<model folder or hub id>), as
    # config.json's model_type says, which read them.
    config.save_pretrained(out_dir)
    extractor.save_pretrained(out_dir)
    torch.save(
        {key: value.detach().cpu() for key, value in state.items()},
        out_dir / WEIGHTS_FILE,
    )
    (out_dir / "README.md").write_text(card or _minimal_card(), "utf-8")
    if training is not None:
        (out_dir / TRAINING_FILE).write_text(
            json.dumps(training, indent=1, sort_keys=True) + "\n", "utf-8"
        )
    if check:
        _check_loads(out_dir)
    return out_dir


def _check_loads(model_dir):
    """Loads an exported folder back and embeds one second of noise.

    Also checks that every ``custom.<Name>`` of its yaml is defined in its
    ``custom.py``, which is what ``foreign_class`` will import.

    Arguments
    ---------
    model_dir : Path
        The exported folder.
    """
    import tempfile

    from speechbrain_sense.encoders.pretrained import SenseEncoderInterface

    yaml_text = (model_dir / "hyperparams.yaml").read_text(encoding="utf-8")
    tree = ast.parse((model_dir / CUSTOM_FILE).read_text(encoding="utf-8"))
    defined = {name for node in tree.body for name in _defined_names(node)}
    missing = set(re.findall(r"!\w+:custom\.(\w+)", yaml_text)) - defined
    if missing:
        raise RuntimeError(
            f"{model_dir}: hyperparams.yaml builds custom.{sorted(missing)} "
            f"that {CUSTOM_FILE} does not define"
        )
    with tempfile.TemporaryDirectory() as savedir:
        model = SenseEncoderInterface.from_hparams(
            source=str(model_dir), savedir=savedir, run_opts={"device": "cpu"}
        )
        noise = torch.randn(1, model.sample_rate, generator=_generator())
        emb = model.encode_batch(0.1 * noise)
    if not torch.isfinite(emb).all():
        raise RuntimeError(f"{model_dir}: the exported model embeds to NaN")


def _generator():
    """A CPU generator seeded with 0 (the check's noise is reproducible).

    Returns
    -------
    torch.Generator
    """
    return torch.Generator().manual_seed(0)


def _minimal_card():
    """The model card of a folder exported from a bare state dict.

    Returns
    -------
    str
        Markdown.
    """
    return (
        "# SENSE speech encoder\n\n"
        "Load with SpeechBrain's `foreign_class(source, "
        'pymodule_file="custom.py", classname="SenseEncoderInterface")` or '
        "`speechbrain_sense.encoders.inference.SenseEncoder.from_hparams(source)`.\n"
    )


def _architecture(state):
    """The encoder architecture of a ``SenseStudent`` state dict.

    Arguments
    ---------
    state : dict
        The state dict.

    Returns
    -------
    str
        ``"XLS-R (wav2vec 2.0)"`` when it has wav2vec 2.0's convolutional
        feature encoder, else ``"w2v-BERT 2.0"``.

    Example
    -------
    >>> key = "encoder.model.feature_extractor.conv_layers.0.conv.weight"
    >>> _architecture({key: None}), _architecture({})
    ('XLS-R (wav2vec 2.0)', 'w2v-BERT 2.0')
    """
    prefix = "encoder.model.feature_extractor.conv_layers."
    if any(key.startswith(prefix) for key in state):
        return "XLS-R (wav2vec 2.0)"
    return "w2v-BERT 2.0"


def _public(value):
    """A value for a public model card: a local path becomes its name.

    Arguments
    ---------
    value : object
        A hub id, a path, or anything else.

    Returns
    -------
    str
        ``value`` unchanged unless it names a local path (absolute, or
        relative and existing), which would leak the exporting machine's
        layout and mean nothing to a reader.

    Example
    -------
    >>> _public("/home/me/models/tiny_w2v_bert"), _public("BAAI/bge-m3")
    ('tiny_w2v_bert', 'BAAI/bge-m3')
    """
    text = str(value)
    if Path(text).is_absolute() or (
        ("/" in text or "\\" in text) and Path(text).exists()
    ):
        return Path(text).name
    # "Name (/abs/path)" descriptions, such as the teacher's.
    return re.sub(
        r"\((/[^)]*)\)", lambda match: f"({Path(match[1]).name})", text
    )


def _hub_id(value):
    """Whether ``value`` reads as a HuggingFace hub id (``org/name``).

    Arguments
    ---------
    value : object
        A source from the training hparams.

    Returns
    -------
    bool
    """
    text = str(value)
    return (
        re.fullmatch(r"[\w.-]+/[\w.-]+", text) is not None
        and not Path(text).exists()
    )


def _hub_languages(languages):
    """Common Voice locales as Hub metadata language codes.

    Arguments
    ---------
    languages : list of str
        Common Voice locales (``en``, ``zh-CN``, ``sv-SE`` ...).

    Returns
    -------
    list of str
        Lower-case language subtags, deduplicated, in order
        (``zh-CN`` and ``zh-TW`` are both ``zh``).

    Example
    -------
    >>> _hub_languages(["en", "zh-CN", "zh-TW", "sv-SE"])
    ['en', 'zh', 'sv']
    """
    codes = []
    for language in languages:
        code = str(language).split("-")[0].lower()
        if code not in codes:
            codes.append(code)
    return codes


def _common_voice_dataset(data_folder):
    """The Hub dataset id of a Common Voice release folder, if it is one.

    Arguments
    ---------
    data_folder : str or None
        The recipe's ``data_folder``.

    Returns
    -------
    str or None
        ``mozilla-foundation/common_voice_<N>_0`` for a
        ``cv-corpus-<N>.0-<date>`` folder.

    Example
    -------
    >>> _common_voice_dataset("/data/cv-corpus-17.0-2024-03-15")
    'mozilla-foundation/common_voice_17_0'
    """
    match = re.search(r"cv-corpus-(\d+)\.(\d+)", str(data_folder or ""))
    if not match:
        return None
    return f"mozilla-foundation/common_voice_{match[1]}_{match[2]}"


def _front_matter(repo_id, facts, test, meta, encoder_tag="w2v-bert"):
    """The model card's Hub metadata block (``---`` YAML ``---``).

    Arguments
    ---------
    repo_id : str
        The Hub repo the folder is for.
    facts : dict
        :func:`read_training_hparams` output.
    test : dict or None
        ``test_metrics.json`` of the recipe (language -> metrics).
    meta : dict
        The checkpoint's ``CKPT.yaml`` (dev ``R@1``).
    encoder_tag : str
        The encoder's Hub tag (``"w2v-bert"``, ``"xls-r"``).

    Returns
    -------
    str
    """
    import yaml

    data = {
        "library_name": "speechbrain",
        "license": "apache-2.0",
        "pipeline_tag": "feature-extraction",
        "tags": [
            "speechbrain",
            "sense",
            encoder_tag,
            "speech-embeddings",
            "speech-retrieval",
        ],
    }
    if facts.get("languages"):
        data["language"] = _hub_languages(facts["languages"])
    dataset = _common_voice_dataset(facts.get("data_folder"))
    if dataset:
        data["datasets"] = [dataset]
    source = facts.get("encoder_source")
    if source and _hub_id(source):
        data["base_model"] = str(source)
    metrics = []
    if test:
        for language, row in test.items():
            if isinstance(row, Mapping) and "R@1" in row:
                metrics.append(
                    {
                        "type": "recall",
                        "name": f"speech-to-text R@1 ({language}, test)",
                        "value": round(100 * float(row["R@1"]), 2),
                    }
                )
    elif isinstance(meta.get("R@1"), (int, float)):
        metrics.append(
            {
                "type": "recall",
                "name": "speech-to-text R@1 (mean over languages, dev)",
                "value": round(100 * float(meta["R@1"]), 2),
            }
        )
    if metrics:
        data["model-index"] = [
            {
                "name": repo_id.rsplit("/", 1)[-1],
                "results": [
                    {
                        "task": {
                            "type": "feature-extraction",
                            "name": "Speech-to-text retrieval",
                        },
                        "dataset": {
                            "type": dataset or "common_voice",
                            "name": "Common Voice",
                        },
                        "metrics": metrics,
                    }
                ],
            }
        ]
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return f"---\n{body}---\n"


def usage_snippet(repo_id):
    """The card's Python snippet: loads ``repo_id`` and embeds two clips.

    It runs as written (tests run it against a Hub-cache copy of an
    exported folder).

    Arguments
    ---------
    repo_id : str
        Hub id or folder of the model.

    Returns
    -------
    str
        Python source.
    """
    return "\n".join(
        [
            "import torch",
            "from speechbrain.inference.interfaces import foreign_class",
            "",
            "model = foreign_class(",
            f'    source="{repo_id}",',
            '    pymodule_file="custom.py",',
            '    classname="SenseEncoderInterface",',
            ")",
            "wavs = torch.randn(2, 16000)  # two clips of 16 kHz audio",
            "wav_lens = torch.tensor([1.0, 0.75])  # relative lengths",
            "emb = model.encode_batch(wavs, wav_lens)  # [2, 1, D], unit norm",
            "frames, counts = model.encode_frames(wavs, wav_lens)",
            "weights, counts = model.attention_weights(wavs, wav_lens)",
            "print(emb.shape, frames.shape, counts.tolist())",
        ]
    )


def model_card(
    ckpt_folder, layout, facts, state, projection, repo_id=DEFAULT_REPO_ID
):
    """The ``README.md`` of an exported model, with Hub front matter.

    It names no local path: sources and data folders that are local
    directories appear by their folder name only.

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
    projection : str
        The head's structure (``"linear_tanh"``, ``"linear"``, ``"none"``).
    repo_id : str
        The Hub repo the folder will be uploaded to (used in the snippet).

    Returns
    -------
    str
        Markdown.
    """
    encoder_dim, embedding_dim, _ = _head_shape(state)
    parameters = sum(v.numel() for v in state.values())
    meta = read_ckpt_meta(ckpt_folder)
    recipe = recipe_folder(ckpt_folder)
    report = (
        read_json(recipe / "save" / "prepare_report.json") if recipe else None
    )
    dev = read_json(recipe / "dev_metrics.json") if recipe else None
    test = read_json(recipe / "test_metrics.json") if recipe else None
    head = "length-masked attentive pooling"
    if projection != "none":
        head += f" + Linear({encoder_dim} -> {embedding_dim})"
        head += " + tanh" if projection == "linear_tanh" else ""
    origin = (
        "speechbrain-sense `recipes/CommonVoice/SENSE`"
        if layout == "sense"
        else "the upstream SpeechBrain SENSE recipe (converted)"
    )
    teacher = _public(facts.get("teacher", "unknown"))
    if "teacher_dim" in facts:
        teacher += f", {facts['teacher_dim']}-d"
    lines = [
        _front_matter(
            repo_id,
            facts,
            test,
            meta,
            "xls-r" if _architecture(state).startswith("XLS-R") else "w2v-bert",
        ),
        "# SENSE speech encoder",
        "",
        "A semantic speech encoder (SENSE, arXiv 2509.12093): the utterance "
        "embedding is trained to match the frozen sentence embedding of the "
        "transcript, so speech and text share one space.",
        "",
        "| | |",
        "|---|---|",
        f"| encoder | {_architecture(state)} architecture, "
        f"{encoder_dim}-d frames "
        f"({_public(facts.get('encoder_source', 'source unknown'))}) |",
        f"| head | {head}, L2-normalised, {embedding_dim}-d |",
        f"| parameters | {parameters / 1e6:.2f}M |",
        f"| teacher | {teacher} |",
        f"| languages | {', '.join(facts.get('languages', [])) or 'unknown'} |",
        f"| training data | {_public(facts.get('data_folder', 'unknown'))} |",
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
        "With only SpeechBrain installed (`pip install speechbrain "
        "transformers`): `foreign_class` fetches this repo's `custom.py`, "
        "which defines the classes `hyperparams.yaml` builds. It runs that "
        "file, so load only repos you trust.",
        "",
        "```python",
        usage_snippet(repo_id),
        "```",
        "",
        "With [speechbrain-sense](https://github.com/speechbrain-sense) "
        "installed, the package's own classes are used and `custom.py` is "
        "neither fetched nor run:",
        "",
        "```python",
        "from speechbrain_sense.encoders.inference import SenseEncoder",
        "",
        f'model = SenseEncoder.from_hparams(source="{repo_id}")',
        'emb = model.encode_file("speech.wav")  # [D], any rate or channels',
        "```",
        "",
        "A stock `EncoderClassifier.from_hparams` finds the `custom` classes "
        "only if the folder holding `custom.py` is on `sys.path`: from "
        "SpeechBrain 1.1 on (after 1.0.3), only `foreign_class` fetches it.",
        "",
        "The text side of the space is the teacher above: embed "
        "transcripts with it and compare by cosine similarity.",
        "",
    ]
    return "\n".join(lines)


def export_model(
    checkpoint,
    out_dir,
    encoder_source=None,
    hparams_file=None,
    projection=None,
    check=True,
    repo_id=DEFAULT_REPO_ID,
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
    projection : str, optional
        The head's structure (default: the recipe's ``projection``; for an
        upstream checkpoint, or a recipe run from before that key,
        ``"none"`` without projection weights, else ``"linear"`` upstream
        and the old ``activation`` key's ``linear_tanh`` or ``linear``).
    check : bool
        Load the result back and embed noise.
    repo_id : str
        The Hub repo the folder is meant for (the model card's snippet
        loads it).

    Returns
    -------
    Path
        ``out_dir``.
    """
    folder, layout = find_checkpoint(checkpoint)
    if hparams_file is None:
        recipe = recipe_folder(folder)
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
    state = student_state_dict(folder, layout)
    if projection is None:
        projection = facts.get("projection")
    if projection is None and "head.projection.0.weight" in state:
        projection = facts.get(
            "legacy_projection",
            "linear_tanh" if layout == "sense" else "linear",
        )
    projection = head_projection(state, projection)
    card = model_card(folder, layout, facts, state, projection, repo_id)
    training = {}
    if "teacher_spec" in facts:
        training["teacher"] = facts["teacher_spec"]
    elif layout == "upstream":
        # The authors' recipe: BGE-M3's dense embedding (FlagEmbedding).
        training["teacher"] = UPSTREAM_TEACHER
    if "languages" in facts:
        training["languages"] = facts["languages"]
    out_dir = export_student(
        state,
        encoder_source,
        out_dir,
        projection=projection,
        output_norm=facts.get("output_norm", False),
        card=card,
        cache_dir=facts.get("encoder_cache"),
        check=check,
        training=training or None,
    )
    if hparams_file:
        shutil.copyfile(hparams_file, out_dir / "training_hyperparams.yaml")
    return out_dir


def main(argv=None):
    """Command line: ``python -m speechbrain_sense.encoders.export --help``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    Path
        The model folder written.
    """
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
        "--projection",
        choices=PROJECTIONS,
        help="the head's structure; must match the weights (default: the "
        "recipe's projection key; upstream: linear when the checkpoint "
        "has one, else none)",
    )
    parser.add_argument(
        "--repo-id",
        default=DEFAULT_REPO_ID,
        help="Hub repo the folder is for: the model card's snippet loads it",
    )
    parser.add_argument(
        "--format",
        choices=("speechbrain", "onnx"),
        default="speechbrain",
        help="onnx: also write <out>/onnx/ (fp32 + int8 graphs at the "
        "feature level, see speechbrain_sense.encoders.onnx_export)",
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
        projection=args.projection,
        check=not args.no_check,
        repo_id=args.repo_id,
    )
    print(f"Exported {args.checkpoint} to {out}")
    if args.format == "onnx":
        from speechbrain_sense.encoders.onnx_export import export_onnx

        onnx_dir = export_onnx(out, out / "onnx", check=not args.no_check)
        print(f"ONNX graphs in {onnx_dir}")
    return out


if __name__ == "__main__":
    main()
