"""SENSIA's paper configuration (``hparams/sensia_paper.yaml``).

A tiny Backpack in the ``stanfordnlp/backpack-gpt2`` layout, with a GPT-2
style byte-level BPE trained on English only (as GPT-2's), stands for
``backpack-gpt2``. The paper yaml is run for 2 steps by the recipe, its
defining settings are checked on the loaded yaml and the real Brain, and the
InfoNCE negatives it gathers across GPUs are checked with 2 gloo ranks.
"""

import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from speechbrain_sense.backpack import BackpackConfig, BackpackLM
from speechbrain_sense.backpack.language_modeling import warmup_linear
from speechbrain_sense.backpack.tokenizer import BackpackTokenizer
from speechbrain_sense.testing import free_port

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
RECIPE = HERE.parents[1] / "recipes" / "Backpack" / "SENSIA"
PAPER = RECIPE / "hparams" / "sensia_paper.yaml"
NOUNS = "cat dog house tree water book car city river bird".split()
NOMS = "chat chien maison arbre eau livre voiture ville fleuve oiseau".split()
ADJECTIVES = "green small big old new blue".split()
ADJECTIFS = "vert petit grand vieux nouveau bleu".split()


def sentence_pair(rng):
    """An English sentence and its toy-French translation."""
    n1, n2, a = rng.randrange(10), rng.randrange(10), rng.randrange(6)
    en = f"The {ADJECTIVES[a]} {NOUNS[n1]} sees a {NOUNS[n2]} ."
    fr = f"Le {NOMS[n1]} {ADJECTIFS[a]} voit un {NOMS[n2]} ."
    return en, fr


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """A ManyThings bitext of 270 pairs and a Moses test set of 30."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("sensia_paper_data")
    (root / "bitext").mkdir()
    pairs = list(dict.fromkeys(sentence_pair(rng) for _ in range(1000)))
    assert len(pairs) >= 300
    (root / "bitext" / "fra.txt").write_text(
        "".join(f"{e}\t{f}\tCC-BY 2.0 (France)\n" for e, f in pairs[:270])
    )
    for side, suffix in ((0, "en"), (1, "fr")):
        (root / "bitext" / f"test.{suffix}").write_text(
            "".join(pair[side] + "\n" for pair in pairs[270:300])
        )
    return root


@pytest.fixture(scope="module")
def backpack_gpt2(tmp_path_factory, data_folder):
    """A tiny backpack-gpt2-layout folder with an English byte-level BPE."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("backpack_gpt2")
    english = [
        line.split("\t")[0]
        for line in (data_folder / "bitext" / "fra.txt").read_text().split("\n")
        if line
    ]
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        english * 5, vocab_size=320, special_tokens=["<|endoftext|>"]
    )
    gpt2_bpe = transformers.GPT2TokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    gpt2_bpe.save_pretrained(folder)
    torch.manual_seed(0)
    config = BackpackConfig(
        vocab_size=len(gpt2_bpe),
        n_positions=256,
        n_embd=16,
        n_layer=1,
        n_head=2,
        num_senses=4,
        sense_intermediate_scale=1,
    )
    BackpackLM(config).save_pretrained(folder)
    return folder


