"""The import graph of ``speechbrain_sense``, read from the source.

Nothing is imported: every ``import`` statement of every module (at module
level and inside functions) is parsed with :mod:`ast`. A module is named by
its dotted path; a *unit* is what ``docs/architecture.md`` describes, a
subpackage (``encoders``) or a top-level module (``audio``).

:data:`MAY_IMPORT` is the rule: the units each unit may import.
``test_architecture.py`` holds the code to it, and

    python tests/consistency/import_graph.py --png docs/figures/architecture.png

draws the units and their imports, floor by floor (a unit stands above
everything it imports), as the picture of ``docs/architecture.md``.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "speechbrain_sense"
# The package's face: the version, and the finder of the 0.1.0 module
# paths (which the two packages that took over an old path also use).
ROOT_MODULES = {PACKAGE, f"{PACKAGE}._moved"}
# The units each unit may import, besides the root. A new arrow between
# units is a design decision: make it here, and in docs/architecture.md.
MAY_IMPORT = {
    "audio": set(),
    "hashing": set(),
    "retrieval": set(),
    "metrics": set(),
    "training": set(),
    "backpack": set(),
    "testing": set(),
    "teachers": {"hashing"},
    "encoders": {"audio", "teachers"},
    "data": {"audio", "hashing", "encoders"},
    "search": {"audio", "hashing", "retrieval", "teachers", "encoders", "data"},
    "sensia": {"retrieval", "training", "backpack"},
    "synthetic": {"audio", "teachers", "encoders", "data", "search", "testing"},
    "tasks": {"audio", "metrics", "encoders", "data", "synthetic"},
}


def package_modules(root=REPO):
    """Every module of the package, by dotted name.

    Arguments
    ---------
    root : Path
        The repository.

    Returns
    -------
    dict
        Dotted name -> source file.
    """
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_names(path, module):
    """The absolute module paths a file imports, with their line numbers.

    ``from a.b import c`` counts as importing ``a.b.c`` (resolved later to
    ``a.b`` when ``c`` is a name, not a module); relative imports are made
    absolute against ``module``.

    Arguments
    ---------
    path : Path
        The source file.
    module : str
        Its dotted name (for relative imports); for a package, its own.

    Returns
    -------
    list of tuple
        ``(dotted name, line)``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                keep = len(parts) - node.level + (1 if is_package else 0)
                base = ".".join(parts[:keep] + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{a.name}", node.lineno) for a in node.names]
    return found


def module_graph(root=REPO):
    """Which package module imports which, and where.

    Arguments
    ---------
    root : Path
        The repository.

    Returns
    -------
    dict
        Dotted name -> {imported dotted name: first line}; only modules of
        the package appear as targets, and a module never imports itself.
    """
    modules = package_modules(root)
    graph = {}
    for name, path in modules.items():
        edges = {}
        for target, line in imported_names(path, name):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def unit_of(module):
    """The unit (subpackage or top-level module) of a package module.

    Arguments
    ---------
    module : str
        Dotted name inside the package.

    Returns
    -------
    str
        ``"encoders"`` for ``speechbrain_sense.encoders.pooling``; ``""``
        for the package's root.

    Example
    -------
    >>> unit_of("speechbrain_sense.encoders.pooling"), unit_of(PACKAGE)
    ('encoders', '')
    >>> unit_of("speechbrain_sense._moved")
    ''
    """
    if module in ROOT_MODULES:
        return ""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def unit_graph(graph):
    """The module graph folded onto units, with the imports behind each edge.

    Arguments
    ---------
    graph : dict
        From :func:`module_graph`.

    Returns
    -------
    dict
        Unit -> {imported unit: [(module, imported module), ...]}; imports
        inside a unit and of the package root are left out.
    """
    units = defaultdict(lambda: defaultdict(list))
    for module, edges in graph.items():
        unit = unit_of(module)
        units[unit]
        for target in edges:
            other = unit_of(target)
            if other and other != unit:
                units[unit][other].append((module, target))
    units.pop("", None)
    return {u: dict(edges) for u, edges in units.items()}


def cycles(graph):
    """The strongly connected components of more than one node.

    Arguments
    ---------
    graph : dict
        Node -> iterable of nodes it points to.

    Returns
    -------
    list of list
        Each import cycle's nodes, sorted.

    Example
    -------
    >>> cycles({"a": ["b"], "b": ["a", "c"], "c": []})
    [['a', 'b']]
    """
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        """Tarjan's step (recursive: the graph has a few dozen nodes).

        Arguments
        ---------
        node : str
            The node to visit.
        """
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def floors(graph):
    """Each node's floor: 0 for what imports nothing, else one above the
    highest node it imports (the graph must be acyclic).

    Arguments
    ---------
    graph : dict
        Node -> iterable of nodes.

    Returns
    -------
    dict
        Node -> floor.

    Example
    -------
    >>> floors({"a": ["b"], "b": ["c"], "c": [], "d": ["c"]})
    {'a': 2, 'b': 1, 'c': 0, 'd': 1}
    """
    memo = {}

    def floor(node):
        """The floor of one node.

        Arguments
        ---------
        node : str
            The node.

        Returns
        -------
        int
            Its floor.
        """
        if node not in memo:
            below = [floor(other) for other in graph.get(node, ())]
            memo[node] = 1 + max(below) if below else 0
        return memo[node]

    return {node: floor(node) for node in sorted(graph)}


def unit_lines(root=REPO):
    """Lines of code and modules of every unit.

    Arguments
    ---------
    root : Path
        The repository.

    Returns
    -------
    dict
        Unit -> ``(modules, lines)``.
    """
    sizes = defaultdict(lambda: [0, 0])
    for name, path in package_modules(root).items():
        unit = unit_of(name)
        if unit:
            sizes[unit][0] += 1
            sizes[unit][1] += len(path.read_text(encoding="utf-8").split("\n"))
    return {unit: tuple(size) for unit, size in sizes.items()}


def draw(path, root=REPO):
    """Draws the units and their imports, floor by floor, as a PNG.

    Arguments
    ---------
    path : str or Path
        The PNG to write.
    root : Path
        The repository.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    units = unit_graph(module_graph(root))
    for unit in MAY_IMPORT:
        units.setdefault(unit, {})
    level = floors(units)
    sizes = unit_lines(root)
    rows = defaultdict(list)
    for unit, floor in level.items():
        rows[floor].append(unit)
    width = max(len(r) for r in rows.values())
    position = {}
    # Top floor first; every lower floor ordered by where its importers
    # stand (the barycentre rule), which keeps arrows short and uncrossed.
    for floor in sorted(rows, reverse=True):

        def key(unit):
            """Mean x of the placed units that import ``unit``.

            Arguments
            ---------
            unit : str
                A unit of this floor.

            Returns
            -------
            tuple
                Sort key.
            """
            xs = [position[u][0] for u in position if unit in units[u]]
            return (sum(xs) / len(xs) if xs else width, unit)

        row = sorted(rows[floor], key=key)
        for i, unit in enumerate(row):
            x = (i + 0.5) * width / len(row)
            position[unit] = (x, floor * 1.6)
    figure, axis = plt.subplots(figsize=(1.9 * width + 1, 1.5 * len(rows)))
    box_w, box_h = 0.9, 0.62
    for unit, targets in units.items():
        for target, pairs in targets.items():
            (x0, y0), (x1, y1) = position[unit], position[target]
            arrow = FancyArrowPatch(
                (x0, y0 - box_h / 2),
                (x1, y1 + box_h / 2),
                arrowstyle="-|>",
                mutation_scale=10,
                connectionstyle="arc3,rad=0.08",
                color="0.45",
                linewidth=0.6 + 0.25 * min(len(pairs), 8),
                alpha=0.7,
            )
            axis.add_patch(arrow)
    for unit, (x, y) in position.items():
        modules, lines = sizes.get(unit, (1, 0))
        package = (root / PACKAGE / unit).is_dir()
        axis.add_patch(
            FancyBboxPatch(
                (x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02",
                facecolor="#dbe8f5" if package else "#f2f2f2",
                edgecolor="#2b5d8a" if package else "0.5",
            )
        )
        label = f"{unit}/" if package else f"{unit}.py"
        detail = (
            f"{modules} modules, {lines} lines"
            if package
            else (f"{lines} lines")
        )
        axis.text(x, y + 0.09, label, ha="center", va="center", fontsize=10)
        axis.text(x, y - 0.16, detail, ha="center", va="center", fontsize=7)
    axis.set_xlim(-0.3, width + 0.3)
    axis.set_ylim(-0.7, (len(rows) - 1) * 1.6 + 0.7)
    axis.axis("off")
    axis.set_title(
        f"{PACKAGE}: units and their imports (an arrow: imports; a unit "
        "stands above all it imports)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    """Command line: print the unit graph, or draw it with ``--png``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", help="draw the unit graph into this file")
    args = parser.parse_args(argv)
    units = unit_graph(module_graph())
    for unit, floor in sorted(floors(units).items(), key=lambda x: -x[1]):
        print(f"floor {floor}  {unit:10s} -> {', '.join(sorted(units[unit]))}")
    if args.png:
        draw(args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
