"""Every yaml key is used, and every key a recipe reads is in its yaml.

As upstream SpeechBrain's ``test_yaml_script_consistency``, for each row of
``tests/recipes/*.csv``:

* each top-level key of the hyperparameter file is read by the script
  (``hparams["key"]``, ``hparams.get("key")``, ``"key" in hparams``,
  ``self.hparams.key``, ``getattr``/``hasattr(self.hparams, "key")``) or
  referenced by another key of the yaml (``!ref <key>``);
* each key the script reads that way is defined by the yaml, bar the
  optional reads (``hparams.get``, ``"key" in hparams``, ``hasattr`` and
  ``getattr`` with a default: keys of some configurations only);
* the script reads no key it builds at run time (``hparams[f"..."]``):
  a scanner cannot check those.

The script's keys include those read by the ``Brain`` classes the script
imports from ``speechbrain_sense`` (modules that use ``self.hparams``).
"""

import ast
import re

import pytest
from recipe_csvs import ROOT, all_rows
from speechbrain.utils.run_opts import RunOptions

# Keys SpeechBrain itself reads from the hyperparameters (as upstream's
# check allows): the run options, which a yaml may set instead of the
# command line (precision, max_grad_norm, grad_accumulation_factor, ...).
SPEECHBRAIN_KEYS = set(RunOptions().as_dict())

# Attributes of the hparams object that are not keys.
NOT_KEYS = {"get", "keys", "items", "values", "__dict__"}

REF = re.compile(r"<([A-Za-z_]\w*)")
ROWS = all_rows()


def yaml_keys(text):
    """Lists the top-level keys of a yaml file and the keys it references.

    Arguments
    ---------
    text : str
        The yaml file's content.

    Returns
    -------
    keys : list of str
        The top-level keys, bar ``__``-prefixed ones (run for their side
        effect when the file loads, as ``__set_seed``).
    referenced : set of str
        The names used in ``<name>`` references (``!ref``, ``!copy``).
    """
    keys = []
    referenced = set()
    for line in text.splitlines():
        code = line.split(" #")[0]
        if code.startswith("#"):
            continue
        referenced.update(REF.findall(code))
        if code[:1].strip() and ":" in code:
            key = code.split(":")[0].strip()
            if not key.startswith("__"):
                keys.append(key)
    return keys, referenced


def _is_hparams(node):
    """Tells whether an expression is ``hparams`` or ``<x>.hparams``.

    Arguments
    ---------
    node : ast.AST
        The expression.

    Returns
    -------
    bool
        True for the hyperparameters object.
    """
    if isinstance(node, ast.Name):
        return node.id == "hparams"
    return isinstance(node, ast.Attribute) and node.attr == "hparams"


