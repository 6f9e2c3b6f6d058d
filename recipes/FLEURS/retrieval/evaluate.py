#!/usr/bin/env python3
"""Recipe for evaluating a SENSE encoder by multilingual retrieval.

An exported SENSE model embeds every utterance, the teacher embeds every
transcript, and retrieval is scored in three directions:

* speech -> text per language (each utterance against the distinct
  transcripts of its language),
* text -> speech per language,
* speech -> speech per ordered language pair: an utterance must retrieve a
  recording of the same sentence in the other language (FLEURS ``id``).

Each with Recall@1/5/10, the xSIM margin-based error (LASER's ratio margin,
k = 4) and the chance level. Search is exact and blockwise (GPU when
present). Results go to ``results.json``, ``results.md`` and
``speech_to_speech.png`` (heat map of the language-pair matrix).

To run this recipe:
> python evaluate.py hparams/retrieval.yaml --data_folder=/data/fleurs \\
>     --model_dir=/models/sense

On a flat folder of clips (``fleurs-LANG-NNN.ogg`` + ``.txt``) or a CSV:
> python evaluate.py hparams/retrieval.yaml --data_folder=clips/ \\
>     --model_dir=... ; ... --csv_file=my.csv --data_folder=.

Authors
 * speechbrain-sense developers 2026
"""

import json
import sys
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.encoders.inference import SenseEncoder
from speechbrain_sense.retrieval import multilingual_retrieval, zero_shot_split
from speechbrain_sense.teachers.sentence_encoders import (
    model_teacher,
    model_training_facts,
    teacher_from_source,
)

logger = get_logger(__name__)

DIRECTIONS = {
    "speech_to_text": "Speech -> text (per language)",
    "text_to_speech": "Text -> speech (per language)",
    "speech_to_speech": "Speech -> speech (same sentence, other language)",
}


def ensure_synthetic_corpus(
    data_folder, languages, per_language, sentences="grammar", **options
):
    """Generates a parallel synthetic corpus when ``data_folder`` is empty.

    Every language speaks the same first ``per_language`` sentences of a
    parallel list (``"grammar"``: the phrase grammar of the CPU demo,
    ``"builtin"``: the built-in sentence lists), once each, so that every
    utterance has a translation in every other language.
    """
    folder = Path(data_folder)
    if folder.is_dir() and any(folder.iterdir()):
        return
    from speechbrain_sense.synthetic.common_voice import (
        load_builtin_sentences,
        make_synthetic_cv,
    )
    from speechbrain_sense.synthetic.phrase_grammar import grammar_sentences

    lists = {"grammar": grammar_sentences, "builtin": load_builtin_sentences}
    if sentences not in lists:
        raise ValueError(
            f"synthetic_corpus sentences must be {sorted(lists)}, not "
            f"{sentences!r}"
        )
    chosen = {lang: lists[sentences](lang)[:per_language] for lang in languages}
    logger.info(f"data_folder {folder} is empty: synthesising a corpus")
    make_synthetic_cv(
        folder, languages, per_language, sentences=chosen, **options
    )


def load_teacher(model_dir, teacher_source, cache_dir):
    """The model's own teacher (``"model"``) or the one named.

    Arguments
    ---------
    model_dir : str
        The exported model (folder or hub id).
    teacher_source : str
        ``"model"``, or a :func:`teacher_from_source` source.
    cache_dir : str
        HuggingFace cache directory for the teacher.

    Returns
    -------
    torch.nn.Module
        The teacher.
    """
    if teacher_source == "model":
        teacher = model_teacher(model_dir, cache_dir=cache_dir)
    else:
        teacher = teacher_from_source(teacher_source, cache_dir=cache_dir)
    logger.info(f"teacher: {getattr(teacher, 'name', teacher_source)}")
    return teacher


