"""A synthetic recording archive with known answers, and a model for it.

Semantic search needs a model whose speech embeddings lie next to the text
embeddings of what is said, and an archive where it is known what is said
when. Without a hub or a GPU neither exists, so this module makes both:

* :func:`make_search_archive` writes recordings of eSpeak NG speech, each
  several sentences separated by pauses, and ``truth.json`` with the time
  span of every sentence in every recording;
* :func:`train_search_model` trains a tiny random w2v-BERT 2.0 student
  (:func:`speechbrain_sense.testing.tiny_models.save_tiny_w2v_bert`) for a
  few seconds so that each *passage the indexer will cut* (same VAD, same
  settings) embeds onto the multilingual Universal Sentence Encoder's
  embedding of the sentence spoken there, and exports it with
  ``training.json`` naming that teacher.

The model has seen exactly these passages, so it is not a speech encoder
worth the name: what it makes deterministic is everything around it (VAD
spans, storage, the teacher pairing of ``training.json``, ranking, file
and time bookkeeping). The teacher is real and multilingual, so typed
queries in other languages or in other words find the English recordings.

Run ``python -m speechbrain_sense.synthetic.search OUT`` to write
``OUT/audio``, ``OUT/truth.json`` and ``OUT/model``.

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import json
from pathlib import Path

import numpy as np
import soundfile
import torch

#: The sentences the tests query, one per recording.
TARGETS = (
    "the cat is sleeping on the sofa",
    "the stock market fell sharply this morning",
    "please book a table for two at eight",
    "heavy rain is expected over the weekend",
)
#: Other speech around the targets.
FILLERS = (
    "my brother plays the guitar",
    "we visited the museum yesterday",
    "the train leaves from platform four",
    "she is learning to paint",
    "the bread is still warm",
    "turn left after the bridge",
    "he forgot his keys at home",
    "the children are playing outside",
)
SAMPLE_RATE = 16000
PAUSE_SECONDS = 1.6  # longer than the indexer's max_gap: one passage each
TEACHER_SPEC = {"builder": "universal_sentence_encoder", "arguments": {}}


def synthesize(text, language="en"):
    """16 kHz float32 speech of ``text`` (eSpeak NG).

    Arguments
    ---------
    text : str
        What to say.
    language : str
        eSpeak voice.

    Returns
    -------
    numpy.ndarray
        ``[time]`` samples.
    """
    from speechbrain_sense.audio import resample
    from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer

    result = ESpeakSynthesizer().synthesize(text, language)
    wav = torch.from_numpy(np.ascontiguousarray(result.waveform))
    return resample(wav, result.sample_rate, SAMPLE_RATE).numpy()


def make_search_archive(out_dir, targets=TARGETS, fillers=FILLERS):
    """Writes recordings with one target sentence each among fillers.

    Recording ``i`` holds target ``i`` and fillers ``2i`` and ``2i + 1``,
    the target in the middle or at the end, after a second of silence and
    with :data:`PAUSE_SECONDS` between sentences.

    Arguments
    ---------
    out_dir : str or Path
        Gets ``rec<i>.wav`` files.
    targets : sequence of str
        One sentence per recording.
    fillers : sequence of str
        Two per recording.

    Returns
    -------
    list of dict
        ``{"file", "start", "end", "text", "target"}`` per spoken sentence.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spoken = []
    for i, target in enumerate(targets):
        order = [fillers[2 * i], target, fillers[2 * i + 1]]
        if i % 2:
            order = [fillers[2 * i], fillers[2 * i + 1], target]
        pieces = [np.zeros(SAMPLE_RATE, np.float32)]
        position = 1.0
        for text in order:
            wav = synthesize(text)
            seconds = len(wav) / SAMPLE_RATE
            spoken.append(
                {
                    "file": f"rec{i}.wav",
                    "start": position,
                    "end": position + seconds,
                    "text": text,
                    "target": text == target,
                }
            )
            pause = np.zeros(int(PAUSE_SECONDS * SAMPLE_RATE), np.float32)
            pieces += [wav, pause]
            position += seconds + PAUSE_SECONDS
        soundfile.write(
            out_dir / f"rec{i}.wav", np.concatenate(pieces), SAMPLE_RATE
        )
    return spoken


