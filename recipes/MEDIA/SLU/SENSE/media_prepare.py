"""MEDIA manifests with concept-tagged transcripts for end-to-end SLU.

Reads the MEDIA release as SpeechBrain's MEDIA recipe does
(``recipes/MEDIA/media_prepare.py`` upstream):

* audio: ELRA-S0272, one stereo 8 kHz ``<dialogue>.wav`` per dialogue
  anywhere under ``<data_folder>/S0272/``; the caller is on the channel
  given by ``channels.csv`` (rows ``L,<dialogue>`` or ``R,<dialogue>``,
  distributed with SpeechBrain's recipe), the wizard on the other;
* annotation: ELRA-E0024, ``E0024/MEDIA1FR_00/MEDIA1FR/DATA/`` with
  ``media_lot{1,2,3,4}.xml`` (train), ``media_testHC_a_blanc.xml`` (dev)
  and ``media_testHC.xml`` (test), ISO-8859-1 XML: ``<dialogue id
  nameSpk>``, ``<turn speaker="spk" startTime endTime>``, and in its
  ``<semAnnotation withContext="false">`` the ``<sem concept specif>``
  elements whose ``<transcription>`` holds the words and ``<Sync time>``
  marks.

Each caller turn is cut at its ``<Sync>`` marks into segments, except
where a concept is open (the cut waits for the concept's end), and each
segment becomes one manifest row with the concepts inline::

    <command-tache> je voudrais réserver > <nombre-chambre-reservation> deux chambres >

The ``full`` concept set appends ``specif`` to the concept
(``nombre-chambre`` + ``-reservation``); ``relax`` drops it. Words are
normalised as upstream does in general (apostrophes detached from the next
word, ``(...)`` noise marks written ``*``, punctuation other than
``' - _`` removed, number compounds such as ``vingt-deux`` split); its
corpus-specific typo fixes are not reproduced. The ``test2`` set of the
2022 MEDIA update is not prepared.

Manifests: ``<save_folder>/{train,dev,test}.csv`` with ``ID, duration,
wav, start, stop, channel, speaker, text, tagged`` (``wav`` relative to
``$data_root``, ``channel`` 0 for left and 1 for right); the audio stays
where it is and is cut and resampled when loaded.

Authors
 * speechbrain-sense developers 2026
"""

import csv
import json
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from speechbrain.utils.logger import get_logger

from speechbrain_sense.audio import AudioReadError, audio_duration
from speechbrain_sense.data.preparation import (
    already_prepared,
    mark_prepared,
    write_manifest,
)
from speechbrain_sense.metrics.slu import parse_tagged

logger = get_logger(__name__)

DATA_DIR = "E0024/MEDIA1FR_00/MEDIA1FR/DATA"
XML_SPLITS = {
    "train": [
        "media_lot1.xml",
        "media_lot2.xml",
        "media_lot3.xml",
        "media_lot4.xml",
    ],
    "dev": ["media_testHC_a_blanc.xml"],
    "test": ["media_testHC.xml"],
}
CHANNELS = {"L": 0, "R": 1}
MANIFEST_COLUMNS = (
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "channel",
    "speaker",
    "text",
    "tagged",
)
REPORT_FILE = "prepare_report.json"
NUMBER_PREFIXES = (
    "dix",
    "vingt",
    "trente",
    "quarante",
    "cinquante",
    "soixante",
    "quatre",
)


class MediaFormatError(ValueError):
    """MEDIA files that cannot be read (the message names the file)."""


