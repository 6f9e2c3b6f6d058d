"""Where does the pooling attend? Figures and statistics.

SENSE pools the encoder's frames with a learned attention. The paper's
analysis of where the semantics sit asks three questions, measured here on
the per-frame pooling weights ``a_t`` (they sum to one per utterance):

* how much mass falls in the **first 10%** of the utterance (frames
  ``t < 0.1 T``);
* how much falls on **non-speech** frames (Silero VAD,
  :mod:`speechbrain_sense.data.vad`);
* how much falls on **content words** versus **function words**, given
  word boundaries: from eSpeak NG's word events for synthesised speech
  (exact), or from a CTC forced alignment when a CTC model is given.

Each mass comes with the share of *frames* it covers, the value uniform
attention would give: mass above that share means the pooling prefers
those frames.

Function words are closed-class words (articles, determiners, pronouns,
prepositions, conjunctions, auxiliary and modal verbs, negation and common
particles), listed in :data:`FUNCTION_WORDS` for en, fr, de, es, pt and
it; a word is a function word when its lower-cased form, stripped of
surrounding punctuation, is listed (elided French/Italian forms such as
``l'`` and ``d'`` are listed too; ``l'accident`` is a content word). Any
other word of those languages is a content word; other languages get no
content/function statistics. eSpeak NG emits no word event for some
unstressed words (e.g. "the" after "on"); such a word is counted with the
word before it.

Command line::

    # one utterance: figure (waveform, spectrogram, attention, VAD, words)
    python -m speechbrain_sense.tasks.attention --model MODEL_DIR \\
        --audio a.wav --text "..." --language en --out fig.png \\
        [--ctc-model CTC_DIR]
    # synthesised speech (exact word boundaries), no --audio
    python -m speechbrain_sense.tasks.attention --model MODEL_DIR \\
        --text "The cat sleeps." --language en --out fig.png
    # statistics over a data set (CSV with wav, text, lang) or over
    # synthesised built-in sentences
    python -m speechbrain_sense.tasks.attention --model MODEL_DIR \\
        --batch manifest.csv --out stats.json [--ctc-model CTC_DIR]
    python -m speechbrain_sense.tasks.attention --model MODEL_DIR \\
        --synthetic en,fr --per-language 20 --out stats.json

Authors
 * speechbrain-sense developers 2026
"""

import argparse
import csv
import json
import math
import tempfile
import unicodedata
from pathlib import Path

import torch

from speechbrain_sense.encoders.inference import frame_times
from speechbrain_sense.synthetic.espeak import WordBoundary

HEAD_FRACTION = 0.1

