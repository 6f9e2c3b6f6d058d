"""Old module paths of the package, kept working for one release.

The library was one flat folder until the layout grouped it by concept
(``encoders/``, ``teachers/``, ``data/``, ...). Paths of the old layout live
on in places this package cannot rewrite: users' experiment yamls
(``!new:speechbrain_sense.pooling.SenseEmbeddingHead``), the resolved
``hyperparams.yaml`` of their finished runs, notebooks, and command lines
(``python -m speechbrain_sense.export``). :class:`MovedModuleFinder` maps
every old path of :data:`MOVED` onto its new module: importing an old path
returns *the same module object* (so classes compare equal and isinstance
holds), with a ``DeprecationWarning`` naming the new path; ``python -m``
on an old path runs the new module.

Two old paths are packages now, so they cannot be redirected whole:
``speechbrain_sense.teachers`` (today's ``teachers.sentence_encoders``)
and ``speechbrain_sense.data`` (the synthetic corpora, today's
``synthetic``). Their ``__init__`` forwards the old names through
:func:`moved_attribute`.

Authors
 * speechbrain-sense developers 2026
"""

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import warnings

# Old module (0.1.0) -> new module (0.2.0), inside the package; the old
# paths are removed in 0.3.0.
_RENAMES = {
    # synthetic
    "data.espeak": "synthetic.espeak",
    "data.phrase_grammar": "synthetic.phrase_grammar",
    "data.synthetic_covost": "synthetic.covost",
    "data.synthetic_cv": "synthetic.common_voice",
    "data.synthetic_search": "synthetic.search",
    "data.synthetic_slu": "synthetic.slu",
    "data.synthetic_slue_ted": "synthetic.slue_ted",
    # training
    "arguments": "training.arguments",
    "distributed": "training.distributed",
    "losses": "training.losses",
    "random_state": "training.random_state",
    "resilient_checkpointer": "training.resilient_checkpointer",
    # teachers
    "teacher_cache": "teachers.cache",
    # encoders
    "checkpoint": "encoders.checkpoint",
    "export": "encoders.export",
    "inference": "encoders.inference",
    "long_form": "encoders.long_form",
    "onnx_export": "encoders.onnx_export",
    "pooling": "encoders.pooling",
    "pretrained": "encoders.pretrained",
    "student": "encoders.student",
    "w2v_bert": "encoders.w2v_bert",
    "xls_r": "encoders.xls_r",
    # data
    "clip_check": "data.clip_check",
    "dataio": "data.dataio",
    "manifests": "data.manifests",
    "preparation": "data.preparation",
    "sampling": "data.sampling",
    "shards": "data.shards",
    "streaming": "data.streaming",
    "vad": "data.vad",
    # tasks
    "attention": "tasks.attention",
    "backpack.analysis": "sensia.analysis",
    "downstream": "tasks.downstream",
    "seq2seq": "tasks.seq2seq",
    "slu": "tasks.slu",
}
MOVED = {
    f"speechbrain_sense.{old}": f"speechbrain_sense.{new}"
    for old, new in _RENAMES.items()
}


def _caller_stacklevel():
    """The ``stacklevel`` that points a warning at the importing code.

    Import machinery frames (``<frozen importlib._bootstrap>``) and this
    file sit between ``warnings.warn`` and the ``import`` statement; the
    default warning filters show a ``DeprecationWarning`` only when it is
    attributed to ``__main__``, so it must name the importer's frame.

    Returns
    -------
    int
        For ``warnings.warn``, counted from its caller.
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen")
        or frame.f_code.co_filename == __file__
        or f"{os.sep}importlib{os.sep}" in frame.f_code.co_filename
    ):
        frame, level = frame.f_back, level + 1
    return level


def _warn(old, new):
    """Warns that ``old`` moved to ``new``.

    Arguments
    ---------
    old : str
        The dotted path that was used.
    new : str
        Where it lives now.
    """
    warnings.warn(
        f"{old} moved to {new} in 0.2.0; the old path will be removed in "
        "0.3.0 (update imports, yaml tags and python -m commands)",
        DeprecationWarning,
        stacklevel=_caller_stacklevel(),
    )


def moved_attribute(package, target, name):
    """An old package attribute, looked up in its new module, with a warning.

    For a package's ``__getattr__`` (:pep:`562`) when an old module path is
    a package now.

    Arguments
    ---------
    package : str
        The package's ``__name__`` (the old module path).
    target : str
        The module that holds the old module's names now.
    name : str
        The attribute asked for.

    Returns
    -------
    object
        ``getattr(target, name)``.

    Raises
    ------
    AttributeError
        When the new module does not define ``name`` either (also what lets
        ``from package import submodule`` fall through to the import).
    """
    if name.startswith("__"):
        raise AttributeError(name)
    module = importlib.import_module(target)
    if not hasattr(module, name):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    _warn(f"{package}.{name}", f"{target}.{name}")
    return getattr(module, name)


class _MovedModuleLoader(importlib.abc.Loader):
    """Loads an old path as its new module (see :class:`MovedModuleFinder`).

    Arguments
    ---------
    new : str
        The new dotted module path.
    """

    def __init__(self, new):
        self.new = new

    def create_module(self, spec):
        """The new module, imported, in place of a fresh one.

        Arguments
        ---------
        spec : importlib.machinery.ModuleSpec
            The old path's spec.

        Returns
        -------
        module
            The new module object.
        """
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module):
        """Nothing to run: the new module ran when it was imported.

        Arguments
        ---------
        module : module
            The new module.
        """

    def get_code(self, fullname):
        """What ``python -m <old path>`` runs: the new module as ``__main__``.

        Arguments
        ---------
        fullname : str
            The old path.

        Returns
        -------
        code
            A stub that warns and hands over to :func:`runpy.run_module`.
        """
        message = f"{fullname} moved to {self.new}: run python -m {self.new}"
        source = (
            "import runpy, warnings\n"
            f"warnings.warn({message!r}, DeprecationWarning)\n"
            f"runpy.run_module({self.new!r}, run_name='__main__', "
            "alter_sys=True)\n"
        )
        return compile(source, f"<moved {fullname}>", "exec")


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of :data:`MOVED` (installed at import).

    Example
    -------
    >>> import speechbrain_sense
    >>> any(isinstance(f, MovedModuleFinder) for f in sys.meta_path)
    True
    """

    def find_spec(self, fullname, path=None, target=None):
        """A spec for an old path; None for every other module.

        Arguments
        ---------
        fullname : str
            The module being imported.
        path : list, optional
            The parent package's ``__path__`` (unused).
        target : module, optional
            Unused (module reloading).

        Returns
        -------
        importlib.machinery.ModuleSpec or None
            Loaded by :class:`_MovedModuleLoader`.
        """
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new))


def install():
    """Puts one :class:`MovedModuleFinder` first on ``sys.meta_path``.

    First, so that the table decides even where a stale copy of an old file
    survived (an unclean checkout or an old wheel unpacked over a new one).
    """
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