def prepare_media(
    data_folder,
    save_folder,
    channels_path,
    method="full",
    skip_bad_rows=False,
):
    """Writes ``train.csv``, ``dev.csv`` and ``test.csv`` (idempotent).

    Arguments
    ---------
    data_folder : str or Path
        Folder holding ``S0272/`` and ``E0024/``.
    save_folder : str or Path
        Where the manifests and the report go.
    channels_path : str or Path
        SpeechBrain's ``channels.csv``.
    method : str
        ``"full"`` (concept + specifier) or ``"relax"`` (concept only).
    skip_bad_rows : bool
        Skip (and count) segments without audio instead of raising.

    Returns
    -------
    dict
        The report: per split, kept and dropped segments by reason, kept
        hours and concept counts.
    """
    if method not in ("full", "relax"):
        raise ValueError(f"method must be 'full' or 'relax', not {method!r}")
    save_folder = Path(save_folder)
    data_folder = Path(data_folder)
    options = {
        "data_folder": os.path.abspath(data_folder),
        "channels_path": os.path.abspath(channels_path),
        "method": method,
        "skip_bad_rows": skip_bad_rows,
    }
    if already_prepared(
        save_folder, options, ["train.csv", "dev.csv", "test.csv", REPORT_FILE]
    ):
        logger.info(f"MEDIA manifests in {save_folder} are up to date")
        return json.loads((save_folder / REPORT_FILE).read_text())
    save_folder.mkdir(parents=True, exist_ok=True)
    channels = read_channels(channels_path)
    wavs = {}
    for path in sorted((data_folder / "S0272").rglob("*.wav")):
        wavs.setdefault(path.stem, path)
    if not wavs:
        raise FileNotFoundError(f"no .wav file under {data_folder / 'S0272'}")
    report = {}
    for split, names in XML_SPLITS.items():
        rows, dropped, concepts = [], Counter(), Counter()
        for name in names:
            xml_path = data_folder / DATA_DIR / name
            if not xml_path.is_file():
                raise FileNotFoundError(f"missing MEDIA file {xml_path}")
            for dialogue in read_dialogues(xml_path, method):
                _dialogue_rows(
                    dialogue,
                    xml_path,
                    data_folder,
                    wavs,
                    channels,
                    channels_path,
                    skip_bad_rows,
                    rows,
                    dropped,
                )
        for row in rows:
            concepts.update(s.label for s in parse_tagged(row["tagged"]).spans)
        if not rows:
            raise ValueError(f"no {split} segment kept (dropped: {dropped})")
        write_manifest(save_folder / f"{split}.csv", rows, MANIFEST_COLUMNS)
        report[split] = {
            "kept": len(rows),
            "kept_hours": sum(float(r["duration"]) for r in rows) / 3600,
            "dropped": sum(dropped.values()),
            "dropped_by_reason": dict(dropped),
            "concepts": dict(sorted(concepts.items())),
        }
        logger.info(
            f"{split}: kept {len(rows)} segments "
            f"({report[split]['kept_hours']:.2f} h), dropped "
            f"{sum(dropped.values())} {dict(dropped)}, "
            f"{len(concepts)} distinct concepts ({method})"
        )
    (save_folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    # Written last: its presence means everything above completed.
    mark_prepared(save_folder, options)
    return report


def read_channels(path):
    """``{dialogue: "L" | "R"}`` from SpeechBrain's ``channels.csv``.

    Arguments
    ---------
    path : str or Path
        The CSV (no header, rows ``channel,dialogue``).

    Returns
    -------
    dict
    """
    channels = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) != 2 or row[0] not in CHANNELS:
                raise MediaFormatError(
                    f"{path}:{line}: expected 'L,<dialogue>' or "
                    f"'R,<dialogue>', got {row!r}"
                )
            channel, dialogue = row
            if channels.get(dialogue, channel) != channel:
                raise MediaFormatError(
                    f"{path}:{line}: dialogue {dialogue} given both channels"
                )
            channels[dialogue] = channel
    return channels


def normalize_words(text):
    """MEDIA's general word normalisation (see the module doc).

    Arguments
    ---------
    text : str
        Raw transcription text.

    Returns
    -------
    str

    Example
    -------
    >>> normalize_words("d'accord , (rire) vingt-deux  chambres !")
    "d' accord * vingt deux chambres"
    """
    text = text.replace(" '", "'").replace("'", "' ")
    text = re.sub(r"^'", "", text)
    text = re.sub(r"\(.*?\)", "*", text)
    # Drop punctuation, keep letters, digits, ' - _ and the noise mark *.
    text = re.sub(r"[^\w\s'*-]", "", text)
    for prefix in NUMBER_PREFIXES:
        text = text.replace(f"{prefix}-", f"{prefix} ")
    text = " ".join(text.split())
    return text.replace("c' est", "c'est")


def _transcription_items(element):
    """Text pieces and Sync times of a ``<transcription>`` in order."""
    if element.text:
        yield "text", element.text
    for child in element:
        if child.tag == "Sync":
            yield "sync", child.get("time")
        if child.tail:
            yield "text", child.tail