def load_recipe():
    """The SENSIA ``train.py`` as a module (a unique name: other recipes'
    ``train`` modules may be imported in the same session)."""
    spec = importlib.util.spec_from_file_location(
        "sensia_recipe_train", RECIPE / "train.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_paper_hparams(tmp_path, pretrained):
    """sensia_paper.yaml with the placeholders filled, nothing else."""
    overrides = {
        "data_folder": str(tmp_path),
        "output_folder": str(tmp_path / "out"),
        "pretrained_path": str(pretrained),
    }
    with open(PAPER, encoding="utf-8") as f:
        return load_hyperpyyaml(f, overrides)


def test_paper_yaml_runs_two_steps(backpack_gpt2, data_folder, tmp_path):
    """The recipe runs the paper yaml as it is (batch 64, max_length 256,
    lr 5e-5, linear schedule, gathering on) for 2 steps on the CPU (fp32:
    SpeechBrain has no fp16 on CPU), reading French with the model's own
    English BPE and exporting that tokenizer with the adapted model."""
    command = [
        sys.executable,
        "train.py",
        "hparams/sensia_paper.yaml",
        "--noprogressbar",
        f"--data_folder={data_folder}",
        f"--output_folder={tmp_path}",
        f"--pretrained_path={backpack_gpt2}",
        "--train_file=bitext/fra.txt",
        "--test_file=[bitext/test.en,bitext/test.fr]",
        "--dev_size=20",
        "--probe_size=10",
        "--lexicon_min_count=2",
        "--log_interval=1",
        "--max_steps=2",
        "--precision=fp32",
    ]
    result = subprocess.run(
        command,
        cwd=RECIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["experiment"] == "sensia_paper"
    assert results["steps"] == 2 and results["train_pairs"] == 250
    probes = [
        json.loads(line)
        for line in (tmp_path / "step_log.jsonl").read_text().splitlines()
    ]
    # The LR of each step: max_steps=2 makes progress 0 then 1/2.
    assert [p["step"] for p in probes] == [1, 2]
    assert probes[0]["lr"] == 0.0
    assert probes[1]["lr"] == pytest.approx(5e-5 * 0.5 / 0.98)
    assert {"context", "sense", "lm"} <= set(probes[1])

    pretrained = BackpackTokenizer.from_pretrained(backpack_gpt2)
    exported = BackpackTokenizer.from_pretrained(tmp_path / "backpack_fr")
    assert exported.kind == "hf"
    assert type(exported.backend).__name__.startswith("GPT2Tokenizer")
    sentence = "Le chien vert voit un oiseau ."
    assert exported.encode(sentence) == pretrained.encode(sentence)
    assert exported.vocab_size == pretrained.vocab_size


def test_paper_yaml_under_two_gloo_ranks(backpack_gpt2, data_folder, tmp_path):
    """``torchrun`` with 2 CPU ranks: the recipe trains with negatives
    gathered across the ranks, and its schedules count one rank's steps
    (250 pairs, 125 a rank: 2 batches of 64 an epoch, not 4)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "train.py",
        "hparams/sensia_paper.yaml",
        "--noprogressbar",
        f"--data_folder={data_folder}",
        f"--output_folder={tmp_path}",
        f"--pretrained_path={backpack_gpt2}",
        "--train_file=bitext/fra.txt",
        "--test_file=[bitext/test.en,bitext/test.fr]",
        "--dev_size=20",
        "--probe_size=10",
        "--lexicon_min_count=2",
        "--log_interval=1",
        "--max_steps=null",
        "--number_of_epochs=1",
        "--precision=fp32",
        "--distributed_backend=gloo",
        "--device=cpu",
    ]
    result = subprocess.run(
        command,
        cwd=RECIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert json.loads((tmp_path / "results.json").read_text())["steps"] == 2
    probes = [
        json.loads(line)
        for line in (tmp_path / "step_log.jsonl").read_text().splitlines()
    ]
    assert [(p["step"], p["progress"]) for p in probes] == [(1, 0.5), (2, 1.0)]
    assert probes[1]["lr"] == pytest.approx(5e-5 * warmup_linear(0.5))
    for probe in probes:
        # InfoNCE over both ranks' 128 pairs: finite, and rank 0 logged it.
        assert 0 < probe["context"] < 50 and 0 < probe["sense"] < 50


def test_paper_settings_on_the_brain(backpack_gpt2, tmp_path, monkeypatch):
    """lr 5e-5, 2% linear warm-up and linear decay to 0 over 150k steps,
    clipping at 1, 64 pairs a batch, fp16, the context view on the Backpack
    output, negatives gathered; the tokenizer is pinned to the GPT-2 BPE."""
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch

    from speechbrain_sense.backpack.language_modeling import lengths_to_mask
    from speechbrain_sense.sensia.losses import last_token_state

    train = load_recipe()
    hparams = load_paper_hparams(tmp_path, backpack_gpt2)
    assert hparams["lr"] == 5e-5 and hparams["weight_decay"] == 0.01
    assert (hparams["lr_schedule"], hparams["warmup"]) == ("linear", 0.02)
    assert hparams["final_lr_scale"] == 0.0
    assert hparams["max_steps"] == 150_000 and hparams["seed"] == 1234
    assert hparams["batch_size"] == 64
    assert hparams["train_dataloader_opts"]["batch_size"] == 64
    assert hparams["max_length"] == 256 and hparams["precision"] == "fp16"
    assert hparams["max_grad_norm"] == 1.0
    assert hparams["context_states"] == "backpack"
    assert hparams["gather_negatives"] is True
    assert hparams["symmetric"] is True
    assert (hparams["context_temperature"], hparams["sense_temperature"]) == (
        0.07,
        0.05,
    )
    assert hparams["sense_pool_temperature"] == 0.7
    assert hparams["label_smoothing"] == 0.05
    assert hparams["curriculum_phases"] == [0.2, 0.3, 0.5]
    assert hparams["align_weights"] == {
        "context": 0.45,
        "sense": 0.55,
        "lm": 0.02,
    }
    assert hparams["polish_weights"] == {
        "context": 0.15,
        "sense": 0.15,
        "lm": 0.7,
    }

    # The model's own GPT-2 BPE; a SentencePiece folder is refused.
    tokenizer = train.load_tokenizer(hparams)
    assert type(tokenizer.backend).__name__.startswith("GPT2Tokenizer")
    sentencepiece = BackpackTokenizer.train_sentencepiece(
        ["the cat sat on the mat", "le chat"] * 20, vocab_size=30
    )
    sentencepiece.save_pretrained(tmp_path / "sp")
    with pytest.raises(ValueError, match="tokenizer_kind: hf"):
        train.load_tokenizer({**hparams, "pretrained_path": tmp_path / "sp"})

    brain = train.SENSIABrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts={"device": "cpu", "precision": "fp32"},
        checkpointer=None,
    )
    assert brain.max_grad_norm == 1.0
    # 250 pairs make 4 batches of 64: 150k steps take 37500 epochs.
    epochs, brain.total_steps, brain.optimizer_step_limit = (
        train.training_length(
            4,
            hparams["number_of_epochs"],
            hparams["grad_accumulation_factor"],
            hparams["max_steps"],
        )
    )
    assert (epochs, brain.total_steps) == (37_500, 150_000)
    assert brain.optimizer_step_limit == 150_000
    brain.on_fit_start()
    for step, scale in ((0, 0.0), (1500, 0.5), (3000, 1.0), (76_500, 0.5)):
        brain.optimizer_step = step
        brain.on_fit_batch_start(None, True)
        lr = brain.optimizer.param_groups[0]["lr"]
        assert lr == pytest.approx(5e-5 * scale), step
        assert scale == pytest.approx(warmup_linear(step / 150_000))
    brain.optimizer_step = 150_000
    brain.on_fit_batch_start(None, True)
    assert brain.optimizer.param_groups[0]["lr"] == 0.0

    # Two real steps; the two InfoNCE views go through the gathered loss.
    calls = []

    def recording(*args, **kwargs):
        calls.append(args[0].shape)
        return train.info_nce(*args, **kwargs)

    monkeypatch.setattr(train, "gathered_info_nce", recording)
    pairs = [
        ("The green cat sees a dog .", "Le chat vert voit un chien ."),
        ("The old car sees a tree .", "Le voiture vieux voit un arbre ."),
        ("The blue bird sees a book .", "Le oiseau bleu voit un livre ."),
    ]
    batch = PaddedBatch(
        [
            {
                "id": str(i),
                "src_tokens": torch.LongTensor(tokenizer.encode_sentence(en)),
                "tgt_tokens": torch.LongTensor(tokenizer.encode_sentence(fr)),
            }
            for i, (en, fr) in enumerate(pairs)
        ]
    )
    brain.optimizer_step = 0
    brain.on_stage_start(sb.Stage.TRAIN)
    model = brain.modules.model
    before = model.wte.weight.detach().clone()
    for _ in range(2):
        brain.fit_batch(batch)  # on_fit_batch_start sets the LR first
    assert brain.optimizer_step == 2 and calls == [(3, 16)] * 4
    assert not torch.equal(model.wte.weight, before)

    # The context view is the last real state of the Backpack output.
    model.eval()
    with torch.no_grad():
        views = brain.compute_forward(batch, sb.Stage.TEST)["tgt"]
        ids, lengths = batch.tgt_tokens
        mask = lengths_to_mask(lengths, ids.shape[1])
        output = model(ids, attention_mask=mask, return_senses=True)
    torch.testing.assert_close(
        views["context"], last_token_state(output.hidden, mask)
    )
    assert not torch.allclose(
        views["context"], last_token_state(output.context_hidden, mask)
    )


def test_gathered_info_nce_across_two_gloo_ranks(tmp_path):
    """2 gloo ranks with 3 and 5 pairs: each rank's InfoNCE is the one of
    the 8 pairs in one process. The gradient convention is
    ``torch.distributed.nn.functional.all_gather``'s: a rank's local rows
    get the sum over ranks of the (identical) loss's gradient, i.e. 2 x the
    single-process gradient of those rows, so that DDP's average (sum / 2)
    of the parameter gradients is the single-process gradient exactly."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(HERE / "sensia_gather_rank.py"),
        str(tmp_path),
    ]
    run = subprocess.run(
        command,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=300,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    ranks = [
        json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)
    ]
    assert [r["local_pairs"] for r in ranks] == [3, 5]
    for result in ranks:
        assert result["world_size"] == 2
        emb, ddp = result["embeddings"], result["ddp"]
        assert emb["loss"] == pytest.approx(
            emb["single_process_loss"], rel=1e-6
        )
        # Without gathering each rank would see only its own negatives.
        assert emb["local_only_loss"] != pytest.approx(emb["loss"], rel=1e-3)
        assert emb["grad_norm"] > 0
        assert emb["grad_vs_world_size_times_single"] < 1e-6
        assert ddp["loss"] == pytest.approx(
            ddp["single_process_loss"], rel=1e-6
        )
        assert ddp["param_grad_norm"] > 0
        assert ddp["param_grad_vs_single"] < 1e-5
    assert ranks[0]["embeddings"]["loss"] == ranks[1]["embeddings"]["loss"]


@pytest.mark.parametrize(
    ("language", "laser"),
    [("et", "est"), ("id", "ind"), ("sw", "swh"), ("tr", "tur")],
)
def test_each_target_language_config_is_the_paper_config_on_its_data(
    language, laser
):
    """The four target languages differ from sensia_paper.yaml in their
    data only (and their names), never in a training setting."""
    from ruamel.yaml import YAML

    def values(node):
        """Tags and values as plain, comparable Python objects."""
        tag = getattr(getattr(node, "tag", None), "value", None)
        if isinstance(node, dict):
            return tag, {k: values(v) for k, v in node.items()}
        if isinstance(node, list):
            return tag, [values(v) for v in node]
        return tag, str(node)

    def plain(path):
        # Parsed, not loaded: the values are compared as written.
        return values(YAML(typ="rt").load(path.read_text()))[1]

    paper = plain(PAPER)
    config = plain(RECIPE / "hparams" / f"sensia_paper_{language}.yaml")
    assert config["tgt_lang"] == (None, language)
    assert config["train_format"] == (None, "tsv")
    assert config["test_file"] == (
        None,
        [
            (None, f"laser-tatoeba/tatoeba.{laser}-eng.eng"),
            (None, f"laser-tatoeba/tatoeba.{laser}-eng.{laser}"),
        ],
    )
    data_keys = {"experiment_name", "tgt_lang", "train_file", "train_format"}
    data_keys.add("test_file")
    differing = {key for key in paper if paper[key] != config[key]}
    assert differing == data_keys
    assert set(config) == set(paper)