_EN = """a an the this that these those my your his her its our their
i you he she it we they me him us them myself yourself itself
and or but nor so yet if because although though while as than that
of in on at to for from by with about into onto over under between
through during before after above below up down out off
is am are was were be been being have has had do does did
will would shall should can could may might must
not no there here what which who whom whose when where why how
all any some each every both either neither such very just too also
"""
_FR = """le la les l' un une des du de d' au aux ce cet cette ces
mon ma mes ton ta tes son sa ses notre nos votre vos leur leurs
je j' tu il elle on nous vous ils elles me m' te t' se s' lui y en
moi toi soi eux qui que qu' quoi dont où
et ou mais donc or ni car si comme quand lorsque puisque
à dans par pour sur sous avec sans chez vers entre depuis pendant
est suis es sommes êtes sont était étaient été être
ai as a avons avez ont avait avaient avoir
ne n' pas plus très aussi
"""
_DE = """der die das den dem des ein eine einen einem einer eines
dieser diese dieses diesen diesem mein meine dein sein seine ihr ihre
unser unsere euer eure
ich du er sie es wir ihr mich dich sich uns euch ihm ihn ihnen mir dir
und oder aber denn sondern doch wenn weil dass ob als wie
in im an am auf aus bei mit nach von vom zu zum zur für über unter
vor hinter neben zwischen durch gegen ohne um bis seit
ist bin bist sind seid war waren gewesen sein
habe hast hat haben habt hatte hatten
wird werde werden wurde wurden kann können muss müssen soll sollen
will wollen darf dürfen mag möchte nicht kein keine auch noch schon
sehr nur so da dort hier
"""
_ES = """el la los las lo un una unos unas al del
este esta estos estas ese esa esos esas mi mis tu tus su sus
nuestro nuestra nuestros nuestras
yo tú él ella nosotros nosotras vosotros ellos ellas me te se nos os
le les que quien cual cuyo donde cuando como
y e o u pero ni sino si porque aunque pues
a ante bajo con contra de desde en entre hacia hasta para por según
sin sobre tras durante
es soy eres somos son era eran fue fueron ser sido estar está están
estaba he has ha hemos han había haber no muy también ya más
"""
_PT = """o a os as um uma uns umas ao aos à às do da dos das
no na nos nas num numa pelo pela pelos pelas
este esta estes estas esse essa esses essas aquele aquela
meu minha meus minhas teu tua seu sua seus suas nosso nossa
eu tu ele ela nós vós eles elas me te se lhe lhes
que quem qual cujo onde quando como
e ou mas nem porque se embora pois
de em com por para sem sobre entre até desde contra
é sou és somos são era eram foi foram ser sido estar está estão
estava tem têm tinha ter há não muito também já mais
"""
_IT = """il lo la i gli le l' un uno una un' del dello della dei degli
delle al allo alla ai agli alle dal dalla nel nello nella nei negli
nelle sul sulla sui
questo questa questi queste quel quella quelli quelle
mio mia miei mie tuo tua suo sua suoi sue nostro nostra loro
io tu lui lei noi voi essi esse mi ti si ci vi ne gli
che chi cui quale dove quando come
e ed o ma né perché se anche però
di d' a da in con su per tra fra
è sono sei siamo siete era erano stato essere
ho hai ha abbiamo avete hanno aveva avere non più molto già
"""
FUNCTION_WORDS = {
    lang: frozenset(text.split())
    for lang, text in {
        "en": _EN,
        "fr": _FR,
        "de": _DE,
        "es": _ES,
        "pt": _PT,
        "it": _IT,
    }.items()
}


def _base_language(language):
    """``"en"`` for ``"en"``, ``"en_us"``, ``"en-GB"``..."""
    return (language or "").replace("-", "_").split("_")[0].lower()


def _strip(word):
    """Lower case without surrounding punctuation or symbols."""
    word = word.lower().replace("\u2019", "'")
    start, end = 0, len(word)
    while start < end and unicodedata.category(word[start])[0] in "PS":
        start += 1
    while end > start and unicodedata.category(word[end - 1])[0] in "PS":
        # keep the apostrophe of elided forms ("l'")
        if word[end - 1] == "'" and end - 1 > start:
            break
        end -= 1
    return word[start:end]


def is_function_word(word, language):
    """Whether ``word`` is a closed-class word of ``language``.

    Arguments
    ---------
    word : str
        A written word (case and punctuation are ignored).
    language : str
        Language code (``"en"``, ``"fr_fr"``...).

    Returns
    -------
    bool or None
        ``None`` when the language has no list.

    Example
    -------
    >>> is_function_word("The", "en"), is_function_word("cat,", "en")
    (True, False)
    >>> is_function_word("l'", "fr"), is_function_word("l'accident", "fr")
    (True, False)
    """
    words = FUNCTION_WORDS.get(_base_language(language))
    if words is None:
        return None
    return _strip(word) in words


def word_frame_labels(words, num_frames, language):
    """Per-frame word class from word boundaries.

    Arguments
    ---------
    words : list of WordBoundary
        Words with their times.
    num_frames : int
        Encoder frames (50 Hz).
    language : str
        Language of the words.

    Returns
    -------
    torch.Tensor
        ``[num_frames]`` long: 1 content word, 2 function word, 0 neither
        (frame centre outside every word).

    Example
    -------
    >>> words = [WordBoundary("the", 0.0, 0.04), WordBoundary("cat", 0.04, 0.1)]
    >>> word_frame_labels(words, 6, "en")
    tensor([2, 2, 1, 1, 1, 0])
    """
    centres = frame_times(num_frames)
    labels = torch.zeros(num_frames, dtype=torch.long)
    for word in words:
        function = is_function_word(word.word, language)
        if function is None:
            continue
        inside = (centres >= word.start_s) & (centres < word.end_s)
        labels[inside] = 2 if function else 1
    return labels


