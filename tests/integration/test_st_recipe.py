"""CoVoST 2 speech translation recipe on a synthetic CoVoST layout.

Data preparation is checked directly (manifests, the CoVoST join,
idempotency, errors naming file and line); the recipe runs as a user runs
it (``python train.py hparams/st_tiny.yaml`` in a subprocess) for two
epochs on an exported tiny SENSE encoder, and its BLEU report is checked
against BLEU recomputed from its own hypotheses file. The pretrained
decoder configuration (``st_mbart.yaml``) runs one epoch on a tiny random
mBART-50.
"""

import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from speechbrain_sense.data.synthetic_covost import (
    make_synthetic_covost,
    parallel_sentences,
)
from speechbrain_sense.manifests import read_manifest
from speechbrain_sense.testing.tiny_text_models import save_tiny_mbart50

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CoVoST2/ST"
LANGUAGES = ["fa", "et"]  # the pairs the SENSE paper highlights
PER_LANGUAGE = 10
SPLIT = (0.6, 0.2, 0.2)  # 6 / 2 / 2 clips per language

pytestmark = pytest.mark.integration

sys.path.insert(0, str(RECIPE))
from covost2_prepare import (  # noqa: E402
    CoVoSTFormatError,
    prepare_covost2,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("covost")
    make_synthetic_covost(root, LANGUAGES, PER_LANGUAGE, seed=7, split=SPLIT)
    return root


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def write_tsv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(rows[0]) + "\n")
        for row in rows:
            f.write("\t".join(row.values()) + "\n")


# ------------------------------------------------------------- preparation
def test_synthetic_layout_is_covost(corpus):
    for lang in LANGUAGES:
        rows = read_tsv(corpus / f"covost_v2.{lang}_en.tsv")
        assert list(rows[0]) == [
            "path",
            "sentence",
            "translation",
            "client_id",
            "split",
        ]
        validated = {
            r["path"]: r for r in read_tsv(corpus / lang / "validated.tsv")
        }
        pairs = dict(parallel_sentences(lang))
        assert len(rows) == PER_LANGUAGE
        for row in rows:
            # Same clip, transcript and speaker as Common Voice, and the
            # English line parallel to the transcript.
            assert validated[row["path"]]["sentence"] == row["sentence"]
            assert validated[row["path"]]["client_id"] == row["client_id"]
            assert row["translation"] == pairs[row["sentence"]]
            assert (corpus / lang / "clips" / row["path"]).is_file()
        splits = [row["split"] for row in rows]
        assert {"train", "train_covost", "dev", "test"} == set(splits)


