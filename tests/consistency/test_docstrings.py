"""Every module, class and function has a docstring in SpeechBrain's style.

Upstream SpeechBrain's checker requires a docstring on every module, class
and function, nested helpers included, in its NumPy-like style
(``tests/consistency/DOCSTRINGS.md``). Here, applied to private helpers as
well:

* a module starts with a docstring;
* a class or function has a docstring (``__init__`` is documented by the
  docstring of its class, as upstream does);
* a docstring's sections agree with the code: an ``Arguments`` section
  lists every parameter by name (bar ``self`` and ``cls``) and no other
  name, a ``Returns`` section belongs to a function that returns a value,
  a generator's is called ``Yields``;
* the library's public API (public functions, classes and methods of
  ``speechbrain_sense/`` at module or class level) documents its
  parameters in an ``Arguments`` section and what it returns in a
  ``Returns`` (or ``Yields``) section. Private and nested helpers may keep
  a one-line docstring that says what they do: a section that only repeats
  a parameter's name would say nothing.
"""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHECKED_FOLDERS = ["speechbrain_sense", "recipes", "bench"]

# TEMPORARY: files other people are editing right now. Their violations are
# reported, not fixed, here; empty this list once they are fixed.
TEMPORARY_EXCLUSIONS = []

SECTION = re.compile(r"^(\s*)(\w[\w ]*)\n\1-{3,}\s*$", re.MULTILINE)


def python_files():
    """Lists the checked Python files.

    Returns
    -------
    list of str
        Paths relative to the repository root, sorted.
    """
    files = []
    for folder in CHECKED_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if "/results/" not in rel and "/.venv/" not in rel:
                files.append(rel)
    return files


def parse_sections(docstring):
    """Splits a numpy-style docstring into its underlined sections.

    Arguments
    ---------
    docstring : str
        The cleaned docstring (``ast.get_docstring``).

    Returns
    -------
    dict
        Section title -> list of the names documented in it (the lines
        indented as the title is, up to a colon, split at commas).
    """
    sections = {}
    matches = list(SECTION.finditer(docstring))
    for i, match in enumerate(matches):
        indent, title = match.group(1), match.group(2).strip()
        end = matches[i + 1].start() if i + 1 < len(matches) else None
        body = docstring[match.end() : end]
        names = []
        for line in body.splitlines():
            if not line.strip() or line.strip().startswith(">>>"):
                continue
            if len(line) - len(line.lstrip()) == len(indent):
                # "x, y : tensor" documents two arguments.
                names += [n.strip() for n in line.split(":")[0].split(",")]
        sections[title] = names
    return sections


def own_nodes(func):
    """Walks the body of a function, not that of the functions it defines.

    Arguments
    ---------
    func : ast.FunctionDef or ast.AsyncFunctionDef
        The function.

    Yields
    ------
    ast.AST
        Each node of the function's own body.
    """
    nested = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    stack = [node for node in func.body if not isinstance(node, nested)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(
            child
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, nested)
        )


def signature_names(func):
    """Lists the parameters a docstring must document.

    Arguments
    ---------
    func : ast.FunctionDef or ast.AsyncFunctionDef
        The function.

    Returns
    -------
    list of str
        The parameter names, ``self`` and ``cls`` left out; ``*args`` and
        ``**kwargs`` with their stars.
    """
    args = func.args
    names = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    return [n for n in names if n not in ("self", "cls")]


def decorator_names(func):
    """Names the decorators of a function.

    Arguments
    ---------
    func : ast.FunctionDef or ast.AsyncFunctionDef
        The function.

    Returns
    -------
    set of str
        The last dotted component of each decorator.
    """
    names = set()
    for dec in func.decorator_list:
        if isinstance(dec, ast.Call):
            dec = dec.func
        if isinstance(dec, ast.Attribute):
            names.add(dec.attr)
        elif isinstance(dec, ast.Name):
            names.add(dec.id)
    return names


def is_stub(func):
    """Tells whether a function body only raises, passes or is ``...``.

    Arguments
    ---------
    func : ast.FunctionDef or ast.AsyncFunctionDef
        The function.

    Returns
    -------
    bool
        True for an abstract or placeholder body.
    """
    body = func.body
    if body and isinstance(body[0], ast.Expr):
        if isinstance(body[0].value, ast.Constant):
            body = body[1:]
    return all(
        isinstance(node, (ast.Raise, ast.Pass))
        or (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and node.value.value is Ellipsis
        )
        for node in body
    )


def check_arguments(where, sections, expected, required=True):
    """Compares an ``Arguments`` section with a signature.

    Arguments
    ---------
    where : str
        What is checked, for the messages.
    sections : dict
        The parsed sections of the docstring.
    expected : list of str
        The parameter names.
    required : bool
        Whether a docstring without an ``Arguments`` section is an error
        (public API); a section that is there is always checked.

    Returns
    -------
    list of str
        One message per problem.
    """
    errors = []
    documented = sections.get("Arguments")
    if documented is None:
        if expected and required:
            return [f"{where}: no 'Arguments' section for {expected}"]
        return []
    documented = documented or []
    bare = [name.lstrip("*") for name in documented]
    for name in expected:
        if name not in documented and name.lstrip("*") not in bare:
            errors.append(f"{where}: argument '{name}' is not documented")
    plain = {name.lstrip("*") for name in expected}
    for name in bare:
        if name not in plain:
            errors.append(f"{where}: documents '{name}', not an argument")
    return errors


