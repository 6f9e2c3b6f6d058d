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
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from speechbrain_sense.data.manifests import read_manifest
from speechbrain_sense.synthetic.covost import (
    make_synthetic_covost,
    parallel_sentences,
)
from speechbrain_sense.testing import free_port
from speechbrain_sense.testing.tiny_text_models import save_tiny_mbart50

RECIPE = Path(__file__).resolve().parents[2] / "recipes/CoVoST2/ST"
LANGUAGES = ["fa", "et"]  # the pairs the SENSE paper highlights
PER_LANGUAGE = 10
SPLIT = (0.6, 0.2, 0.2)  # 6 / 2 / 2 clips per language

pytestmark = pytest.mark.integration

sys.path.insert(0, str(RECIPE))
from covost2_prepare import (  # noqa: E402
    COVOST2_X_EN_RESOURCE_GROUPS,
    COVOST2_X_EN_SOURCES,
    CoVoSTFormatError,
    prepare_covost2,
)

# CoVoST 2's X->En source languages, as its release names them.
X_EN_SOURCES = {
    "fr", "de", "es", "ca", "it", "ru", "zh-CN", "pt", "fa", "et", "mn",
    "nl", "tr", "ar", "sv-SE", "lv", "sl", "ta", "ja", "id", "cy",
}  # fmt: skip