def test_prepare_joins_covost_with_common_voice(corpus, tmp_path):
    covost = tmp_path / "covost_tsvs"
    covost.mkdir()
    for lang in LANGUAGES:
        shutil.copy(corpus / f"covost_v2.{lang}_en.tsv", covost)
    # A CoVoST row whose clip this release lacks: dropped and counted.
    rows = read_tsv(covost / "covost_v2.fa_en.tsv")
    extra = dict(rows[0], path="common_voice_fa_00000001.mp3", split="dev")
    write_tsv(covost / "covost_v2.fa_en.tsv", rows + [extra])

    save = tmp_path / "save"
    report = prepare_covost2(
        corpus, save, LANGUAGES, covost_folder=covost, vocab_size=40
    )
    assert report["fa"]["dev"]["dropped_by_reason"] == {
        "not_in_validated_tsv": 1
    }
    for lang in LANGUAGES:
        source = read_tsv(corpus / f"covost_v2.{lang}_en.tsv")
        expected = {
            split: sum(
                r["split"]
                in ({"train", "train_covost"} if split == "train" else {split})
                for r in source
            )
            for split in ("train", "dev", "test")
        }
        assert expected == {"train": 6, "dev": 2, "test": 2}
        for split, count in expected.items():
            assert report[lang][split]["kept"] == count
    translation = {
        (lang, r["path"]): r["translation"]
        for lang in LANGUAGES
        for r in read_tsv(corpus / f"covost_v2.{lang}_en.tsv")
    }
    for split in ("train", "dev", "test"):
        manifest = read_manifest(
            save / f"{split}.csv", {"data_root": str(corpus)}
        )
        assert len(manifest) == 2 * {"train": 6}.get(split, 2)
        for utt_id, row in manifest.items():
            clip = Path(row["wav"])
            assert clip.is_file() and utt_id == f"{row['lang']}-{clip.stem}"
            assert row["translation"] == translation[(row["lang"], clip.name)]
            assert float(row["duration"]) > 0.5
    with open(save / "train.csv", encoding="utf-8") as f:
        header = f.readline().strip()
    assert header == "ID,duration,wav,sentence,translation,lang,client_id"

    import sentencepiece as spm

    tokenizer = save / "tokenizer" / "en_40_unigram.model"
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    assert sp.get_piece_size() == 40 and sp.eos_id() == 2

    # Idempotent: the same call leaves every file untouched...
    stamps = {p: p.stat().st_mtime_ns for p in save.rglob("*") if p.is_file()}
    assert prepare_covost2(
        corpus, save, LANGUAGES, covost_folder=covost, vocab_size=40
    ) == json.loads((save / "prepare_report.json").read_text())
    assert stamps == {
        p: p.stat().st_mtime_ns for p in save.rglob("*") if p.is_file()
    }
    # ...and another option prepares again.
    report = prepare_covost2(
        corpus, save, ["et"], covost_folder=covost, vocab_size=40
    )
    assert list(report) == ["et"]
    assert len(read_manifest(save / "train.csv", path_columns=())) == 6


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda row: dict(row, split="validation"), "split 'validation'"),
        (lambda row: {**row, "extra": "field"}, "6 fields, header has 5"),
        (
            lambda row: dict(row, path="common_voice_fa_99999999.mp3"),
            "not found",
        ),
    ],
    ids=["unknown_split", "extra_field", "missing_clip"],
)
def test_bad_rows_name_file_and_line(corpus, tmp_path, mutation, message):
    data = tmp_path / "data"
    shutil.copytree(corpus / "fa", data / "fa")
    rows = read_tsv(corpus / "covost_v2.fa_en.tsv")
    rows[3] = mutation(rows[3])
    if rows[3]["path"].endswith("99999999.mp3"):
        # In validated.tsv, but its clip file is gone.
        (data / "fa" / "clips" / rows[3]["path"]).unlink(missing_ok=True)
        validated = read_tsv(data / "fa" / "validated.tsv")
        validated.append(dict(validated[0], path=rows[3]["path"]))
        write_tsv(data / "fa" / "validated.tsv", validated)
    lines = ["\t".join(rows[0].keys())] + ["\t".join(r.values()) for r in rows]
    (data / "covost_v2.fa_en.tsv").write_text("\n".join(lines) + "\n")
    with pytest.raises(CoVoSTFormatError, match=message) as error:
        prepare_covost2(data, tmp_path / "save", ["fa"])
    assert "covost_v2.fa_en.tsv:5:" in str(error.value)  # header = line 1
    # skip_bad_rows: counted, the other rows kept.
    report = prepare_covost2(
        data, tmp_path / "save", ["fa"], skip_bad_rows=True
    )
    kept = sum(report["fa"][s]["kept"] for s in ("train", "dev", "test"))
    dropped = sum(report["fa"][s]["dropped"] for s in ("train", "dev", "test"))
    assert (kept, dropped) == (PER_LANGUAGE - 1, 1)


# ------------------------------------------------------------- the recipe
def run_recipe(hparams, args, timeout=300, launcher=(sys.executable,)):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [*launcher, "train.py", f"hparams/{hparams}", *args],
        cwd=RECIPE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


def common_overrides(corpus, out, epochs=2):
    return [
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        f"--languages=[{', '.join(LANGUAGES)}]",
        f"--number_of_epochs={epochs}",
        "--num_workers=0",
        "--max_batch_seconds=20",
        "--precision=fp32",
        "--skip_bad_rows=False",
    ]


def train_log_text(out):
    return (out / "train_log.txt").read_text()