def attention_statistics(
    weights, speech_mask=None, word_labels=None, head_fraction=HEAD_FRACTION
):
    """Attention mass on the utterance head, non-speech and word classes.

    Arguments
    ---------
    weights : torch.Tensor
        ``[T]`` pooling weights of the real frames (summing to one).
    speech_mask : torch.Tensor, optional
        ``[T]`` bool, True on speech frames.
    word_labels : torch.Tensor, optional
        ``[T]`` from :func:`word_frame_labels`.
    head_fraction : float
        The "first part" of the utterance (0.1: frames ``t < 0.1 T``).

    Returns
    -------
    dict
        ``<name>_mass`` (attention in the region) and ``<name>_frames``
        (share of frames, the uniform-attention value) for ``head`` and,
        when given, ``non_speech``, ``content`` and ``function``.

    Example
    -------
    >>> weights = torch.tensor([0.5, 0.2, 0.1, 0.1, 0.1])
    >>> stats = attention_statistics(
    ...     weights, speech_mask=torch.tensor([0, 1, 1, 1, 0]).bool()
    ... )
    >>> round(stats["head_mass"], 3), round(stats["head_frames"], 3)
    (0.5, 0.2)
    >>> round(stats["non_speech_mass"], 3), round(stats["non_speech_frames"], 3)
    (0.6, 0.4)
    """
    weights = weights.float()
    total = len(weights)
    positions = torch.arange(total)
    regions = {"head": positions < head_fraction * total}
    if speech_mask is not None:
        regions["non_speech"] = ~speech_mask.bool()
    if word_labels is not None:
        regions["content"] = word_labels == 1
        regions["function"] = word_labels == 2
    stats = {}
    for name, region in regions.items():
        stats[f"{name}_mass"] = weights[region].sum().item()
        stats[f"{name}_frames"] = region.float().mean().item()
    return stats


def summarize_statistics(per_utterance):
    """Means over utterances, and enrichment (mass / frame share).

    Arguments
    ---------
    per_utterance : list of dict
        :func:`attention_statistics` outputs (keys may differ).

    Returns
    -------
    dict
        For each key, ``{"mean": ..., "count": n}``; for each region, an
        ``<name>_enrichment`` (mean mass / mean frame share: 1 means
        uniform attention).

    Example
    -------
    >>> out = summarize_statistics(
    ...     [{"head_mass": 0.3, "head_frames": 0.1},
    ...      {"head_mass": 0.1, "head_frames": 0.1}]
    ... )
    >>> round(out["head_mass"]["mean"], 3), round(out["head_enrichment"], 3)
    (0.2, 2.0)
    """
    keys = sorted({key for stats in per_utterance for key in stats})
    out = {}
    for key in keys:
        values = [s[key] for s in per_utterance if key in s]
        out[key] = {"mean": sum(values) / len(values), "count": len(values)}
    for key in keys:
        if key.endswith("_mass"):
            name = key[: -len("_mass")]
            frames = out.get(f"{name}_frames", {}).get("mean", 0.0)
            out[f"{name}_enrichment"] = (
                out[key]["mean"] / frames if frames > 0 else float("nan")
            )
    return out