def read_dialogues(xml_path, method):
    """Caller segments of every dialogue of one MEDIA XML file.

    Arguments
    ---------
    xml_path : Path
        A MEDIA annotation file.
    method : str
        ``"full"`` or ``"relax"``.

    Returns
    -------
    list of dict
        ``{"id", "speaker", "segments": [(start, stop, tagged)]}``.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise MediaFormatError(f"{xml_path}: {error}") from error
    dialogues = []
    for dialogue in root.iter("dialogue"):
        name = dialogue.get("id")
        if not name:
            raise MediaFormatError(f"{xml_path}: <dialogue> without id")
        segments = []
        for turn in dialogue.iter("turn"):
            if turn.get("speaker") != "spk":
                continue
            try:
                segments += _turn_segments(turn, method)
            except (TypeError, ValueError) as error:
                raise MediaFormatError(
                    f"{xml_path}: dialogue {name}, turn at "
                    f"{turn.get('startTime')}: {error}"
                ) from error
        speaker = re.sub(r"[-#.]", "_", dialogue.get("nameSpk", ""))
        dialogues.append({"id": name, "speaker": speaker, "segments": segments})
    return dialogues


def _turn_segments(turn, method):
    """Cuts a caller turn at its Sync marks (upstream's rules)."""
    turn_end = float(turn.get("endTime"))
    current = {"start": float(turn.get("startTime")), "end": turn_end}
    current["tokens"] = []
    segments = [current]
    has_speech, pending_sync = False, None
    for annotation in turn.iter("semAnnotation"):
        if annotation.get("withContext") != "false":
            continue
        for sem in annotation.iter("sem"):
            concept = sem.get("concept", "null")
            specif = sem.get("specif", "null")
            if method == "full" and concept != "null" and specif != "null":
                concept += specif
            concept_open = False
            for transcription in sem.iter("transcription"):
                for kind, value in _transcription_items(transcription):
                    if kind == "text":
                        words = normalize_words(value)
                        if not words:
                            continue
                        if concept != "null" and not concept_open:
                            current["tokens"].append(f"<{concept}>")
                            concept_open = True
                        current["tokens"] += words.split()
                        current["end"] = turn_end
                        has_speech, pending_sync = True, None
                    elif not has_speech:
                        # Silence before the speech: the segment starts here.
                        current["start"] = float(value)
                    elif not concept_open:
                        current["end"] = float(value)
                        current = {"start": float(value), "end": turn_end}
                        current["tokens"] = []
                        segments.append(current)
                        has_speech = False
                    else:
                        # Never cut inside a concept: wait for its end.
                        pending_sync = float(value)
            if concept_open:
                current["tokens"].append(">")
            if pending_sync is not None:
                current["end"] = pending_sync
                current = {"start": pending_sync, "end": turn_end}
                current["tokens"] = []
                segments.append(current)
                has_speech, pending_sync = False, None
    return [
        (s["start"], s["end"], " ".join(s["tokens"]))
        for s in segments
        if s["tokens"]
    ]


def _dialogue_rows(
    dialogue,
    xml_path,
    data_folder,
    wavs,
    channels,
    channels_path,
    skip_bad_rows,
    rows,
    dropped,
):
    """Manifest rows of one dialogue's user turns, cut from its channel."""
    name = dialogue["id"]
    wav = wavs.get(name)
    if name not in channels:
        raise MediaFormatError(
            f"{channels_path}: no channel for dialogue {name} ({xml_path})"
        )
    try:
        if wav is None:
            raise AudioReadError(f"no S0272/**/{name}.wav")
        wav_duration = audio_duration(wav)
    except AudioReadError as error:
        if not skip_bad_rows:
            raise MediaFormatError(
                f"{xml_path}: dialogue {name}: {error}"
            ) from error
        logger.warning(f"skipped dialogue {name}: {error}")
        dropped["missing_audio"] += len(dialogue["segments"])
        return
    channel = channels[name]
    for start, stop, tagged in dialogue["segments"]:
        if stop - start <= 0:
            dropped["zero_duration"] += 1
            continue
        if stop > wav_duration + 0.01:
            # Upstream drops these as well: annotation past the recording.
            dropped["beyond_audio"] += 1
            continue
        rows.append(
            {
                "ID": f"{channel}{name}#{dialogue['speaker']}#"
                f"{start:.3f}_{stop:.3f}",
                "duration": f"{stop - start:.3f}",
                "wav": "$data_root/" + wav.relative_to(data_folder).as_posix(),
                "start": f"{start:.3f}",
                "stop": f"{stop:.3f}",
                "channel": str(CHANNELS[channel]),
                "speaker": dialogue["speaker"],
                "text": parse_tagged(tagged).text,
                "tagged": tagged,
            }
        )