def _overlap(a_start, a_end, b_start, b_end):
    """Seconds shared by two spans."""
    return min(a_end, b_end) - max(a_start, b_start)


def indexed_passages(audio_dir, spoken, settings=None):
    """The passages the indexer cuts, with the sentence spoken in each.

    Arguments
    ---------
    audio_dir : str or Path
        The recordings.
    spoken : list of dict
        :func:`make_search_archive`'s answer.
    settings : speechbrain_sense.search.indexer.PassageSettings, optional
        The indexer's settings (its defaults otherwise).

    Returns
    -------
    list of (torch.Tensor, str)
        Passage waveform and the text that overlaps it most.
    """
    from speechbrain_sense.audio import load_audio
    from speechbrain_sense.search.indexer import PassageSettings

    settings = settings or PassageSettings()
    passages = []
    for name in sorted({item["file"] for item in spoken}):
        wav = load_audio(Path(audio_dir) / name, SAMPLE_RATE)
        here = [item for item in spoken if item["file"] == name]
        for start, end in settings.spans(wav, SAMPLE_RATE):
            best = max(
                here,
                key=lambda i: _overlap(start, end, i["start"], i["end"]),
            )
            clip = wav[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            passages.append((clip, best["text"]))
    return passages


def train_search_model(audio_dir, spoken, out_dir, steps=150, seed=0):
    """Trains and exports a tiny SENSE model on the archive's passages.

    Arguments
    ---------
    audio_dir : str or Path
        The recordings.
    spoken : list of dict
        :func:`make_search_archive`'s answer.
    out_dir : str or Path
        The exported model folder (its tiny w2v-BERT config beside it).
    steps : int
        Full-batch Adam steps (150 reach a cosine loss below 0.01).
    seed : int
        Initialisation seed.

    Returns
    -------
    Path
        The exported model folder.
    """
    from speechbrain_sense.encoders.export import export_student
    from speechbrain_sense.encoders.pooling import SenseEmbeddingHead
    from speechbrain_sense.encoders.student import SenseStudent
    from speechbrain_sense.encoders.w2v_bert import (
        SenseW2VBert,
        W2VBertFeatures,
    )
    from speechbrain_sense.teachers.sentence_encoders import teacher_from_spec
    from speechbrain_sense.testing.tiny_models import save_tiny_w2v_bert

    out_dir = Path(out_dir)
    clips, texts = zip(*indexed_passages(audio_dir, spoken))
    targets = teacher_from_spec(TEACHER_SPEC).encode(list(texts)).float()
    encoder_dir = str(save_tiny_w2v_bert(out_dir.parent / "tiny-w2v-bert"))
    torch.manual_seed(seed)
    student = SenseStudent(
        SenseW2VBert(encoder_dir, encoder_dir),
        SenseEmbeddingHead(32, targets.shape[1], projection="linear"),
    )
    features = [W2VBertFeatures(encoder_dir)(clip) for clip in clips]
    counts = torch.tensor([len(f) for f in features])
    # [P, T, 160]
    padded = torch.nn.utils.rnn.pad_sequence(features, batch_first=True)
    optimizer = torch.optim.Adam(student.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = 1 - torch.nn.functional.cosine_similarity(
            student(padded, counts), targets
        )
        optimizer.zero_grad()
        loss.mean().backward()
        optimizer.step()
    return export_student(
        student.state_dict(),
        encoder_dir,
        out_dir,
        training={"teacher": TEACHER_SPEC, "languages": ["en"]},
    )


def main(argv=None):
    """Writes ``OUT/audio``, ``OUT/truth.json`` and ``OUT/model``.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv``).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", help="where to write the archive")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    spoken = make_search_archive(out / "audio")
    (out / "truth.json").write_text(json.dumps(spoken, indent=1), "utf-8")
    train_search_model(out / "audio", spoken, out / "model")
    print(f"wrote {out / 'audio'}, {out / 'truth.json'} and {out / 'model'}")


if __name__ == "__main__":
    main()
