"""The model side of search: load an encoder, embed queries, rank passages.

A spoken query is embedded by the exported SENSE encoder itself; a typed
query by the sentence encoder the model was trained to imitate (its
teacher), which the export names in ``training.json``
(:func:`speechbrain_sense.teachers.sentence_encoders.model_teacher`): SENSE puts speech next
to the *teacher's* embedding of its transcript, so the teacher is the text
side of the shared space.

Ranking is exact by default (:func:`speechbrain_sense.retrieval.topk_search`
over the memory-mapped float16 matrix, blockwise, fp32 scores). Past some
size (``bench/search_bench.py`` measures where), an approximate FAISS
inverted-file index (``faiss-cpu``, the ``search`` extra) answers faster;
it is built once per index generation and saved next to the database.

Authors
 * speechbrain-sense developers 2026
"""

import hashlib
import json
import math
import tempfile
from pathlib import Path

import numpy as np
import torch

from speechbrain_sense.audio import load_audio
from speechbrain_sense.hashing import update_with_file_edges
from speechbrain_sense.retrieval import score_error_bound
from speechbrain_sense.search.store import check_model, display_path
from speechbrain_sense.teachers.sentence_encoders import (
    model_teacher,
    model_training_facts,
    teacher_from_spec,
)

# What identifies a model's embedding space: its structure and weights.
# Not training.json: SpeechBrain does not fetch it into a hub model's
# savedir, and the same model must match whether loaded by id or folder.
_IDENTITY_FILES = ("hyperparams.yaml", "embedding_model.ckpt")


def model_fingerprint(model_dir):
    """A content hash of an exported model folder's embedding function.

    Hashes the name, size and first and last MiB of ``hyperparams.yaml``
    (all of it) and of the weights file
    (:func:`speechbrain_sense.hashing.update_with_file_edges`).

    Arguments
    ---------
    model_dir : str or Path
        An exported (or fetched) SENSE model folder.

    Returns
    -------
    str
        Hex digest.
    """
    digest = hashlib.sha256()
    for name in _IDENTITY_FILES:
        path = Path(model_dir) / name
        if path.is_file():
            update_with_file_edges(digest, path, name)
    return digest.hexdigest()