def _string(node):
    """The value of a string constant.

    Arguments
    ---------
    node : ast.AST
        The expression.

    Returns
    -------
    str or None
        The string, None when ``node`` is no string constant.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def script_keys(source):
    """Finds the keys a script reads from its hyperparameters.

    Arguments
    ---------
    source : str
        The Python source.

    Returns
    -------
    keys : set of str
        The keys read.
    optional : set of str
        The keys read only if present (``get``, ``in``, ``hasattr``,
        ``getattr`` with a default).
    dynamic : list of str
        The reads whose key is computed (``hparams[f"{split}_csv"]``).
    """
    keys, optional, dynamic = set(), set(), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and _is_hparams(node.value):
            key = _string(node.slice)
            if key is None:
                dynamic.append(f"line {node.lineno}: {ast.unparse(node)}")
            else:
                keys.add(key)
        elif isinstance(node, ast.Attribute) and _is_hparams(node.value):
            if node.attr not in NOT_KEYS:
                keys.add(node.attr)
        elif isinstance(node, ast.Call):
            func, args = node.func, node.args
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "get"
                and _is_hparams(func.value)
                and args
            ):
                target, found = args[0], optional
            elif (
                isinstance(func, ast.Name)
                and func.id in ("getattr", "hasattr")
                and len(args) >= 2
                and _is_hparams(args[0])
            ):
                target = args[1]
                hard = func.id == "getattr" and len(args) == 2
                found = keys if hard else optional
            else:
                continue
            key = _string(target)
            if key is None:
                dynamic.append(f"line {node.lineno}: {ast.unparse(node)}")
            else:
                found.add(key)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            if isinstance(node.ops[0], (ast.In, ast.NotIn)):
                if _is_hparams(node.comparators[0]):
                    key = _string(node.left)
                    if key is not None:
                        optional.add(key)
    return keys, optional - keys, dynamic


def library_brains(source):
    """Lists the ``speechbrain_sense`` modules a script imports that read
    ``self.hparams`` (the ``Brain`` classes it runs).

    Arguments
    ---------
    source : str
        The script's Python source.

    Returns
    -------
    list of pathlib.Path
        The module files.
    """
    files = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] != "speechbrain_sense":
                continue
            path = ROOT.joinpath(*node.module.split("."))
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if candidate.is_file():
                    if "self.hparams" in candidate.read_text("utf-8"):
                        files.append(candidate)
    return files


def read_keys(script_file):
    """The keys a recipe script, and the Brains it imports, read.

    Arguments
    ---------
    script_file : pathlib.Path
        The recipe script.

    Returns
    -------
    keys : set of str
        The keys read.
    optional : set of str
        The keys read only if present.
    dynamic : list of str
        The reads whose key is computed.
    """
    source = script_file.read_text(encoding="utf-8")
    keys, optional, dynamic = script_keys(source)
    for module in library_brains(source):
        text = module.read_text(encoding="utf-8")
        more, more_optional, more_dynamic = script_keys(text)
        keys |= more
        optional |= more_optional
        rel = module.relative_to(ROOT).as_posix()
        dynamic += [f"{rel} {d}" for d in more_dynamic]
    return keys, optional - keys, dynamic


@pytest.mark.parametrize("row", ROWS, ids=[r["Hparam_file"] for r in ROWS])
def test_yaml_and_script_agree(row):
    """The yaml defines what the script reads and nothing else.

    Arguments
    ---------
    row : dict
        The recipe CSV row.
    """
    defined, referenced = yaml_keys(
        (ROOT / row["Hparam_file"]).read_text(encoding="utf-8")
    )
    used, optional, dynamic = read_keys(ROOT / row["Script_file"])
    unused = [
        k
        for k in defined
        if k not in used | optional | referenced | SPEECHBRAIN_KEYS
    ]
    undefined = sorted(used - set(defined))
    errors = [f"defined, never used: {k}" for k in unused]
    errors += [f"read by the script, not defined: {k}" for k in undefined]
    errors += [f"key computed at run time: {d}" for d in dynamic]
    assert not errors, f"{row['Hparam_file']} / {row['Script_file']}\n" + (
        "\n".join(errors)
    )


def test_scanner_finds_the_reads():
    """The scanner sees each way a script reads a key."""
    source = (
        'hparams["a"]; hparams.get("b"); self.hparams.c\n'
        'getattr(self.hparams, "d", None); hasattr(self.hparams, "e")\n'
        'if "f" in hparams: pass\n'
        'hparams[f"{split}_csv"]\n'
    )
    keys, optional, dynamic = script_keys(source)
    assert keys == {"a", "c"}
    assert optional == {"b", "d", "e", "f"}
    assert len(dynamic) == 1


def test_yaml_keys_and_references():
    """Top-level keys and references are told apart."""
    text = (
        "seed: 1  # <not_a_ref>\n__set_seed: !apply:f [!ref <seed>]\n"
        "# old: 2\nmodel: !new:M\n    size: !ref <seed>\n"
    )
    assert yaml_keys(text) == (["seed", "model"], {"seed"})