def ctc_word_boundaries(waveform, text, ctc_model, sample_rate=16000):
    """Word boundaries by CTC forced alignment of the transcript.

    Arguments
    ---------
    waveform : torch.Tensor
        ``[time]`` mono samples at ``sample_rate``.
    text : str
        The transcript.
    ctc_model : str or Path
        A HuggingFace CTC model folder (e.g. a wav2vec 2.0 fine-tuned with
        a character vocabulary and ``|`` as the word delimiter) with its
        processor.
    sample_rate : int
        Rate of ``waveform``.

    Returns
    -------
    list of WordBoundary
        One per aligned word (words made only of characters outside the
        vocabulary are skipped).
    """
    import torchaudio.functional as F
    from transformers import AutoModelForCTC, AutoProcessor

    processor = AutoProcessor.from_pretrained(str(ctc_model))
    model = AutoModelForCTC.from_pretrained(str(ctc_model)).eval()
    tokenizer = getattr(processor, "tokenizer", processor)
    inputs = processor(
        waveform.numpy(), sampling_rate=sample_rate, return_tensors="pt"
    )
    with torch.no_grad():
        # [1, T', V]
        emissions = model(**inputs).logits.log_softmax(-1)
    vocab = tokenizer.get_vocab()
    delimiter = getattr(tokenizer, "word_delimiter_token", "|")
    # Follow the vocabulary's case; drop characters it cannot spell.
    lower = any(c.islower() for c in vocab)
    spoken = [
        (word, word.lower() if lower else word.upper()) for word in text.split()
    ]
    spoken = [(w, c) for w, c in spoken if any(ch in vocab for ch in c)]
    tokens, owners = [], []
    for index, (_, word) in enumerate(spoken):
        if tokens and delimiter in vocab:
            tokens.append(vocab[delimiter])
            owners.append(None)
        for char in word:
            if char in vocab:
                tokens.append(vocab[char])
                owners.append(index)
    if not tokens:
        return []
    blank = tokenizer.pad_token_id or 0
    targets = torch.tensor([tokens], dtype=torch.int32)
    alignment, scores = F.forced_align(emissions, targets, blank=blank)
    spans = F.merge_tokens(alignment[0], scores[0].exp(), blank=blank)
    seconds_per_frame = len(waveform) / sample_rate / emissions.shape[1]
    first, last = {}, {}
    for span, owner in zip(spans, owners):
        if owner is None:
            continue
        first.setdefault(owner, span.start)
        last[owner] = span.end
    return [
        WordBoundary(
            spoken[i][0],
            first[i] * seconds_per_frame,
            last[i] * seconds_per_frame,
        )
        for i in sorted(first)
    ]


def synthesize(text, language, sample_rate=16000):
    """Speech for ``text`` by eSpeak NG with exact word boundaries.

    Arguments
    ---------
    text : str
        Sentence.
    language : str
        eSpeak language code.
    sample_rate : int
        Rate of the returned waveform.

    Returns
    -------
    waveform : torch.Tensor
        ``[time]`` float32 at ``sample_rate``.
    words : list of WordBoundary
        From eSpeak's word events.
    """
    from speechbrain_sense.audio import resample
    from speechbrain_sense.synthetic.espeak import ESpeakSynthesizer

    result = ESpeakSynthesizer().synthesize(text, _base_language(language))
    waveform = resample(
        torch.from_numpy(result.waveform), result.sample_rate, sample_rate
    )
    return waveform, result.words