class SearchModel:
    """An exported SENSE encoder and its teacher, for indexing and queries.

    Arguments
    ---------
    source : str or Path
        Exported model folder or hub id.
    savedir : str or Path, optional
        Where SpeechBrain puts the fetched files (a temporary folder by
        default; a local folder is read in place).
    device : str
        Where the encoder runs (the teacher embeds one short query at a
        time, on the CPU).
    teacher_source : str, optional
        A local copy of the teacher, overriding the source named in the
        model's ``training.json`` (e.g. where the hub is unreachable).
    """

    def __init__(self, source, savedir=None, device="cpu", teacher_source=None):
        from speechbrain.utils.fetching import LocalStrategy

        from speechbrain_sense.encoders.inference import SenseEncoder

        self.source = str(source)
        local = Path(source).is_dir()
        savedir = Path(savedir or tempfile.mkdtemp(prefix="sense-search-"))
        self.encoder = SenseEncoder.from_hparams(
            source=self.source,
            savedir=str(savedir),
            run_opts={"device": device},
            local_strategy=LocalStrategy.NO_LINK
            if local
            else LocalStrategy.SYMLINK,
        )
        self.encoder.mods.eval()
        self.model_dir = Path(source) if local else savedir
        self.teacher_source = teacher_source
        self._teacher = None
        self.identity = {
            "fingerprint": model_fingerprint(self.model_dir),
            "dim": int(self.encoder.embedding_dim),
            "source": self.source,
        }

    @property
    def sample_rate(self):
        """The rate the encoder reads."""
        return self.encoder.sample_rate

    @property
    def teacher(self):
        """The text encoder of the shared space (loaded on first use)."""
        if self._teacher is None:
            if self.teacher_source is not None:
                self._teacher = _local_teacher(self.source, self.teacher_source)
            else:
                self._teacher = model_teacher(self.source)
            self._teacher.eval()
        return self._teacher

    def embed_waveforms(self, padded, lens):
        """Embeddings of a padded batch of waveforms.

        Arguments
        ---------
        padded : torch.Tensor
            ``[B, T]`` waveforms at :attr:`sample_rate`.
        lens : torch.Tensor
            ``[B]`` relative lengths.

        Returns
        -------
        torch.Tensor
            ``[B, D]`` float32, L2-normalised, on the CPU.
        """
        with torch.no_grad():
            emb = self.encoder.encode_batch(padded, lens)[:, 0]
        return torch.nn.functional.normalize(emb.float(), dim=-1).cpu()

    def embed_text(self, texts):
        """Embeddings of typed queries: the teacher's.

        Arguments
        ---------
        texts : list of str
            Queries, any language the teacher reads.

        Returns
        -------
        torch.Tensor
            ``[len(texts), D]`` float32, L2-normalised.

        Raises
        ------
        ValueError
            When the teacher's width differs from the encoder's.
        """
        emb = self.teacher.encode(list(texts)).float().cpu()
        if emb.shape[-1] != self.identity["dim"]:
            raise ValueError(
                f"the teacher of {self.source} embeds in {emb.shape[-1]} "
                f"dimensions, its encoder in {self.identity['dim']}: they "
                "are not one space (wrong --teacher_source?)"
            )
        return torch.nn.functional.normalize(emb, dim=-1)

    def embed_audio_file(self, path):
        """The embedding of a spoken query.

        Arguments
        ---------
        path : str or Path
            Audio file, any format, rate and channel count.

        Returns
        -------
        torch.Tensor
            ``[1, D]`` float32, L2-normalised.
        """
        wav = load_audio(path, self.sample_rate)
        return self.embed_waveforms(wav[None], torch.ones(1))


def _local_teacher(model_source, teacher_source):
    """The model's teacher, loaded from a local copy of its weights.

    The builder (and so the pooling, prefix and truncation) is still the
    one the model's ``training.json`` names: only the source changes.

    Arguments
    ---------
    model_source : str
        The model folder or hub id.
    teacher_source : str
        A local folder (or another hub id) holding the teacher.

    Returns
    -------
    torch.nn.Module
    """
    facts = model_training_facts(model_source) or {}
    spec = dict(facts.get("teacher") or {"builder": "teacher_from_source"})
    if spec["builder"] == "universal_sentence_encoder":
        raise ValueError(
            f"{model_source}'s teacher is the packaged Universal Sentence "
            "Encoder, which loads offline: drop --teacher_source"
        )
    spec["arguments"] = {
        **(spec.get("arguments") or {}),
        "source": str(teacher_source),
    }
    return teacher_from_spec(spec)


def search_matrix(query, matrix, k, backend="exact", faiss_index=None):
    """Top ``k`` rows of ``matrix`` for each query.

    Arguments
    ---------
    query : torch.Tensor
        ``[Q, D]`` unit query embeddings.
    matrix : numpy.ndarray
        ``[N, D]`` float16 unit embeddings (may be memory-mapped).
    k : int
        Results per query.
    backend : str
        ``"exact"`` (blockwise, fp32 scores) or ``"faiss"``
        (``faiss_index`` must be given).
    faiss_index : object, optional
        A trained FAISS index over ``matrix`` (:func:`build_faiss_index`).

    Returns
    -------
    scores : numpy.ndarray
        ``[Q, k']`` cosines, descending (``k' = min(k, N)``).
    rows : numpy.ndarray
        ``[Q, k']`` row indices.
    """
    k = min(int(k), len(matrix))
    if k < 1:
        empty = np.empty((len(query), 0))
        return empty, empty.astype(np.int64)
    if backend == "faiss":
        scores, rows = faiss_index.search(
            np.ascontiguousarray(query.numpy(), dtype=np.float32), k
        )
        return scores, rows
    if backend != "exact":
        raise ValueError(f"backend must be 'exact' or 'faiss', not {backend!r}")
    scores, rows = exact_unit_topk(query, matrix, k)
    return scores.numpy(), rows.numpy()