def check_function(where, func, sections, public):
    """Checks the sections of a function's docstring against its code.

    Arguments
    ---------
    where : str
        What is checked, for the messages.
    func : ast.FunctionDef or ast.AsyncFunctionDef
        The function.
    sections : dict
        The parsed sections of its docstring.
    public : bool
        Part of the library's public API: the sections are required.

    Returns
    -------
    list of str
        One message per problem.
    """
    errors = check_arguments(
        where, sections, signature_names(func), required=public
    )
    nodes = list(own_nodes(func))
    is_generator = any(isinstance(n, (ast.Yield, ast.YieldFrom)) for n in nodes)
    returns_value = any(
        isinstance(n, ast.Return)
        and n.value is not None
        and not (isinstance(n.value, ast.Constant) and n.value.value is None)
        for n in nodes
    )
    exempt = "property" in decorator_names(func) or is_stub(func)
    if is_generator and "Returns" in sections:
        errors.append(f"{where}: a generator's section is 'Yields'")
    if is_generator and public and "Yields" not in sections:
        errors.append(f"{where}: generator without a 'Yields' section")
    if returns_value and not is_generator and not exempt and public:
        if "Returns" not in sections:
            errors.append(f"{where}: returns a value, no 'Returns' section")
    if "Returns" in sections and not returns_value and not exempt:
        errors.append(f"{where}: 'Returns' section, but returns nothing")
    return errors


def check_file(rel):
    """Checks every docstring of one file.

    Arguments
    ---------
    rel : str
        The path of the file, relative to the repository root.

    Returns
    -------
    list of str
        One message per problem.
    """
    tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
    errors = []
    if ast.get_docstring(tree) is None:
        errors.append(f"{rel}: the module has no docstring")

    library = rel.startswith("speechbrain_sense/") and not rel.startswith(
        "speechbrain_sense/testing/"
    )

    def is_public(name, parent_class):
        """Whether a definition is public API of the library.

        Arguments
        ---------
        name : str
            Its qualified name (``Class.method``, ``function``).
        parent_class : ast.ClassDef or None
            The class it is defined in, if any.

        Returns
        -------
        bool
            In ``speechbrain_sense/`` (not ``testing/``), at module level or
            a method of a module-level class, and no part of the name
            starts with an underscore.
        """
        parts = name.split(".")
        return (
            library
            and len(parts) <= 2
            and (len(parts) == 1 or parent_class is not None)
            and not any(part.startswith("_") for part in parts)
        )

    def visit(node, prefix, parent_class):
        """Checks the definitions directly under one node, recursively.

        Arguments
        ---------
        node : ast.AST
            The module, class or function whose body is walked.
        prefix : str
            The qualified name of ``node``, for the messages.
        parent_class : ast.ClassDef or None
            ``node`` when it is a class.
        """
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                where = f"{rel}:{child.lineno} {name}"
                doc = ast.get_docstring(child)
                if child.name == "__init__" and parent_class is not None:
                    # Documented by the class docstring.
                    if doc is not None:
                        errors.extend(
                            check_function(
                                where, child, parse_sections(doc), False
                            )
                        )
                elif doc is None:
                    errors.append(f"{where}: no docstring")
                else:
                    public = is_public(name, parent_class)
                    errors.extend(
                        check_function(
                            where, child, parse_sections(doc), public
                        )
                    )
                visit(child, name + ".", None)
            elif isinstance(child, ast.ClassDef):
                name = f"{prefix}{child.name}"
                where = f"{rel}:{child.lineno} class {name}"
                doc = ast.get_docstring(child)
                if doc is None:
                    errors.append(f"{where}: no docstring")
                else:
                    init = next(
                        (
                            n
                            for n in child.body
                            if isinstance(n, ast.FunctionDef)
                            and n.name == "__init__"
                        ),
                        None,
                    )
                    if init is not None and ast.get_docstring(init) is None:
                        errors.extend(
                            check_arguments(
                                where,
                                parse_sections(doc),
                                signature_names(init),
                                required=is_public(name, None),
                            )
                        )
                visit(child, name + ".", child)
            else:
                visit(child, prefix, parent_class)

    visit(tree, "", None)
    return errors


@pytest.mark.parametrize(
    "rel",
    [f for f in python_files() if f not in TEMPORARY_EXCLUSIONS],
)
def test_docstrings(rel):
    """Each checked file follows the docstring rules.

    Arguments
    ---------
    rel : str
        The path of the file, relative to the repository root.
    """
    errors = check_file(rel)
    assert not errors, "\n".join(errors)


def test_exclusions_still_exist():
    """The temporary exclusions name files that exist."""
    for rel in TEMPORARY_EXCLUSIONS:
        assert (ROOT / rel).is_file(), rel