class AttentionAnalyzer:
    """Runs a SENSE model and gathers weights, VAD and words per utterance.

    Arguments
    ---------
    model : SenseEncoder
        A loaded model (:class:`speechbrain_sense.encoders.inference.SenseEncoder`).
    ctc_model : str, optional
        CTC model folder for word boundaries of real audio.
    use_vad : bool
        Run Silero VAD.
    """

    def __init__(self, model, ctc_model=None, use_vad=True):
        self.model = model
        self.ctc_model = ctc_model
        self.use_vad = use_vad

    def analyze(self, waveform, text=None, language=None, words=None):
        """Weights, speech segments, words and statistics of one waveform.

        Arguments
        ---------
        waveform : torch.Tensor
            ``[time]`` 16 kHz mono.
        text : str, optional
            Transcript (for CTC word boundaries).
        language : str, optional
            Language (for content/function words).
        words : list of WordBoundary, optional
            Known word boundaries (synthesised speech).

        Returns
        -------
        dict
            ``weights`` ``[T]``, ``segments`` (or ``None``), ``words`` (or
            ``None``), ``word_source`` and ``stats``.
        """
        from speechbrain_sense.data.vad import (
            frame_speech_mask,
            speech_segments,
        )

        weights, counts = self.model.attention_weights(waveform[None])
        weights = weights[0, : counts[0]].cpu()
        segments = speech_segments(waveform) if self.use_vad else None
        source = "eSpeak word events" if words else None
        if words is None and self.ctc_model and text:
            words = ctc_word_boundaries(waveform, text, self.ctc_model)
            source = "CTC forced alignment"
        speech_mask = (
            frame_speech_mask(segments, len(weights))
            if segments is not None
            else None
        )
        labels = None
        if words and _base_language(language) in FUNCTION_WORDS:
            labels = word_frame_labels(words, len(weights), language)
        stats = attention_statistics(weights, speech_mask, labels)
        return {
            "weights": weights,
            "segments": segments,
            "words": words or None,
            "word_source": source,
            "stats": stats,
        }