def exact_unit_topk(query, matrix, k, block_size=65536, candidates=256):
    """Exact top-``k`` dot products with a float16 matrix of unit rows.

    The rows are scored in float16 (no float32 copy of the matrix, which
    costs more than the products), the best ``candidates`` of each query
    are rescored in float32, and the answer is accepted only when no
    other row can beat it: every row left out scored at most ``cut`` in
    float16, so at most ``cut + score_error_bound`` in float32, which must
    be below the ``k``-th rescored score. Otherwise the query is tried
    again with four times the candidates, and in the end over all rows.
    So the answer is always the float32 one, ties going to the lower row
    (:func:`speechbrain_sense.retrieval.topk_search`'s rule). The rows
    are unit vectors already: they are not normalised again.

    Arguments
    ---------
    query : torch.Tensor
        ``[Q, D]`` queries (normalised here).
    matrix : numpy.ndarray
        ``[N, D]`` float16 unit rows (may be memory-mapped).
    k : int
        Results per query (at most ``N``).
    block_size : int
        Rows scored at once.
    candidates : int
        Rows rescored per query at the first try.

    Returns
    -------
    scores : torch.Tensor
        ``[Q, k]`` float32 dot products, descending.
    rows : torch.Tensor
        ``[Q, k]`` row indices.

    Example
    -------
    >>> m = np.array([[1, 0], [0.6, 0.8], [0, 1]], dtype=np.float16)
    >>> scores, rows = exact_unit_topk(torch.tensor([[1.0, 0.9]]), m, 2)
    >>> rows
    tensor([[1, 0]])
    """
    count, dim = matrix.shape
    k = min(int(k), count)
    query = torch.nn.functional.normalize(query.float(), dim=-1)
    scores = torch.empty(len(query), k)
    rows = torch.empty(len(query), k, dtype=torch.long)
    bound = score_error_bound(torch.float16, dim)
    for i in range(len(query)):
        low_scores = _float16_scores(query[i], matrix, block_size)
        keep = max(candidates, 2 * k)
        while True:
            answer = _rescored_candidates(
                query[i], matrix, low_scores, k, min(keep, count), bound
            )
            if answer is not None:
                scores[i], rows[i] = answer
                break
            keep *= 4
    return scores, rows


def _float16_scores(query, matrix, block_size):
    """``[N]`` float16 dot products of one query with every row.

    Arguments
    ---------
    query : torch.Tensor
        ``[D]`` unit float32 query.
    matrix : numpy.ndarray
        ``[N, D]`` float16 rows.
    block_size : int
        Rows scored at once.

    Returns
    -------
    torch.Tensor
        ``[N]`` float32 holding the float16 scores.
    """
    low = query.half()
    out = torch.empty(len(matrix))
    for k0 in range(0, len(matrix), block_size):
        block = _readonly_tensor(np.asarray(matrix[k0 : k0 + block_size]))
        # [b, D] x [D] -> [b], accumulated in float32, rounded to float16
        out[k0 : k0 + len(block)] = (block @ low).float()
    return out