def load_recipe_train():
    """The recipe's ``train.py`` as a module (its main block not run)."""
    spec = importlib.util.spec_from_file_location(
        "covost2_st_train", RECIPE / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def copy_language(corpus, data, source, target):
    """Copies the synthetic ``source`` language as locale ``target``."""
    shutil.copytree(corpus / source, data / target)
    shutil.copy(
        corpus / f"covost_v2.{source}_en.tsv",
        data / f"covost_v2.{target}_en.tsv",
    )


def test_region_locales_zh_cn_and_sv_se(corpus, tmp_path):
    """``zh-CN`` / ``sv-SE``: folders, TSV names, ids and wav paths."""
    data = tmp_path / "cv"
    data.mkdir()
    copy_language(corpus, data, "fa", "zh-CN")
    copy_language(corpus, data, "et", "sv-SE")
    save = tmp_path / "save"
    report = prepare_covost2(data, save, ["zh-CN", "sv-SE"])
    assert list(report) == ["zh-CN", "sv-SE"]
    assert [report[x]["test"]["kept"] for x in report] == [2, 2]
    rows = read_manifest(save / "test.csv", {"data_root": str(data)})
    assert sorted(r["lang"] for r in rows.values()) == [
        "sv-SE",
        "sv-SE",
        "zh-CN",
        "zh-CN",
    ]
    for utt_id, row in rows.items():
        assert utt_id.startswith(f"{row['lang']}-common_voice_")
        assert Path(row["wav"]).parent == data / row["lang"] / "clips"
        assert Path(row["wav"]).is_file()


def test_missing_language_files_are_named_before_any_work(corpus, tmp_path):
    save = tmp_path / "save"
    data = tmp_path / "cv"
    data.mkdir()
    for lang in LANGUAGES:
        copy_language(corpus, data, lang, lang)
    (data / "et" / "validated.tsv").unlink()
    with pytest.raises(FileNotFoundError) as error:
        prepare_covost2(data, save, ["fa", "et", "zh-CN", "sv"])
    message = str(error.value)
    assert "3 of 4 languages" in message
    # Every missing path is named, with CoVoST 2's code for a near miss.
    for path in (
        data / "et" / "validated.tsv",
        data / "zh-CN",
        data / "covost_v2.zh-CN_en.tsv",
        data / "sv",
        data / "covost_v2.sv_en.tsv",
    ):
        assert str(path) in message
    assert "sv (CoVoST 2 names this source 'sv-SE')" in message
    assert f"fa: {data}" not in message  # present: not listed
    # Checked before anything is prepared.
    assert not save.exists()


def test_language_without_test_utterances_is_an_error(corpus, tmp_path):
    """A language whose test rows all drop would vanish from the report."""
    data = tmp_path / "cv"
    data.mkdir()
    copy_language(corpus, data, "fa", "fa")
    rows = read_tsv(data / "covost_v2.fa_en.tsv")
    rows = [
        dict(r, split="dev" if r["split"] == "test" else r["split"])
        for r in rows
    ]
    write_tsv(data / "covost_v2.fa_en.tsv", rows)
    with pytest.raises(ValueError, match="fa: no test utterance kept"):
        prepare_covost2(data, tmp_path / "save", ["fa"])


def test_x_en_config_has_the_21_covost2_sources(tiny_w2v_bert_dir, tmp_path):
    """``st_x_en.yaml`` loads and trains on exactly CoVoST 2's X->En set."""
    from hyperpyyaml import load_hyperpyyaml

    overrides = {
        "data_folder": str(tmp_path / "cv"),
        "output_folder": str(tmp_path / "out"),
        "encoder_source": str(tiny_w2v_bert_dir),
        "encoder_dim": 32,
    }
    text = (RECIPE / "hparams" / "st_x_en.yaml").read_text()
    hparams = load_hyperpyyaml(text, overrides)
    languages = hparams["languages"]
    assert len(languages) == 21 and set(languages) == X_EN_SOURCES
    assert languages == list(COVOST2_X_EN_SOURCES)
    assert languages[:4] == ["fr", "de", "es", "ca"]  # CoVoST 2's order
    # The resource groups split the 21 sources, 4 high, 5 mid, 12 low.
    groups = COVOST2_X_EN_RESOURCE_GROUPS
    assert {name: len(x) for name, x in groups.items()} == {
        "high": 4,
        "mid": 5,
        "low": 12,
    }
    members = [lang for group in groups.values() for lang in group]
    assert sorted(members) == sorted(X_EN_SOURCES)
    assert {"fr", "de", "es", "ca"} == set(groups["high"])
    assert {"fa", "it", "ru", "pt", "zh-CN"} == set(groups["mid"])
    # st.yaml with another language list: the same keys, a 21-pair setup.
    st_keys = load_hyperpyyaml(
        (RECIPE / "hparams" / "st.yaml").read_text(), overrides
    ).keys()
    assert set(hparams.keys()) == set(st_keys)


def test_pair_averages_and_resource_groups_in_the_report(tmp_path):
    from speechbrain_sense.metrics.translation import translation_scores

    train = load_recipe_train()
    hyps = ["a b c d", "x y z w", "the cat sat", "a dog ran far"]
    refs = ["a b c d", "x y q w", "the cat sat", "a dog ran away"]
    langs = ["fr", "fa", "fr", "et"]
    scores = translation_scores(hyps, refs, langs)
    averages = train.pair_averages(
        scores, COVOST2_X_EN_RESOURCE_GROUPS, ["fr", "fa", "et", "cy"]
    )
    per_pair = {
        lang: sacrebleu.corpus_bleu(
            [h for h, x in zip(hyps, langs) if x == lang],
            [[r for r, x in zip(refs, langs) if x == lang]],
        ).score
        for lang in ("fr", "fa", "et")
    }
    assert averages["all_pairs"]["BLEU"] == pytest.approx(
        sum(per_pair.values()) / 3
    )
    # Mean over pairs, not the pooled corpus BLEU of all utterances.
    assert averages["all_pairs"]["BLEU"] != pytest.approx(scores["all"]["BLEU"])
    assert averages["all_pairs"]["of"] == 4
    assert averages["all_pairs"]["missing"] == ["cy"]
    assert averages["high"] == {
        "pairs": ["fr"],
        "of": 4,
        "BLEU": pytest.approx(per_pair["fr"]),
        "chrF": pytest.approx(scores["fr"]["chrF"]),
    }
    assert averages["mid"]["pairs"] == ["fa"]
    assert averages["mid"]["BLEU"] == pytest.approx(per_pair["fa"])
    assert averages["low"]["pairs"] == ["et"] and averages["low"]["of"] == 12

    scores["averages"] = averages
    ids = [f"u{i}" for i in range(4)]
    table = train.write_translation_report(
        tmp_path, "test", ids, langs, refs, hyps, scores
    )
    assert f"| all pairs | 3 of 4 | {averages['all_pairs']['BLEU']:.2f} |" in (
        table
    )
    assert f"| mid-resource | 1 of 5 (fa) | {per_pair['fa']:.2f} |" in table
    assert f"| all (pooled) | 4 | {scores['all']['BLEU']:.2f} |" in table
    saved = json.loads((tmp_path / "test_bleu.json").read_text())
    assert saved["averages"]["low"]["pairs"] == ["et"]


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
    # The mean over pairs, and per CoVoST 2 group: fa mid, et low.
    averages = scores["averages"]
    assert averages["all_pairs"]["BLEU"] == pytest.approx(
        (scores["fa"]["BLEU"] + scores["et"]["BLEU"]) / 2
    )
    assert averages["all_pairs"]["missing"] == []
    assert averages["mid"]["pairs"] == ["fa"]
    assert averages["low"]["pairs"] == ["et"]
    assert averages["high"]["pairs"] == [] and averages["high"]["BLEU"] is None
    table = (out / f"{name}_bleu.md").read_text()
    assert f"| fa | 2 | {scores['fa']['BLEU']:.2f} |" in table
    assert "| high-resource | 0 of 4 | - | - |" in table
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
    assert "test BLEU_pair_avg" in train_log
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