def plot_attention(
    waveform,
    weights,
    out,
    segments=None,
    words=None,
    language=None,
    title="",
    note=None,
    sample_rate=16000,
):
    """Waveform, spectrogram, VAD, word boundaries and pooling attention.

    Arguments
    ---------
    waveform : torch.Tensor
        ``[time]`` mono samples.
    weights : torch.Tensor
        ``[T]`` pooling weight per encoder frame.
    out : str or Path
        PNG to write.
    segments : list of (float, float), optional
        Speech segments (shaded).
    words : list of WordBoundary, optional
        Word boundaries (content words in one colour, function words in
        another).
    language : str, optional
        Language of the words.
    title : str
        Figure title.
    note : str, optional
        Written under the plots (e.g. why words are missing).
    sample_rate : int
        Rate of ``waveform``.

    Returns
    -------
    Path
        ``out``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = len(waveform) / sample_rate
    fig, axes = plt.subplots(
        3,
        1,
        figsize=(10, 6.2),
        sharex=True,
        gridspec_kw={"height_ratios": [1, 1.3, 1.6]},
    )
    wave_ax, spec_ax, attn_ax = axes
    times = torch.arange(len(waveform)) / sample_rate
    wave_ax.plot(times, waveform, lw=0.4, color="0.2", rasterized=True)
    wave_ax.set_ylabel("waveform")
    for start, end in segments or []:
        for ax in (wave_ax, attn_ax):
            ax.axvspan(start, end, color="tab:green", alpha=0.12, lw=0)
    if segments is not None:
        wave_ax.text(
            0.995,
            0.95,
            "green: speech (Silero VAD)",
            transform=wave_ax.transAxes,
            ha="right",
            va="top",
            fontsize=7,
        )
    # [F, T] log-magnitude spectrogram, 25 ms windows, 10 ms hop
    window = int(0.025 * sample_rate)
    spectrum = torch.stft(
        waveform.float(),
        n_fft=512,
        hop_length=sample_rate // 100,
        win_length=window,
        window=torch.hann_window(window),
        return_complex=True,
    ).abs()
    spec_ax.imshow(
        (spectrum + 1e-6).log10().numpy(),
        origin="lower",
        aspect="auto",
        extent=(0, duration, 0, sample_rate / 2000),
        cmap="magma",
    )
    spec_ax.set_ylabel("kHz")
    centres = frame_times(len(weights))
    attn_ax.step(centres, weights, where="mid", color="tab:blue", lw=1)
    attn_ax.axhline(
        1 / len(weights), color="0.4", ls="--", lw=0.8, label="uniform"
    )
    attn_ax.axvline(
        HEAD_FRACTION * len(weights) * 0.02,
        color="tab:red",
        ls=":",
        lw=1,
        label=f"first {100 * HEAD_FRACTION:.0f}%",
    )
    attn_ax.set_ylabel("pooling weight")
    attn_ax.set_xlabel("time (s)")
    attn_ax.set_xlim(0, duration)
    top = float(weights.max()) * 1.35 if len(weights) else 1.0
    attn_ax.set_ylim(0, top)
    for word in words or []:
        function = is_function_word(word.word, language or "")
        colour = "tab:gray" if function else "tab:orange"
        attn_ax.axvline(word.start_s, color=colour, lw=0.6, alpha=0.8)
        attn_ax.text(
            (word.start_s + word.end_s) / 2,
            top * 0.97,
            word.word,
            rotation=90,
            ha="center",
            va="top",
            fontsize=7,
            color=colour,
        )
    attn_ax.legend(loc="lower right", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    if note:
        fig.text(0.01, 0.005, note, fontsize=7, ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return Path(out)


def _format_stats(stats):
    """One line: attention mass against frame share, per frame class."""
    parts = []
    for name in ("head", "non_speech", "content", "function"):
        if f"{name}_mass" in stats:
            parts.append(
                f"{name.replace('_', '-')}: {100 * stats[f'{name}_mass']:.0f}% "
                f"of mass on {100 * stats[f'{name}_frames']:.0f}% of frames"
            )
    return "; ".join(parts)


def _load_model(model_dir, device="cpu"):
    """Loads an exported SENSE model onto ``device``."""
    from speechbrain_sense.encoders.inference import SenseEncoder

    return SenseEncoder.from_hparams(
        source=str(model_dir),
        savedir=tempfile.mkdtemp(prefix="sense-attention-"),
        run_opts={"device": device},
    )


def figure_for_utterance(
    analyzer, out, audio=None, text=None, language=None, title=None
):
    """One figure (and its statistics) for a file or synthesised text.

    Arguments
    ---------
    analyzer : AttentionAnalyzer
        The model and options.
    out : str or Path
        PNG to write.
    audio : str or Path, optional
        Audio file; without it, ``text`` is synthesised by eSpeak NG.
    text : str, optional
        Transcript.
    language : str, optional
        Language code.
    title : str, optional
        Figure title (default: the file name and transcript).

    Returns
    -------
    dict
        The analysis (see :meth:`AttentionAnalyzer.analyze`).
    """
    from speechbrain_sense.audio import load_audio

    words = None
    if audio is None:
        if not (text and language):
            raise ValueError("give an audio file, or a text and a language")
        waveform, words = synthesize(text, language)
    else:
        waveform = load_audio(audio)
    result = analyzer.analyze(waveform, text, language, words)
    note = None
    if result["words"] is None:
        note = (
            "Word boundaries omitted: no eSpeak word events (real audio) "
            "and no CTC model given (--ctc-model)."
        )
    elif result["word_source"]:
        note = (
            f"Word boundaries: {result['word_source']} (orange: content, "
            "grey: function words)."
        )
    stats = _format_stats(result["stats"])
    note = f"{note}\n{stats}" if note else stats
    name = Path(audio).name if audio else "eSpeak NG"
    plot_attention(
        waveform,
        result["weights"],
        out,
        segments=result["segments"],
        words=result["words"],
        language=language,
        title=title or f"{name}: {text or ''}"[:160],
        note=note,
    )
    return result


def dataset_statistics(analyzer, utterances, progress=True):
    """Attention statistics over many utterances.

    Arguments
    ---------
    analyzer : AttentionAnalyzer
        The model and options.
    utterances : iterable of dict
        Each with ``waveform`` (16 kHz) or ``wav`` (a file), and optional
        ``text``, ``lang``, ``words``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        ``{"utterances": n, "summary": summarize_statistics(...),
        "per_utterance": [...]}``.
    """
    from tqdm import tqdm

    from speechbrain_sense.audio import load_audio

    rows = []
    for utt in tqdm(list(utterances), disable=not progress, desc="attention"):
        waveform = utt.get("waveform")
        if waveform is None:
            waveform = load_audio(utt["wav"])
        result = analyzer.analyze(
            waveform, utt.get("text"), utt.get("lang"), utt.get("words")
        )
        rows.append({"id": utt.get("id", len(rows)), **result["stats"]})
    stats_only = [{k: v for k, v in row.items() if k != "id"} for row in rows]
    return {
        "utterances": len(rows),
        "summary": summarize_statistics(stats_only),
        "per_utterance": rows,
    }


def _csv_utterances(path, data_root=None):
    """Yields the utterances of a (wav, text, lang) CSV, paths resolved."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if "wav" not in (reader.fieldnames or ()):
            raise ValueError(f"{path}:1: the header must include wav")
        base = Path(path).parent
        for line, row in enumerate(reader, start=2):
            if "$data_root" in row["wav"] and data_root is None:
                raise ValueError(f"{path}:{line}: $data_root needs --data-root")
            wav = Path(row["wav"].replace("$data_root", str(data_root)))
            if not wav.is_absolute():
                wav = base / wav
            if not wav.is_file():
                raise FileNotFoundError(f"{path}:{line}: {wav} not found")
            yield {
                "id": row.get("ID") or f"{path}:{line}",
                "wav": str(wav),
                "text": row.get("text"),
                "lang": row.get("lang"),
            }


