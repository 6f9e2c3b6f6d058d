"""``python -m speechbrain_sense.search``: index, query and serve.

::

    python -m speechbrain_sense.search index AUDIO_DIR --model MODEL --db INDEX
    python -m speechbrain_sense.search query INDEX "a question" [-k 10]
    python -m speechbrain_sense.search query INDEX --audio clip.wav
    python -m speechbrain_sense.search serve INDEX --port 8000

``MODEL`` is an exported SENSE model folder or hub id
(:mod:`speechbrain_sense.encoders.export`); queries and the server read it from
the index, which records it.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import sys

from speechbrain_sense.search.store import SearchIndex, SearchIndexError


def _parser():
    """The command line's parser."""
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_sense.search",
        description="Search a folder of recordings by meaning, from a "
        "typed or a spoken query, in any language.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="index (or update) a folder")
    index.add_argument("audio_dir", help="folder of recordings")
    index.add_argument("--model", required=True, help="SENSE model dir/id")
    index.add_argument("--db", required=True, help="index database file")
    index.add_argument(
        "--no_vad",
        action="store_true",
        help="fixed windows instead of speech activity",
    )
    index.add_argument(
        "--max_passage",
        type=float,
        default=15.0,
        help="longest passage, seconds (default 15)",
    )
    index.add_argument(
        "--max_gap",
        type=float,
        default=1.0,
        help="longest pause inside a passage (default 1)",
    )
    index.add_argument(
        "--overlap",
        type=float,
        default=2.0,
        help="overlap of windows over long speech (default 2)",
    )
    index.add_argument("--vad_threshold", type=float, default=0.5)
    index.add_argument(
        "--batch_seconds",
        type=float,
        default=120.0,
        help="padded audio per encoder batch",
    )
    index.add_argument(
        "--workers",
        type=int,
        default=2,
        help="decoding threads ahead of the encoder",
    )
    _model_options(index)

    query = commands.add_parser("query", help="search an index")
    query.add_argument("db", help="index database file")
    query.add_argument("text", nargs="?", help="typed query, any language")
    query.add_argument("--audio", help="spoken query (audio file)")
    query.add_argument("-k", type=int, default=10, help="results (10)")
    _backend_option(query)
    query.add_argument("--model", help="model (default: the index's)")
    _model_options(query)

    serve = commands.add_parser("serve", help="a search page on the web")
    serve.add_argument("db", help="index database file")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address (default 127.0.0.1: this machine only)",
    )
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--max_upload_mb",
        type=float,
        default=20.0,
        help="largest spoken query accepted (MB)",
    )
    _backend_option(serve)
    serve.add_argument("--model", help="model (default: the index's)")
    _model_options(serve)
    return parser


def _backend_option(parser):
    """Adds ``--backend``: exact search, FAISS, or FAISS past a size."""
    parser.add_argument(
        "--backend",
        choices=("exact", "faiss", "auto"),
        default="exact",
        help="exact (default), faiss (approximate IVF, the search extra), "
        "or auto: FAISS from FAISS_MIN_PASSAGES passages on",
    )


def _model_options(parser):
    """Adds the options that say how to load a model."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--savedir", help="where a hub model is fetched")
    parser.add_argument(
        "--teacher_source", help="local copy of the model's text encoder"
    )


def _model(args, source):
    """Loads the model named by ``source`` as the options say."""
    from speechbrain_sense.search.query import SearchModel

    return SearchModel(
        source,
        savedir=args.savedir,
        device=args.device,
        teacher_source=args.teacher_source,
    )


def _index_model_source(db, given):
    """The model to use: the one given, else the one the index records."""
    if given:
        return given
    index = SearchIndex(db)
    try:
        model = index.model
    finally:
        index.close()
    if model is None:
        raise SearchIndexError(f"{db} is empty: run `index` first")
    return model["source"]


def main(argv=None):
    """Runs one command.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv``).

    Returns
    -------
    int
        Exit status: 0, or 2 with a one-line error on standard error.
    """
    args = _parser().parse_args(argv)
    try:
        if args.command == "index":
            return _index(args)
        if args.command == "query":
            return _query(args)
        return _serve(args)
    except (SearchIndexError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _index(args):
    """The ``index`` command."""
    from speechbrain_sense.search.indexer import PassageSettings, index_folder

    settings = PassageSettings(
        vad=not args.no_vad,
        max_passage=args.max_passage,
        max_gap=args.max_gap,
        overlap=args.overlap,
        vad_threshold=args.vad_threshold,
    )
    report = index_folder(
        args.audio_dir,
        _model(args, args.model),
        args.db,
        settings=settings,
        max_batch_seconds=args.batch_seconds,
        workers=args.workers,
        progress=sys.stderr.isatty(),
    )
    print(report.summary())
    return 0


def _query(args):
    """The ``query`` command."""
    from speechbrain_sense.search.query import query_index

    if (args.text is None) == (args.audio is None):
        raise ValueError("give a text query or --audio FILE (one of them)")
    model = _model(args, _index_model_source(args.db, args.model))
    index = SearchIndex(args.db)
    try:
        hits = query_index(
            index,
            model,
            text=args.text,
            audio=args.audio,
            k=args.k,
            backend=args.backend,
        )
    finally:
        index.close()
    for rank, hit in enumerate(hits, 1):
        print(
            f"{rank:3d}  {hit['score']:.3f}  {hit['path']}  "
            f"{hit['start']:.2f}-{hit['end']:.2f} s"
        )
    return 0


def _serve(args):
    """The ``serve`` command."""
    from speechbrain_sense.search.server import serve

    model = _model(args, _index_model_source(args.db, args.model))
    serve(
        args.db,
        model,
        host=args.host,
        port=args.port,
        max_upload_bytes=int(args.max_upload_mb * 1e6),
        backend=args.backend,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