def _rescored_candidates(query, matrix, low_scores, k, keep, bound):
    """One query's exact answer from ``keep`` float16 candidates, or None.

    Arguments
    ---------
    query : torch.Tensor
        ``[D]`` unit float32 query.
    matrix : numpy.ndarray
        ``[N, D]`` float16 unit rows.
    low_scores : torch.Tensor
        ``[N]`` their float16 scores (:func:`_float16_scores`).
    k : int
        Results.
    keep : int
        Candidates rescored in float32 (all rows when ``keep == N``).
    bound : float
        Largest float16 scoring error.

    Returns
    -------
    tuple of torch.Tensor or None
        ``([k] scores, [k] rows)``, or None when rows left out could
        still beat the ``k``-th candidate.
    """
    if keep >= len(matrix):
        # Every row, block by block: no float32 copy of the whole matrix.
        chosen = torch.arange(len(matrix))
        exact = torch.cat(
            [
                _readonly_tensor(np.asarray(matrix[k0 : k0 + 65536])).float()
                @ query
                for k0 in range(0, len(matrix), 65536)
            ]
        )
        cut = None
    else:
        top = low_scores.topk(keep)
        cut = top.values[-1]
        chosen = top.indices.sort().values  # ascending: ties to lower rows
        # [keep, D] gathered rows -> [keep] float32 dot products
        gathered = torch.from_numpy(np.asarray(matrix[chosen.numpy()]))
        exact = gathered.float() @ query
    order = torch.sort(exact, descending=True, stable=True).indices[:k]
    values, rows = exact[order], chosen[order]
    if cut is not None and not cut + bound < values[-1]:
        return None
    return values, rows


