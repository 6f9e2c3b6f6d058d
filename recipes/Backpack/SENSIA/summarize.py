#!/usr/bin/env python3
"""Markdown tables of SENSIA runs from their ``results.json``.

> python summarize.py results/sensia/1234 results/dense/1234 ...

Prints the comparison table of the README (R@1 both directions with each
run's headline view, target-language perplexity, sense entropy, the
paper's local topology rho, our sense-similarity correlation, our
Procrustes cosine on anchors and held out, the authors' Procrustes cosine
and MSE and their mutual-information gap, our sense-mixture ablation, the
authors' sense collapse) and a second table with R@1 of every sentence
view.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
from pathlib import Path

VIEWS = ("context", "sense", "mean")


def load(folder):
    """The results of one run, with its folder name."""
    results = json.loads((Path(folder) / "results.json").read_text())
    results["folder"] = str(folder)
    return results


def main_table(runs):
    """Headline metrics, one row per run."""
    lines = [
        "| run | init | train pairs | steps | R@1 en→fr | R@1 fr→en "
        "| view | fr ppl | sense entropy | local topology ρ "
        "| sense-sim. corr. (ours) | Procrustes cos (anchors / held-out) "
        "| authors' Procrustes cos / MSE | ΔMI "
        "| ΔCE top-1 / uniform (ours) "
        "| authors' collapse ΔCE top-k / uniform, off-diag. cos |",
        "|---" * 16 + "|",
    ]
    for run in runs:
        test = run["test"]
        view = run.get("retrieval_view", "sense")
        recall = test["retrieval"][view]
        analysis = run.get("analysis") or {}
        topology = analysis.get("local_topology", {})
        correlation = analysis.get("sense_similarity_correlation", {})
        structure = analysis.get("global_structure", {})
        ablation = analysis.get("ablation", {})
        procrustes = analysis.get("procrustes", {})
        information = analysis.get("mutual_information", {})
        collapse = analysis.get("sense_collapse", {})
        cosine = collapse.get("offdiag_cosine")  # None with one sense
        cosine = float("nan") if cosine is None else cosine
        init = "English" if run["init_from_pretrained"] else "random"
        lines.append(
            f"| {run['experiment']} | {init} | {run['train_pairs']} "
            f"| {run['steps']} "
            f"| {100 * recall['src2tgt']['R@1']:.1f} "
            f"| {100 * recall['tgt2src']['R@1']:.1f} | {view} "
            f"| {test['ppl']:.1f} "
            f"| {analysis.get('sense_entropy', float('nan')):.2f} "
            f"| {topology.get('rho', float('nan')):.3f} "
            f"| {correlation.get('rho', float('nan')):.3f} "
            f"| {structure.get('train_cosine', float('nan')):.3f} / "
            f"{structure.get('heldout_cosine', float('nan')):.3f} "
            f"| {procrustes.get('procrustes_cos', float('nan')):.3f} / "
            f"{procrustes.get('procrustes_mse', float('nan')):.4f} "
            f"| {information.get('delta_mi', float('nan')):.3f} "
            f"| {ablation.get('delta_top1', float('nan')):+.3f} / "
            f"{ablation.get('delta_uniform', float('nan')):+.3f} "
            f"| {collapse.get('delta_top_k', float('nan')):+.3f} / "
            f"{collapse.get('delta_uniform', float('nan')):+.3f}, "
            f"{cosine:.3f} |"
        )
    return "\n".join(lines)


def views_table(runs):
    """R@1 (en→fr / fr→en) of every sentence view, one row per run."""

    header = " | ".join(f"{view} view" for view in VIEWS)
    lines = [f"| run | {header} |", "|---" * (len(VIEWS) + 1) + "|"]
    for run in runs:
        cells = []
        for view in VIEWS:
            recall = run["test"]["retrieval"][view]
            cells.append(
                f"{100 * recall['src2tgt']['R@1']:.1f} / "
                f"{100 * recall['tgt2src']['R@1']:.1f}"
            )
        lines.append(f"| {run['experiment']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="output_folder of runs")
    args = parser.parse_args()
    runs = [load(folder) for folder in args.folders]
    print(main_table(runs))
    print()
    print(views_table(runs))
