"""The SLUE-TED summarization recipe: data preparation, and a run end to end.

The recipe runs as a user runs it (``python train.py hparams/...yaml`` in a
subprocess) on a synthetic SLUE-TED corpus, with an exported tiny SENSE
model as encoder, a tiny random BART as decoder and a tiny random BERT as
BERTScore model.
"""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

from speechbrain_sense.metrics.summarization import BERTScore, rouge_scores
from speechbrain_sense.synthetic.slue_ted import make_synthetic_slue_ted

RECIPE = Path(__file__).resolve().parents[2] / "recipes/SLUE-TED/summarization"
sys.path.insert(0, str(RECIPE))

from slue_ted_prepare import (  # noqa: E402
    SlueTedFormatError,
    prepare_slue_ted,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def slue_ted(tmp_path_factory):
    """Five synthetic talks (3 fine-tune, 1 dev, 1 test), 3-4 sentences."""
    out = tmp_path_factory.mktemp("slue-ted")
    make_synthetic_slue_ted(out, talks=(3, 1, 1), sentences_per_talk=(3, 4))
    return out


def read_rows(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(
            csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
        )


def test_prepare_writes_manifests_from_the_tsvs(slue_ted, tmp_path):
    save = tmp_path / "save"
    report = prepare_slue_ted(slue_ted, save)
    assert [report[s]["kept"] for s in ("train", "dev", "test")] == [3, 1, 1]
    assert not any(report[s]["blind"] for s in report)
    source = read_rows(slue_ted / "slue-ted_fine-tune.tsv")
    rows = read_rows(save / "train.csv")
    assert [r["ID"] for r in rows] == [r["id"] for r in source]
    for row, talk in zip(rows, source):
        assert row["summary"] == talk["abstract"]
        assert row["title"] == talk["title"]
        wav = Path(row["wav"].replace("$data_root", str(slue_ted)))
        assert wav == slue_ted / "fine-tune" / f"{talk['id']}.flac"
        info = soundfile.info(str(wav))
        assert float(row["duration"]) == pytest.approx(
            info.frames / info.samplerate, abs=1e-3
        )
        assert float(row["duration"]) > 5  # several windows of 4 s
    # Idempotent: same options, nothing rewritten.
    mtime = (save / "train.csv").stat().st_mtime_ns
    assert prepare_slue_ted(slue_ted, save) == report
    assert (save / "train.csv").stat().st_mtime_ns == mtime
    # Another target redoes it.
    prepare_slue_ted(slue_ted, save, summary_target="title_abstract")
    first = read_rows(save / "train.csv")[0]
    assert first["summary"] == f"{source[0]['title']}. {source[0]['abstract']}"
    # The duration filter drops talks; none left is an error.
    with pytest.raises(ValueError, match="no talk kept"):
        prepare_slue_ted(slue_ted, tmp_path / "none", max_duration=1.0)


def test_prepare_errors_name_file_and_line(slue_ted, tmp_path):
    data = tmp_path / "slue-ted"
    shutil.copytree(slue_ted, data)
    tsv = data / "slue-ted_dev.tsv"
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join([*lines, "ted_1\tonly two fields"]) + "\n")
    with pytest.raises(
        SlueTedFormatError, match=r"slue-ted_dev.tsv:3: 2 fields"
    ):
        prepare_slue_ted(data, tmp_path / "a")
    report = prepare_slue_ted(data, tmp_path / "b", skip_bad_rows=True)
    assert report["dev"]["dropped_by_reason"] == {"malformed_row": 1}
    # A row whose audio is missing.
    fields = lines[1].split("\t")
    fields[0] = "ted_00000"
    tsv.write_text("\n".join([*lines, "\t".join(fields)]) + "\n")
    with pytest.raises(
        SlueTedFormatError, match=r"slue-ted_dev.tsv:3: .*not found"
    ):
        prepare_slue_ted(data, tmp_path / "c")
    # A blind test set (no title/abstract): hypotheses only.
    test = data / "slue-ted_test.tsv"
    rows = read_rows(test)
    test.write_text(
        "id\tspeaker\tsplit\n"
        + "".join(f"{r['id']}\t{r['speaker']}\ttest\n" for r in rows)
    )
    tsv.write_text("\n".join(lines) + "\n")
    report = prepare_slue_ted(data, tmp_path / "d")
    assert report["test"]["blind"] and report["test"]["kept"] == 1
    assert read_rows(tmp_path / "d" / "test.csv")[0]["summary"] == ""
    # ...but the fine-tune split must have references.
    shutil.copy(test, data / "slue-ted_fine-tune.tsv")
    with pytest.raises(SlueTedFormatError, match="fine-tune.tsv:1"):
        prepare_slue_ted(data, tmp_path / "e")


# A baseline for the tiny random BERT in bert-score's format (it ships
# none for it); the layer-2 row is the one used.
TINY_BERT_BASELINE = (
    "LAYER,P,R,F\n0,0.1,0.1,0.1\n1,0.3,0.3,0.3\n2,0.6,0.55,0.5\n"
)


def test_recipe_trains_decodes_and_scores(slue_ted, sense_model_dir, tmp_path):
    out = tmp_path / "results"
    baseline = tmp_path / "tiny_bert_baseline.tsv"
    baseline.write_text(TINY_BERT_BASELINE)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "hparams/summarization_tiny.yaml",
            f"--data_folder={slue_ted}",
            f"--output_folder={out}",
            f"--encoder_source={sense_model_dir}",
            "--number_of_epochs=2",
            "--valid_search_interval=1",
            "--bertscore_rescale_with_baseline=True",
            f"--bertscore_baseline_path={baseline}",
            "--device=cpu",
        ],
        cwd=RECIPE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    log = (out / "train_log.txt").read_text()
    assert "epoch: 2" in log and "valid rougeL" in log
    report = json.loads((out / "test_metrics.json").read_text())
    metrics, settings = report["metrics"], report["settings"]
    assert metrics["summaries"] == 1
    assert {
        "rouge1",
        "rouge2",
        "rougeL",
        "bertscore_f1",
        "bertscore_f1_rescaled",
    } <= set(metrics)
    # Each BERTScore is labelled with model, layer and scale.
    model = out / "tiny_bert_32d"
    assert settings["bertscore_f1"] == (
        f"BERTScore F1 ({model}, layer 2, raw: not rescaled)"
    )
    assert settings["bertscore_f1_rescaled"] == (
        f"BERTScore F1 ({model}, layer 2, rescaled with baseline {baseline})"
    )
    assert "Porter stemming" in settings["rouge"]
    assert "beam 3" in settings["decoding"]
    # The hypotheses file: one row per test talk, with its reference.
    rows = read_rows(out / "test_hypotheses.tsv")
    talks = read_rows(slue_ted / "slue-ted_test.tsv")
    assert [r["ID"] for r in rows] == [t["id"] for t in talks]
    assert [r["reference"] for r in rows] == [t["abstract"] for t in talks]
    # The report's numbers are those of the hypotheses file.
    hyps = [r["hypothesis"] for r in rows]
    refs = [r["reference"] for r in rows]
    rouge = rouge_scores(hyps, refs, use_stemmer=True)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert metrics[name] == pytest.approx(rouge[name])
    bertscore = BERTScore(model, num_layers=2, device="cpu")
    raw = bertscore(hyps, refs)["bertscore_f1"]
    assert metrics["bertscore_f1"] == pytest.approx(raw, abs=1e-4)
    # Rescaled with layer 2's F baseline (0.5): (s - b) / (1 - b).
    assert metrics["bertscore_f1_rescaled"] == pytest.approx(
        100 * (raw / 100 - 0.5) / 0.5, abs=1e-3
    )
    table = (out / "test_metrics.md").read_text()
    assert "| ROUGE-L |" in table
    assert f"| BERTScore F1, raw | {metrics['bertscore_f1']:.2f} |" in table
    assert (
        f"| BERTScore F1, rescaled | {metrics['bertscore_f1_rescaled']:.2f} |"
    ) in table
    assert f"* bertscore_f1_rescaled: {settings['bertscore_f1_rescaled']}" in (
        table
    )
    log = (out / "log.txt").read_text()
    assert "bertscore_f1_rescaled = " in log and "rescaled with baseline" in log