def embed(rows, hparams, run_opts, teacher):
    """Speech embeddings of every row and teacher embeddings of the texts."""
    encoder = SenseEncoder.from_hparams(
        source=str(hparams["model_dir"]),
        savedir=str(hparams["model_savedir"]),
        # --device picks it; otherwise the GPU when there is one.
        run_opts=run_opts,
    )
    speech = encoder.encode_files(
        [row["wav"] for row in rows],
        max_batch_seconds=hparams["max_batch_seconds"],
        durations=(
            [row["duration"] for row in rows]
            if all(row["duration"] for row in rows)
            else None
        ),
    )
    texts = sorted({row["text"] for row in rows})
    teacher_embeddings = teacher.encode(
        texts,
        batch_size=hparams["teacher_batch_size"],
        device=str(encoder.device),
    )
    if teacher_embeddings.shape[1] != speech.shape[1]:
        raise ValueError(
            f"the model embeds into {speech.shape[1]} dimensions but the "
            f"teacher into {teacher_embeddings.shape[1]}: evaluate with the "
            "teacher the model was trained against"
        )
    return speech, dict(zip(texts, teacher_embeddings)), encoder.device


def results_table(results, notes):
    """Markdown tables of every direction (percentages).

    With the model's training languages known (``results["zero_shot"]``),
    each row says whether its language (both, for a pair) was seen in
    training, and the seen and zero-shot means follow the overall one.
    Speech -> speech ends with the xSIM error per language pair.
    """
    lines = []
    groups = results.get("zero_shot") or {}
    for direction, title in DIRECTIONS.items():
        table = results.get(direction)
        lines += [f"## {title}", ""]
        if not table:
            lines += [f"Skipped: {notes.get(direction, 'no data')}.", ""]
            continue
        split = groups.get(direction)
        ks = [key for key in next(iter(table.values())) if key[:2] == "R@"]
        lines += [
            "| | queries | candidates | "
            + " | ".join(ks)
            + " | xSIM error | chance R@1 | seen in training |",
            "|---|---|---|" + "---|" * (len(ks) + 3),
        ]
        rows = dict(table)
        if split:
            rows.update(
                {k: v for k, v in split.items() if k.startswith("mean (")}
            )
        for name, row in rows.items():
            if split is None or name.startswith("mean"):
                seen = ""
            else:
                seen = "yes" if name in split["seen"] else "**no**"
            lines.append(
                f"| {name} | {row['count']} | {row['candidates']} | "
                + " | ".join(f"{100 * row[k]:.1f}" for k in ks)
                + f" | {100 * row['xsim']:.1f} | "
                f"{100 * row['chance@1']:.1f} | {seen} |"
            )
        lines.append("")
        if direction == "speech_to_speech":
            lines += pair_matrix_lines(table, "xsim", "xSIM error (%)")
    return "\n".join(lines)


def pair_matrix_lines(pairs, key, title):
    """A query-language x target-language markdown matrix of one metric.

    Arguments
    ---------
    pairs : dict
        ``{"A->B": metrics}`` (the ``"mean"`` entries are ignored).
    key : str
        The metric, e.g. ``"xsim"`` (a fraction, shown in percent).
    title : str
        The heading above the matrix.

    Returns
    -------
    list of str
        Markdown lines; a pair without data is ``-``.
    """
    names = [name for name in pairs if "->" in name]
    languages = sorted({lang for name in names for lang in name.split("->")})
    lines = [
        f"### Speech -> speech {title}, query (rows) -> target (columns)",
        "",
        "| query / target | " + " | ".join(languages) + " |",
        "|---|" + "---|" * len(languages),
    ]
    for source in languages:
        cells = []
        for target in languages:
            row = pairs.get(f"{source}->{target}")
            if target == source:
                cells.append("")
            elif row is None:
                cells.append("-")
            else:
                cells.append(f"{100 * row[key]:.1f}")
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _text_colour(image, value):
    """Black on light cells, white on dark ones."""
    red, green, blue, _ = image.cmap(image.norm(value))
    return "k" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "w"


