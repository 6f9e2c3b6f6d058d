#!/usr/bin/env python3
"""Recipe for end-to-end spoken language understanding on MEDIA.

The frames of a SENSE speech encoder (frozen or fine-tuned) go through a
length adaptor and a linear CTC layer that writes the caller's words with
the MEDIA concepts inline (``<command-tache> je voudrais réserver >
<nombre-chambre-reservation> deux chambres >``): characters, a word
separator, one unit per concept and one for the closing ``>``. The
``full`` concept set keeps the specifiers, ``relax`` drops them (the
``method`` hyperparameter). Greedy CTC decoding is scored at the end of
each dev pass and on the test set with the concept error rate (COER: edit
distance over the concept sequence), the concept-value error rate (CVER:
over "concept + words" units, SpeechBrain's strict u-CVER) and the
CER/WER of the words. ``dev_metrics.json`` / ``test_metrics.json`` hold
them; the per-utterance reports are ``{dev,test}_utterances.tsv``.

To run this recipe, do the following:
> python train.py hparams/slu.yaml --data_folder=/data/MEDIA \
>     --channels_path=/path/to/channels.csv --sense_model=/models/sense

Multi-GPU:
> torchrun --nproc_per_node=4 train.py hparams/slu.yaml --data_folder=...

CPU demo on a synthetic corpus (generated when data_folder is empty):
> python train.py hparams/slu_tiny.yaml

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


class MediaSLUBrain(TaggedCTCBrain):
    """Tagged-transcript CTC scored as MEDIA SLU (COER selects the best)."""

    metric_names = {
        "tag_error_rate": "COER",
        "value_error_rate": "CVER",
        "CER": "CER",
        "WER": "WER",
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
        from speechbrain_sense.synthetic.slu import make_synthetic_media

        run_on_main(
            synthesize_if_empty,
            args=[hparams["data_folder"], make_synthetic_media],
            kwargs=hparams["synthetic_corpus"],
        )

    from media_prepare import prepare_media  # noqa: E402

    run_on_main(
        prepare_media,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "channels_path": hparams["channels_path"],
            "method": hparams["method"],
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

    brain = MediaSLUBrain(
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
        min_key="COER",
        test_loader_kwargs=hparams["valid_dataloader_options"],
    )
    if if_main_process():
        metrics = (
            Path(hparams["output_folder"]) / "test_metrics.json"
        ).read_text()
        best = brain.checkpointer.find_checkpoint(min_key="COER")
        print(
            f"\nTest metrics: {metrics}\nTrained model (best dev COER): {best.path}"
        )
    ddp_destroy_group()