SCRATCH_DECODER = """decoder: !new:speechbrain_sense.tasks.seq2seq.TransformerTextDecoder
    vocab_size: 40
    memory_dim: !ref <adaptor_dim>
    d_model: 32
    nhead: 2
    num_layers: 1
    d_ffn: 64
    tokenizer: !ref <target_tokenizer_file>
    label_smoothing: !ref <label_smoothing>
    beam_size: 2
    max_decode_steps: 20
"""


def test_recipe_with_a_from_scratch_decoder(slue_ted, tmp_path):
    """The decoder block swapped for a Transformer trained from scratch."""
    text = (RECIPE / "hparams" / "summarization_tiny.yaml").read_text()
    start = text.index(
        "decoder: !new:speechbrain_sense.tasks.seq2seq.Pretrained"
    )
    end = text.index("\nmodules:")
    hparams = tmp_path / "scratch.yaml"
    hparams.write_text(text[:start] + SCRATCH_DECODER + text[end:])
    out = tmp_path / "results"
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            str(hparams),
            f"--data_folder={slue_ted}",
            f"--output_folder={out}",
            "--number_of_epochs=1",
            "--device=cpu",
        ],
        cwd=RECIPE,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    # The target SentencePiece model was trained on the training summaries.
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(
        model_file=str(out / "save" / "target_spm.model")
    )
    assert processor.get_piece_size() == 40
    assert (processor.pad_id(), processor.bos_id(), processor.eos_id()) == (
        0,
        1,
        2,
    )
    report = json.loads((out / "test_metrics.json").read_text())
    assert report["settings"]["decoding"].startswith(
        "from-scratch Transformer decoder, beam 2"
    )
    rows = read_rows(out / "test_hypotheses.tsv")
    rouge = rouge_scores(
        [r["hypothesis"] for r in rows],
        [r["reference"] for r in rows],
        use_stemmer=True,
    )
    assert report["metrics"]["rougeL"] == pytest.approx(rouge["rougeL"])
    # The tiny yaml does not rescale (no baseline ships for a random BERT):
    # raw only, said in the report and a warning, never labelled rescaled.
    assert "bertscore_f1" in report["metrics"]
    assert not [k for k in report["metrics"] if k.endswith("_rescaled")]
    assert report["settings"]["bertscore_f1_rescaled"] == (
        "not computed: rescale_with_baseline is False"
    )
    assert "BERTScore is reported raw only" in result.stdout + result.stderr
    table = (out / "test_metrics.md").read_text()
    assert "| BERTScore F1, raw |" in table and "F1, rescaled |" not in table