def check_bleu_report(out, name):
    scores = json.loads((out / f"{name}_bleu.json").read_text())
    with open(out / f"{name}_translations.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 2 * 2 == scores["all"]["count"]
    for lang in ["all", *LANGUAGES]:
        subset = [r for r in rows if lang in ("all", r["lang"])]
        hyps = [r["hypothesis"] for r in subset]
        refs = [r["reference"] for r in subset]
        bleu = sacrebleu.corpus_bleu(hyps, [refs])
        chrf = sacrebleu.corpus_chrf(hyps, [refs])
        assert scores[lang]["count"] == len(subset)
        assert scores[lang]["BLEU"] == pytest.approx(bleu.score, abs=1e-9)
        assert scores[lang]["chrF"] == pytest.approx(chrf.score, abs=1e-9)
    table = (out / f"{name}_bleu.md").read_text()
    assert f"| fa | 2 | {scores['fa']['BLEU']:.2f} |" in table
    assert scores["signatures"]["BLEU"] in table
    assert "tok:13a" in scores["signatures"]["BLEU"]
    return rows


def test_two_epochs_beam_search_and_bleu_report(
    corpus, sense_model_dir, tmp_path
):
    out = tmp_path / "exp"
    args = common_overrides(corpus, out) + [
        f"--encoder_source={sense_model_dir}",
        "--encoder_dim=32",
        "--freeze_encoder=True",
        "--vocab_size=40",
        "--d_model=32",
        "--max_decode_steps=12",
        "--beam_size=2",
        "--valid_search_interval=1",
    ]
    log = run_recipe("st_tiny.yaml", args)
    assert "Going into epoch 2" in log
    rows = check_bleu_report(out, "test")
    check_bleu_report(out, "dev")
    translations = dict(parallel_sentences("fa")) | dict(
        parallel_sentences("et")
    )
    assert all(r["reference"] in translations.values() for r in rows)
    # Hypotheses are what beam search produced, within the length cap.
    assert all(len(r["hypothesis"].split()) <= 12 for r in rows)
    train_log = (out / "train_log.txt").read_text()
    assert "valid BLEU" in train_log and "test BLEU" in train_log
    assert "epoch: 2" in train_log

    checkpoint = next((out / "save").glob("CKPT+*"))
    saved = set(os.listdir(checkpoint))
    assert {"decoder.ckpt", "adaptor.ckpt", "model_optimizer.ckpt"} <= saved
    # The frozen SENSE encoder is not re-saved in every checkpoint.
    assert "encoder.ckpt" not in saved
    assert "encoder_optimizer.ckpt" not in saved

    # Same command with one more epoch: continues from the checkpoint
    # (the warm-up schedule too), reusing the manifests and vocabulary.
    args[args.index("--number_of_epochs=2")] = "--number_of_epochs=3"
    log = run_recipe("st_tiny.yaml", args)
    assert "Loading a checkpoint" in log and "are up to date" in log
    assert "Going into epoch 3" in log and "Going into epoch 1" not in log
    lrs = re.findall(r"epoch: \d+, lr: ([0-9.e+-]+)", train_log_text(out))
    assert len(lrs) == 3 and float(lrs[0]) < float(lrs[1]) < float(lrs[2])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_two_processes_report_every_utterance_once(
    corpus, sense_model_dir, tmp_path
):
    """Each rank decodes its shard; the report holds the union, once."""
    out = tmp_path / "ddp"
    args = common_overrides(corpus, out, epochs=1) + [
        f"--encoder_source={sense_model_dir}",
        "--encoder_dim=32",
        "--freeze_encoder=True",
        "--vocab_size=40",
        "--d_model=32",
        "--max_decode_steps=6",
        "--beam_size=2",
        # One utterance per batch: both ranks hold dev and test batches.
        "--max_batch_size=1",
        "--distributed_backend=gloo",
        "--device=cpu",
    ]
    launcher = (
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
    )
    run_recipe("st_tiny.yaml", args, timeout=400, launcher=launcher)
    rows = check_bleu_report(out, "test")
    assert len({r["ID"] for r in rows}) == len(rows) == 4


@pytest.fixture(scope="module")
def tiny_mbart50_dir(tmp_path_factory):
    """A random 2-layer mBART-50 with a real mBART-50 tokenizer."""
    return save_tiny_mbart50(
        tmp_path_factory.mktemp("mbart50"),
        decoder_layers=1,
        vocab_size=150,
        src_lang="en_XX",
        texts=[t for _, t in parallel_sentences("fa")],
    )


def test_pretrained_decoder_configuration(
    corpus, sense_model_dir, tiny_mbart50_dir, tmp_path
):
    out = tmp_path / "mbart"
    args = common_overrides(corpus, out, epochs=1) + [
        f"--encoder_source={sense_model_dir}",
        "--encoder_dim=32",
        "--freeze_first_layers=0",
        f"--decoder_source={tiny_mbart50_dir}",
        "--d_model=16",
        "--max_decode_steps=10",
        "--beam_size=2",
        "--max_batch_size=8",
        "--ckpt_interval_minutes=0",
    ]
    run_recipe("st_mbart.yaml", args)
    rows = check_bleu_report(out, "test")
    # The pretrained tokenizer's language code never reaches the text.
    assert all("en_XX" not in r["hypothesis"] for r in rows)
    # No SentencePiece model: the pretrained decoder brings its tokenizer.
    assert not (out / "save" / "tokenizer").exists()