def plot_pair_matrix(pairs, path):
    """Heat maps of speech->speech R@1 and xSIM error per language pair.

    Arguments
    ---------
    pairs : dict
        ``{"A->B": metrics}`` (the ``"mean"`` entry is ignored).
    path : str or Path
        PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [name for name in pairs if name != "mean"]
    languages = sorted({lang for name in names for lang in name.split("->")})
    index = {lang: i for i, lang in enumerate(languages)}
    size = len(languages)
    fig, axes = plt.subplots(
        1, 2, figsize=(2.0 + 1.6 * size, 1.2 + 0.8 * size), squeeze=False
    )
    for ax, (key, title, cmap) in zip(
        axes[0],
        (("R@1", "R@1 (%)", "viridis"), ("xsim", "xSIM error (%)", "magma_r")),
    ):
        matrix = np.full((size, size), np.nan)
        for name in names:
            source, target = name.split("->")
            matrix[index[source], index[target]] = 100 * pairs[name][key]
        image = ax.imshow(matrix, vmin=0, vmax=100, cmap=cmap)
        for i in range(size):
            for j in range(size):
                if not np.isnan(matrix[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{matrix[i, j]:.0f}",
                        ha="center",
                        va="center",
                        color=_text_colour(image, matrix[i, j]),
                        fontsize=8,
                    )
        ax.set_xticks(range(size), languages)
        ax.set_yticks(range(size), languages)
        ax.set_xlabel("target (speech)")
        ax.set_ylabel("query (speech)")
        ax.set_title(f"speech -> speech {title}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_results(results, notes, output_folder, info):
    """``results.json``, ``results.md`` and the heat map."""
    out = Path(output_folder)
    (out / "results.json").write_text(
        json.dumps({"info": info, "notes": notes, **results}, indent=1)
    )
    header = [
        f"# Retrieval with {info['model_dir']}",
        "",
        f"{info['utterances']} utterances, {info['languages']} languages, "
        f"{info['texts']} distinct transcripts ({info['data']}).",
        "",
    ]
    table = "\n".join(header) + "\n" + results_table(results, notes)
    (out / "results.md").write_text(table, encoding="utf-8")
    if results.get("speech_to_speech"):
        plot_pair_matrix(
            results["speech_to_speech"], out / "speech_to_speech.png"
        )
    return table


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    if not hparams["csv_file"]:
        run_on_main(
            ensure_synthetic_corpus,
            args=[hparams["data_folder"]],
            kwargs=hparams["synthetic_corpus"],
        )

    from fleurs_prepare import (  # noqa: E402
        prepare_retrieval_manifest,
        read_manifest,
    )

    csv_file = hparams["csv_file"]
    if not csv_file:
        csv_file = prepare_retrieval_manifest(
            data_folder=hparams["data_folder"],
            save_folder=hparams["save_folder"],
            split=hparams["split"],
            languages=hparams["languages"],
            text_column=hparams["text_column"],
            max_per_language=hparams["max_per_language"],
        )
    rows = read_manifest(csv_file, data_root=hparams["data_folder"])

    teacher = load_teacher(
        hparams["model_dir"],
        hparams["teacher_source"],
        hparams["teacher_cache_dir"],
    )
    speech, text_keys, device = embed(rows, hparams, run_opts, teacher)
    pair_ids = [row["pair_id"] for row in rows]
    notes = {}
    if not any(pair_ids):
        notes["speech_to_speech"] = (
            "the data has no pair_id (which clips are translations of each "
            "other is unknown)"
        )
    results = multilingual_retrieval(
        speech,
        text_keys,
        [row["text"] for row in rows],
        [row["lang"] for row in rows],
        pair_ids=pair_ids if any(pair_ids) else None,
        ks=tuple(hparams["recall_ks"]),
        xsim_k=hparams["xsim_k"],
        block_size=hparams["block_size"],
        device=device,
        backend=hparams["search_backend"],
    )
    if any(pair_ids) and results["speech_to_speech"] is None:
        notes["speech_to_speech"] = "no pair_id is shared by two languages"
    # Seen against zero-shot languages, when the model says what it was
    # trained on (its training.json).
    training = model_training_facts(hparams["model_dir"]) or {}
    if training.get("languages"):
        results["zero_shot"] = {
            "training_languages": training["languages"],
            **{
                direction: zero_shot_split(table, training["languages"])
                for direction, table in results.items()
                if direction in DIRECTIONS and table
            },
        }
    else:
        notes["zero_shot"] = (
            "the model does not name its training languages (no "
            "training.json languages): seen and zero-shot are not told apart"
        )
    info = {
        "model_dir": str(hparams["model_dir"]),
        "data": str(csv_file),
        "utterances": len(rows),
        "languages": len({row["lang"] for row in rows}),
        "texts": len(text_keys),
    }
    print(write_results(results, notes, hparams["output_folder"], info))