def _readonly_tensor(matrix):
    """A torch view of a (possibly read-only) numpy matrix, no copy."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array")
        return torch.from_numpy(matrix)


def build_faiss_index(matrix, nlist=None, nprobe=None, train_size=100_000):
    """An inverted-file FAISS index (inner product) over unit embeddings.

    Arguments
    ---------
    matrix : numpy.ndarray
        ``[N, D]`` unit embeddings.
    nlist : int, optional
        Coarse clusters (default ``4 sqrt(N)``, FAISS's guideline).
    nprobe : int, optional
        Clusters visited per query (default ``nlist / 16``, at least 8).
    train_size : int
        Rows the clusters are trained on (a random sample).

    Returns
    -------
    faiss.IndexIVFScalarQuantizer
    """
    try:
        import faiss
    except ImportError as error:
        raise ImportError(
            "approximate search needs faiss-cpu (pip install "
            "'speechbrain-sense[search]'); exact search needs nothing"
        ) from error
    count, dim = matrix.shape
    nlist = nlist or max(1, min(count // 39, int(4 * math.sqrt(count))))
    quantizer = faiss.IndexFlatIP(dim)
    # Vectors kept in float16, as in the matrix: half the memory of
    # IndexIVFFlat's float32 (4 GB at 10^6 x 1024), the same answers.
    index = faiss.IndexIVFScalarQuantizer(
        quantizer,
        dim,
        nlist,
        faiss.ScalarQuantizer.QT_fp16,
        faiss.METRIC_INNER_PRODUCT,
    )
    rng = np.random.default_rng(0)
    sample = rng.choice(count, size=min(count, train_size), replace=False)
    index.train(np.asarray(matrix[np.sort(sample)], dtype=np.float32))
    for start in range(0, count, 65536):
        index.add(np.asarray(matrix[start : start + 65536], dtype=np.float32))
    index.nprobe = nprobe or max(8, nlist // 16)
    return index


def faiss_path(index):
    """Where a search index keeps its FAISS index.

    Arguments
    ---------
    index : speechbrain_sense.search.store.SearchIndex
        The search index.

    Returns
    -------
    pathlib.Path
    """
    return index.path.with_name(index.path.name + ".faiss")


def faiss_index_for(index, nprobe=None, rebuild=False):
    """The FAISS index of a search index: in memory, on disk, or built.

    Kept on the ``SearchIndex`` object once loaded (a server reads the
    file once, not per query), and rebuilt when the index has changed
    since it was saved (its ``generation``).

    Arguments
    ---------
    index : speechbrain_sense.search.store.SearchIndex
        The search index.
    nprobe : int, optional
        Clusters visited per query.
    rebuild : bool
        Build it even if a current one is saved.

    Returns
    -------
    faiss.Index
    """
    import faiss

    generation = index.meta("generation", 0)
    cached = index.faiss_cache
    if cached is not None and cached[0] == generation and not rebuild:
        loaded = cached[1]
    else:
        path = faiss_path(index)
        tag = path.with_name(path.name + ".json")
        current = (
            path.is_file()
            and tag.is_file()
            and json.loads(tag.read_text("utf-8")).get("generation")
            == generation
        )
        if current and not rebuild:
            loaded = faiss.read_index(str(path))
        else:
            matrix, _ = index.matrix_and_ids()
            loaded = build_faiss_index(matrix)
            faiss.write_index(loaded, str(path))
            tag.write_text(json.dumps({"generation": generation}), "utf-8")
        index.faiss_cache = (generation, loaded)
    if nprobe:
        loaded.nprobe = nprobe
    return loaded


def query_index(
    index, model, text=None, audio=None, k=10, backend="exact", faiss_min=None
):
    """Ranked passages for a typed or a spoken query.

    Arguments
    ---------
    index : speechbrain_sense.search.store.SearchIndex
        An index built with ``model``.
    model : SearchModel
        The index's model (checked by fingerprint).
    text : str, optional
        A typed query, any language.
    audio : str or Path, optional
        A spoken query (audio file); exactly one of ``text`` and ``audio``.
    k : int
        Results.
    backend : str
        ``"exact"`` (default), ``"faiss"`` (approximate, opt-in) or
        ``"auto"`` (FAISS when the index holds at least ``faiss_min``
        passages and faiss is installed).
    faiss_min : int, optional
        Size from which ``"auto"`` goes approximate (default:
        :data:`FAISS_MIN_PASSAGES`).

    Returns
    -------
    list of dict
        ``{"path", "start", "end", "score", "passage_id"}``, best first;
        ``path`` is text (undecodable bytes escaped), ``raw_path`` the
        stored bytes.
    """
    if (text is None) == (audio is None):
        raise ValueError("give exactly one of a text query and an audio query")
    check_model(index, model.identity)
    if text is not None:
        if not text.strip():
            raise ValueError("the text query is empty")
        query = model.embed_text([text])
    else:
        query = model.embed_audio_file(audio)
    matrix, ids = index.matrix_and_ids()
    backend = choose_backend(backend, len(matrix), faiss_min)
    faiss_index = faiss_index_for(index) if backend == "faiss" else None
    scores, rows = search_matrix(query, matrix, k, backend, faiss_index)
    hits = []
    for score, row in zip(scores[0], rows[0]):
        if row < 0:  # FAISS pads a short answer with -1
            continue
        passage = index.passage(ids[row])
        hits.append(
            {
                "path": display_path(passage["path"]),
                "raw_path": passage["path"],
                "start": passage["start"],
                "end": passage["end"],
                "score": float(score),
                "passage_id": int(passage["id"]),
            }
        )
    return hits


#: Passages from which ``backend="auto"`` searches approximately: exact
#: search passes 100 ms per query near 4 x 10^5 passages of 1024-d on two
#: CPU cores (``bench/search_bench.py``, docs/benchmarks.md section 8).
FAISS_MIN_PASSAGES = 300_000


def choose_backend(backend, count, faiss_min=None):
    """Resolves ``"auto"`` to ``"exact"`` or ``"faiss"``.

    Arguments
    ---------
    backend : str
        ``"auto"``, ``"exact"`` or ``"faiss"``.
    count : int
        Passages in the index.
    faiss_min : int, optional
        Size from which ``"auto"`` is FAISS (:data:`FAISS_MIN_PASSAGES`).

    Returns
    -------
    str

    Example
    -------
    >>> choose_backend("auto", 10)
    'exact'
    """
    if backend != "auto":
        return backend
    if count < (FAISS_MIN_PASSAGES if faiss_min is None else faiss_min):
        return "exact"
    try:
        import faiss  # noqa: F401
    except ImportError:
        return "exact"
    return "faiss"
