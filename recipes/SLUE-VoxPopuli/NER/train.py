#!/usr/bin/env python3
"""Recipe for end-to-end named entity recognition on SLUE-VoxPopuli.

The frames of a SENSE speech encoder (frozen or fine-tuned) go through a
length adaptor and a linear CTC layer that writes the transcript with its
entities inline (``thank you <PERSON> john smith > for ...``): characters,
a word separator, one unit per entity tag and one for the closing ``>``.
Greedy CTC decoding is scored at the end of each dev pass and on the test
set with the named-entity error rate (NEER: edit distance over the entity
tag sequence), the NE-value error rate (NEVER: over "tag + words" units),
SLUE's micro-averaged entity F1 and label F1, and the WER/CER of the plain
transcript. ``dev_metrics.json`` / ``test_metrics.json`` hold them; the
per-utterance reports are ``{dev,test}_utterances.tsv``.

To run this recipe, do the following:
> python train.py hparams/ner.yaml --data_folder=/data/slue-voxpopuli \
>     --sense_model=/models/sense

Multi-GPU:
> torchrun --nproc_per_node=4 train.py hparams/ner.yaml --data_folder=...

CPU demo on a synthetic corpus (generated when data_folder is empty):
> python train.py hparams/ner_tiny.yaml

Authors
 * speechbrain-sense developers 2026
"""

import sys
from pathlib import Path

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import if_main_process, run_on_main
from speechbrain.utils.logger import get_logger

from speechbrain_sense.synthetic import synthesize_if_empty
from speechbrain_sense.tasks.slu import (
    TaggedCTCBrain,
    dataio_prepare,
    log_vocabulary,
    prepare_label_encoder,
)
from speechbrain_sense.training.distributed import ddp_destroy_group

logger = get_logger(__name__)


class NERBrain(TaggedCTCBrain):
    """Tagged-transcript CTC scored as SLUE NER (NEER selects the best)."""

    metric_names = {
        "tag_error_rate": "NEER",
        "value_error_rate": "NEVER",
        "F1": "F1",
        "label_F1": "label_F1",
        "WER": "WER",
        "CER": "CER",
    }


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    sb.utils.distributed.ddp_init_group(run_opts)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )

    if hparams["synthetic_corpus"]:
        from speechbrain_sense.synthetic.slu import (
            make_synthetic_slue_voxpopuli,
        )

        run_on_main(
            synthesize_if_empty,
            args=[hparams["data_folder"], make_synthetic_slue_voxpopuli],
            kwargs=hparams["synthetic_corpus"],
        )

    from slue_voxpopuli_prepare import prepare_slue_voxpopuli  # noqa: E402

    run_on_main(
        prepare_slue_voxpopuli,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "test_split": hparams["test_split"],
            "max_duration": hparams["max_duration"],
            "skip_bad_rows": hparams["skip_bad_rows"],
        },
    )
    run_on_main(
        prepare_label_encoder,
        args=[hparams["train_csv"], hparams["label_encoder_file"]],
    )
    datasets, label_encoder = dataio_prepare(
        {
            "train": hparams["train_csv"],
            "dev": hparams["dev_csv"],
            "test": hparams["test_csv"],
        },
        data_folder=hparams["data_folder"],
        label_encoder_file=hparams["label_encoder_file"],
        encoder_source=hparams["encoder_source"],
        sample_rate=hparams["sample_rate"],
        sorting=hparams["sorting"],
    )
    log_vocabulary(label_encoder)
    # The output layer's size is the label inventory of the training data.
    hparams["head"].set_num_labels(len(label_encoder))
    if not hparams["freeze_encoder"]:
        hparams["checkpointer"].add_recoverable("encoder", hparams["encoder"])

    brain = NERBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.label_encoder = label_encoder
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["dev"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )
    brain.evaluate(
        datasets["test"],
        min_key="NEER",
        test_loader_kwargs=hparams["valid_dataloader_options"],
    )
    if if_main_process():
        metrics = (
            Path(hparams["output_folder"]) / "test_metrics.json"
        ).read_text()
        best = brain.checkpointer.find_checkpoint(min_key="NEER")
        print(
            f"\nTest metrics: {metrics}\nTrained model (best dev NEER): {best.path}"
        )
    ddp_destroy_group()