def _synthetic_utterances(languages, per_language):
    """Yields synthesised built-in sentences with exact word boundaries."""
    from speechbrain_sense.synthetic.common_voice import load_builtin_sentences

    for language in languages:
        for i, sentence in enumerate(load_builtin_sentences(language)):
            if i >= per_language:
                break
            waveform, words = synthesize(sentence, language)
            yield {
                "id": f"{language}-{i}",
                "waveform": waveform,
                "text": sentence,
                "lang": language,
                "words": words,
            }


def main(argv=None):
    """Command line: ``python -m speechbrain_sense.tasks.attention --help``.

    Arguments
    ---------
    argv : list of str, optional
        The arguments; None reads ``sys.argv``.

    Returns
    -------
    dict
        The dataset statistics (``--batch``/``--synthetic``), or the
        figure's per-utterance result.
    """
    parser = argparse.ArgumentParser(
        description="Where does a SENSE model's pooling attend?"
    )
    parser.add_argument("--model", required=True, help="exported model folder")
    parser.add_argument("--audio", help="audio file (any rate, any channels)")
    parser.add_argument(
        "--text", help="transcript (synthesised without --audio)"
    )
    parser.add_argument("--language", help="language code, e.g. en")
    parser.add_argument(
        "--batch", help="CSV (wav, text, lang) for dataset statistics"
    )
    parser.add_argument(
        "--data-root", help="replaces $data_root in the CSV's wav column"
    )
    parser.add_argument(
        "--synthetic",
        help="comma-separated languages: statistics on synthesised built-in "
        "sentences (exact word boundaries)",
    )
    parser.add_argument("--per-language", type=int, default=20)
    parser.add_argument("--ctc-model", help="HuggingFace CTC model folder")
    parser.add_argument("--no-vad", action="store_true", help="skip Silero VAD")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--out", required=True, help="figure (.png) or statistics (.json)"
    )
    args = parser.parse_args(argv)
    analyzer = AttentionAnalyzer(
        _load_model(args.model, args.device),
        ctc_model=args.ctc_model,
        use_vad=not args.no_vad,
    )
    if args.batch or args.synthetic:
        utterances = (
            _csv_utterances(args.batch, args.data_root)
            if args.batch
            else _synthetic_utterances(
                args.synthetic.split(","), args.per_language
            )
        )
        stats = dataset_statistics(analyzer, utterances)
        Path(args.out).write_text(json.dumps(stats, indent=1))
        for key, value in stats["summary"].items():
            if isinstance(value, dict):
                value = value["mean"]
            if not math.isnan(value):
                print(f"{key}: {value:.3f}")
        return stats
    result = figure_for_utterance(
        analyzer, args.out, args.audio, args.text, args.language
    )
    print(f"Wrote {args.out}: {_format_stats(result['stats'])}")
    return result


if __name__ == "__main__":
    main()
