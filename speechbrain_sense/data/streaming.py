"""Streaming SENSE training batches from WebDataset shards.

:class:`ShardStream` reads the shards of :mod:`speechbrain_sense.data.shards`
sequentially and yields ready ``PaddedBatch`` es, with the semantics of
the map-style path (:class:`~speechbrain_sense.data.sampling.
LanguageBalancedDynamicBatchSampler`):

* **Language re-balancing.** Every drawn clip's language is drawn with the
  SAMU-XLSR share ``q_l = n_l r_l / sum_k n_k r_k`` (``r_l`` from
  ``language_ratios.json``, ``n_l`` the clips in the shards), then taken
  from that language's stream; small languages loop, large ones are read
  in a new random order and from a random offset every epoch.
* **Dynamic batching.** Windows of ``sort_window`` drawn clips are sorted
  by duration and packed under the same padded-seconds cap
  (``max_batch_seconds``, ``max_batch_size``); durations come from the
  shard index, so batches are planned before any byte is read.
* **Exact split.** Each (rank, worker) *slot* owns a fixed, disjoint set of
  shards (or, for languages with fewer shards than slots, of every
  ``m``-th clip of each shard): no clip reaches two ranks. Every slot
  yields exactly as many batches, so DDP ranks never wait on each other.
* **Epochs in audio-hours.** ``epoch_audio_hours`` of speech per epoch,
  split evenly over the slots.
* **Mid-epoch resume.** The whole epoch is a pure function of the index,
  the seed, the epoch and the number of slots. :class:`StreamLoader`
  checkpoints the number of batches yielded, and a resumed run skips them
  by reading tar headers only.

Without ``language_ratios`` the stream is an evaluation stream: every clip
exactly once, split over the slots, in a fixed order.

Authors
 * speechbrain-sense developers 2026
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speechbrain_sense.data.sampling import pack_by_duration
from speechbrain_sense.data.shards import ShardError, ShardReader, load_index

logger = logging.getLogger(__name__)

SHARED_EPOCH, SHARED_SKIP, SHARED_BATCHES = 0, 1, 2


def language_shares(counts, ratios):
    """Per-language draw probabilities ``q_l`` of the SAMU-XLSR rule.

    Arguments
    ---------
    counts : dict
        Clips per language.
    ratios : dict
        Per-utterance weights ``r_l`` (``load_language_ratios``).

    Returns
    -------
    dict
        ``q_l = n_l r_l / sum_k n_k r_k`` per language of ``counts``.

    Raises
    ------
    ValueError
        If a language has no ratio, or a ratio's language has no clip.

    Example
    -------
    >>> shares = language_shares({"a": 900, "b": 100}, {"a": 0.8, "b": 2.8})
    >>> {k: round(v, 3) for k, v in shares.items()}
    {'a': 0.72, 'b': 0.28}
    """
    missing = sorted(set(counts) - set(ratios))
    absent = sorted(set(ratios) - set(counts))
    if missing:
        raise ValueError(f"no sampling ratio for language(s) {missing}")
    if absent:
        raise ValueError(
            f"language(s) {absent} have a sampling ratio but no clip in "
            "the shards; rebuild the shards from the same manifests"
        )
    mass = {lang: counts[lang] * float(ratios[lang]) for lang in counts}
    total = sum(mass.values())
    return {lang: value / total for lang, value in mass.items()}


def _slot_units(shards, num_slots, seed):
    """Assigns one language's shards (or parts of them) to slots.

    A language with at least ``num_slots`` shards is split by shard; a
    smaller one by clip: each shard is cut into ``m = ceil(num_slots /
    shards)`` parts (clips ``j`` with ``j % m == part``). The assignment is
    fixed for the run, so a clip always belongs to the same slot.

    Returns
    -------
    list
        ``num_slots`` lists of ``(shard_id, part, parts)`` units.
    """
    parts = 1 if len(shards) >= num_slots else -(-num_slots // len(shards))
    units = [(s, p, parts) for s in shards for p in range(parts)]
    order = np.random.default_rng(seed).permutation(len(units))
    units = [units[i] for i in order]
    return [units[k::num_slots] for k in range(num_slots)]


class ShardStream(torch.utils.data.IterableDataset):
    """Language-mixed, duration-bucketed batches streamed from shards.

    Arguments
    ---------
    folder : str or Path
        A verified shard folder (``index.json``).
    split : str
        The split to stream (``train``, ``dev``, ...).
    max_batch_seconds : float
        Cap on the padded duration ``len(batch) * max(duration)``.
    language_ratios : dict, optional
        Per-utterance SAMU-XLSR weights ``r_l``: a training stream with
        re-balanced languages and ``epoch_audio_hours`` per epoch. None:
        an evaluation stream, every clip once.
    epoch_audio_hours : float, optional
        Audio per training epoch (all ranks); default one pass over the
        split's audio.
    max_batch_size : int, optional
        Cap on utterances per batch.
    sort_window : int
        Drawn clips sorted together before packing; also the number of
        clips a worker holds in memory.
    seed : int
        Base seed; equal on every rank.
    num_workers : int
        The DataLoader's ``num_workers`` (slots = ranks x workers).
    num_replicas : int, optional
        DDP world size; default from ``torch.distributed``.
    rank : int, optional
        DDP rank; default from ``torch.distributed``.
    on_error : str
        ``"raise"``: a corrupt sample stops the run with its shard and
        sample. ``"skip"``: it is counted, logged and left out of its
        batch (a batch left empty repeats the previous one, keeping every
        rank's batch count).
    features : callable, optional
        ``waveform -> [frames, 160]`` features, for shards stored with
        audio only (``W2VBertFeatures``).
    extra_items : callable, optional
        ``sample dict -> dict`` of more keys per sample (e.g. the cached
        teacher embedding); must be picklable for the workers.

    Example
    -------
    >>> ShardStream("/no/shards", "train", 60.0)
    Traceback (most recent call last):
    ...
    speechbrain_sense.data.shards.ShardError: /no/shards/index.json not found: ...
    """

    def __init__(
        self,
        folder,
        split,
        max_batch_seconds,
        *,
        language_ratios=None,
        epoch_audio_hours=None,
        max_batch_size=None,
        sort_window=512,
        seed=0,
        num_workers=0,
        num_replicas=None,
        rank=None,
        on_error="raise",
        features=None,
        extra_items=None,
    ):
        super().__init__()
        self.folder = Path(folder)
        index = load_index(folder)
        shards = [s for s in index["shards"] if s["split"] == split]
        if not shards:
            raise ShardError(f"{folder}: no shard of split {split!r}")
        if index["store"] == "audio" and features is None:
            raise ShardError(
                f"{folder}: shards hold audio only; pass features="
            )
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be raise or skip: {on_error!r}")
        if not max_batch_seconds > 0:
            raise ValueError(
                f"max_batch_seconds must be > 0: {max_batch_seconds}"
            )
        if sort_window < 1:
            raise ValueError(f"sort_window must be >= 1: {sort_window}")
        if num_replicas is None or rank is None:
            initialised = torch.distributed.is_initialized()
            world = torch.distributed.get_world_size() if initialised else 1
            own = torch.distributed.get_rank() if initialised else 0
            num_replicas = world if num_replicas is None else num_replicas
            rank = own if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"invalid rank {rank} of {num_replicas}")

        self.split = split
        self.paths = [self.folder / f"{s['name']}.tar" for s in shards]
        self.durations = [
            np.asarray(s["durations"], dtype=np.float64) for s in shards
        ]
        self.shard_language = [s["language"] for s in shards]
        self.languages = sorted(set(self.shard_language))
        self.max_batch_seconds = float(max_batch_seconds)
        self.max_batch_size = max_batch_size
        self.sort_window = int(sort_window)
        self.seed = int(seed)
        self.num_workers = int(num_workers)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.num_slots = self.num_replicas * max(1, self.num_workers)
        self.on_error = on_error
        self.features = features
        self.extra_items = extra_items
        self.training = language_ratios is not None
        total_seconds = sum(float(d.sum()) for d in self.durations)
        if epoch_audio_hours is None:
            epoch_audio_hours = total_seconds / 3600
        if not epoch_audio_hours > 0:
            raise ValueError(
                f"epoch_audio_hours must be > 0: {epoch_audio_hours}"
            )
        self.epoch_audio_hours = float(epoch_audio_hours)
        self.shares = None
        if self.training:
            counts = dict.fromkeys(self.languages, 0)
            for lang, d in zip(self.shard_language, self.durations):
                counts[lang] += d.size
            counts = {lang: n for lang, n in counts.items() if n}
            self.shares = language_shares(counts, language_ratios)
        self.units = {}
        for k, lang in enumerate(self.languages):
            ids = [i for i, x in enumerate(self.shard_language) if x == lang]
            # One assignment per run: the seed, not the epoch.
            self.units[lang] = _slot_units(ids, self.num_slots, [seed, k])
        self.epoch = 0
        self.skipped = 0  # corrupt samples left out, on_error="skip"
        # Read by the workers when an epoch starts, also when they are
        # persistent: [epoch, batches to skip, batches per slot].
        self.shared = torch.zeros(3, dtype=torch.int64).share_memory_()
        self._batches_per_slot = {}
        self._resume = None
        self.set_epoch(0)

    # -- epoch control (main process) ---------------------------------------

    def set_epoch(self, epoch):
        """Selects the epoch (Brain.fit calls it through ``train_sampler``).

        A position restored by :meth:`resume` for this epoch applies until
        a :class:`StreamLoader` starts iterating.

        Arguments
        ---------
        epoch : int
            The epoch the workers plan and read when they next start.
        """
        self.epoch = int(epoch)
        self._publish()

    def resume(self, epoch, batches):
        """Restarts epoch ``epoch`` after ``batches`` batches of this rank.

        The skip applies once :meth:`set_epoch` selects ``epoch`` and lasts
        until the next iteration starts.

        Arguments
        ---------
        epoch : int
            The epoch that was interrupted.
        batches : int
            Batches this rank had already yielded in it (all its workers).
        """
        self._resume = (int(epoch), int(batches))
        self._publish()

    def start_iteration(self):
        """Called as iteration starts: returns and consumes the skip.

        Returns
        -------
        int
            Batches of the current epoch the workers skip (0 unless a
            resumed position applies); later iterations start from 0.
        """
        skip = int(self.shared[SHARED_SKIP])
        self._resume = None
        return skip

    def _publish(self):
        """Writes what the workers read when their iteration starts."""
        skip = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            skip = self._resume[1]
        self.shared[SHARED_EPOCH] = self.epoch
        self.shared[SHARED_SKIP] = skip
        self.shared[SHARED_BATCHES] = self.batches_per_slot(self.epoch)

    def batches_per_slot(self, epoch):
        """Training: batches every slot yields in ``epoch`` (all equal).

        Every slot is planned until its batches hold its share of
        ``epoch_audio_hours``; the count of the slot needing most batches
        is used by all, so no rank waits on another. Cached for the last
        epoch asked.

        Arguments
        ---------
        epoch : int
            The epoch to plan.

        Returns
        -------
        int
            Batches per slot; -1 for an evaluation stream (no fixed count:
            every clip once).
        """
        if not self.training:
            return -1
        if epoch not in self._batches_per_slot:
            budget = self.epoch_audio_hours * 3600 / self.num_slots
            most = 0
            for slot in range(self.num_slots):
                seconds, count = 0.0, 0
                for batch in self._slot_batches(epoch, slot):
                    count += 1
                    seconds += float(batch[2].sum())
                    if seconds >= budget:
                        break
                most = max(most, count)
            self._batches_per_slot = {epoch: most}
        return self._batches_per_slot[epoch]

    def __len__(self):
        """Batches this rank yields in the current epoch."""
        workers = max(1, self.num_workers)
        if self.training:
            return self.batches_per_slot(self.epoch) * workers
        first = self.rank * workers
        return sum(
            sum(1 for _ in self._slot_batches(self.epoch, slot))
            for slot in range(first, first + workers)
        )

    # -- planning (pure functions of index, seed, epoch, slots) -------------

    def _language_stream(self, lang, slot, rng):
        """The slot's clips of ``lang`` for one epoch: (shard, pos, dur)."""
        units = self.units[lang][slot]
        if self.training:
            units = [units[i] for i in rng.permutation(len(units))]
        shard_ids, positions, durations = [], [], []
        for shard, part, parts in units:
            pos = np.arange(part, self.durations[shard].size, parts)
            shard_ids.append(np.full(pos.size, shard))
            positions.append(pos)
            durations.append(self.durations[shard][pos])
        if not positions or sum(p.size for p in positions) == 0:
            return None
        shard_ids = np.concatenate(shard_ids)
        positions = np.concatenate(positions)
        durations = np.concatenate(durations)
        if self.training:
            # A random start: short epochs still cover every clip over time.
            offset = int(rng.integers(shard_ids.size))
            roll = np.roll(np.arange(shard_ids.size), -offset)
            shard_ids, positions = shard_ids[roll], positions[roll]
            durations = durations[roll]
        return shard_ids, positions, durations

    def _slot_batches(self, epoch, slot):
        """Yields the slot's batches as (shard_ids, positions, durations).

        Training: infinite (the caller stops); evaluation: every clip once.
        """
        for window in self._slot_windows(epoch, slot):
            yield from window

    def _slot_windows(self, epoch, slot):
        """The slot's batches, a list per sort window (read together)."""
        rng = np.random.default_rng([self.seed, epoch, slot])
        streams = {}
        for lang in self.languages:
            stream = self._language_stream(lang, slot, rng)
            if stream is not None:
                streams[lang] = stream
        if not streams:
            return
        if self.training:
            yield from self._mixed_windows(streams, rng)
        else:
            yield from self._ordered_windows(streams)

    def _pack_window(self, shard_ids, positions, durations):
        """Sorts one window by duration and cuts it into batches."""
        order = np.argsort(durations, kind="stable")
        shard_ids = shard_ids[order]
        positions = positions[order]
        durations = durations[order]
        ends, _ = pack_by_duration(
            durations.tolist(), self.max_batch_seconds, self.max_batch_size
        )
        starts = [0, *ends[:-1]]
        return [
            (shard_ids[s:e], positions[s:e], durations[s:e])
            for s, e in zip(starts, ends)
        ]

    def _mixed_windows(self, streams, rng):
        """Training windows: draws languages by share, packs, forever.

        Each window draws ``sort_window`` clips, the language of each by
        its share ``q_l`` (renormalised over the languages this slot has),
        taken in turn from that language's looping stream. The window is
        packed by duration; its last, least full batch is carried into the
        next window, and the others are shuffled.

        Arguments
        ---------
        streams : dict
            Language -> ``(shard_ids, positions, durations)`` arrays of the
            slot's clips (:meth:`_language_stream`).
        rng : numpy.random.Generator
            The slot's generator for this epoch.

        Yields
        ------
        list of tuple
            One window's batches, each ``(shard_ids, positions,
            durations)`` of :class:`numpy.ndarray`.
        """
        langs = sorted(streams)
        shares = np.array([self.shares[lang] for lang in langs])
        if len(langs) < len(self.shares):
            # Only languages with fewer clips than slots can be absent.
            shares = shares / shares.sum()
        cursor = dict.fromkeys(langs, 0)
        carry = (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
        while True:
            drawn = rng.choice(len(langs), size=self.sort_window, p=shares)
            shard_ids = np.empty(drawn.size, np.int64)
            positions = np.empty(drawn.size, np.int64)
            durations = np.empty(drawn.size)
            for k, lang in enumerate(langs):
                where = np.flatnonzero(drawn == k)
                s, p, d = streams[lang]
                take = (cursor[lang] + np.arange(where.size)) % s.size
                cursor[lang] += where.size
                shard_ids[where], positions[where] = s[take], p[take]
                durations[where] = d[take]
            batches = self._pack_window(
                np.concatenate([carry[0], shard_ids]),
                np.concatenate([carry[1], positions]),
                np.concatenate([carry[2], durations]),
            )
            # The last (least full) batch joins the next window.
            carry = batches.pop()
            yield [batches[i] for i in rng.permutation(len(batches))]

    def _ordered_windows(self, streams):
        """Evaluation windows: every clip once, in language order.

        Arguments
        ---------
        streams : dict
            Language -> ``(shard_ids, positions, durations)`` arrays of the
            slot's clips.

        Yields
        ------
        list of tuple
            The batches of each consecutive ``sort_window`` clips, each
            ``(shard_ids, positions, durations)`` of
            :class:`numpy.ndarray`.
        """
        s = np.concatenate([streams[lang][0] for lang in sorted(streams)])
        p = np.concatenate([streams[lang][1] for lang in sorted(streams)])
        d = np.concatenate([streams[lang][2] for lang in sorted(streams)])
        for start in range(0, s.size, self.sort_window):
            window = slice(start, start + self.sort_window)
            yield self._pack_window(s[window], p[window], d[window])

    def planned_batches(self, epoch, slot):
        """The clips ``(shard, position)`` of every batch a slot yields.

        Arguments
        ---------
        epoch : int
            Epoch.
        slot : int
            ``rank * num_workers + worker``.

        Returns
        -------
        list of list of tuple
            One list of ``(shard_id, position)`` per batch.
        """
        batches = self._slot_batches(epoch, slot)
        if self.training:
            count = self.batches_per_slot(epoch)
            batches = (b for _, b in zip(range(count), batches))
        return [list(zip(b[0].tolist(), b[1].tolist())) for b in batches]

    # -- reading (workers) ---------------------------------------------------

    def __iter__(self):
        """Reads and yields this worker's batches of the published epoch.

        The worker takes its slot (shifted after a resume so the
        DataLoader's round-robin keeps the rank's batch order), skips the
        batches already seen and, in training, stops at the epoch's batch
        count. A batch whose clips were all skipped as corrupt repeats the
        previous one.

        Yields
        ------
        PaddedBatch
            One batch of sample dicts (``id``, ``sentence``, ``lang``,
            ``duration``, ``features`` and the ``extra_items`` keys).
        """
        info = torch.utils.data.get_worker_info()
        workers = info.num_workers if info is not None else 1
        worker = info.id if info is not None else 0
        if workers != max(1, self.num_workers):
            raise ValueError(
                f"ShardStream was planned for num_workers={self.num_workers}"
                f" but the DataLoader runs {workers}: pass the same value"
            )
        epoch, skip, count = (int(v) for v in self.shared.tolist())
        # Batch i of a rank's epoch belongs to slot i % workers, and the
        # DataLoader takes batches from workers 0, 1, ... in turn. After
        # resuming at batch `skip`, worker w therefore plays the slot of
        # batch skip + w, and skips that slot's batches before `skip`.
        role = (skip + worker) % workers
        slot = self.rank * workers + role
        own_skip = max(0, -(-(skip - role) // workers))
        readers = {}
        previous = None
        number = 0
        try:
            for window in self._slot_windows(epoch, slot):
                todo = []
                for batch in window:
                    if self.training and number == count:
                        break
                    if number >= own_skip:
                        todo.append(batch)
                    number += 1
                samples = self._read_window(todo, readers)
                for batch in todo:
                    refs = zip(batch[0].tolist(), batch[1].tolist())
                    items = [samples[r] for r in refs if r in samples]
                    if not items:
                        if previous is None:
                            raise ShardError(
                                f"{self.folder}: every clip of the first "
                                "batch of a worker is corrupt"
                            )
                        logger.warning("batch left empty: repeating the last")
                    else:
                        previous = PaddedBatch(items)
                    yield previous
                if self.training and number == count:
                    return
        finally:
            for reader in readers.values():
                reader.close()

    def _read_window(self, batches, readers):
        """The window's clips, read in (shard, position) order.

        Reading in file order keeps the access sequential within a shard
        whatever order the duration sort put the clips in. ``readers`` keeps
        the open shards of the previous window; the others are closed.
        """
        refs = sorted(
            {r for b in batches for r in zip(b[0].tolist(), b[1].tolist())}
        )
        used = {shard for shard, _ in refs}
        for shard in set(readers) - used:
            readers.pop(shard).close()
        samples = {}
        for shard, position in refs:
            if shard not in readers:
                readers[shard] = ShardReader(self.paths[shard])
            reader = readers[shard]
            try:
                sample = reader.read(position)
                expected = self.durations[shard][position]
                if abs(sample["duration"] - expected) > 1e-3:
                    raise ShardError(
                        f"{reader.path}: sample {position:06d}: duration "
                        f"{sample['duration']:.3f} s, index says "
                        f"{expected:.3f} s"
                    )
            except ShardError as error:
                if self.on_error == "raise":
                    raise
                self.skipped += 1
                logger.warning(
                    "skipped (%d in this worker so far): %s",
                    self.skipped,
                    error,
                )
                continue
            samples[(shard, position)] = self._to_item(sample)
        return samples

    def _to_item(self, sample):
        """Turns a read sample into a batch item.

        Computes features from the waveform if the shard stores audio
        only, drops the waveform and sample count, and adds
        ``extra_items``.

        Arguments
        ---------
        sample : dict
            A sample from :meth:`ShardReader.read`; modified in place.

        Returns
        -------
        dict
            The same dict, ready for ``PaddedBatch``.
        """
        if "features" not in sample:
            with torch.no_grad():
                sample["features"] = self.features(sample["waveform"])
        sample.pop("waveform", None)
        sample.pop("num_samples", None)
        if self.extra_items is not None:
            sample.update(self.extra_items(sample))
        return sample


@register_checkpoint_hooks
class StreamLoader(torch.utils.data.DataLoader):
    """A DataLoader over a :class:`ShardStream` that checkpoints its place.

    SpeechBrain's ``SaveableDataLoader`` cannot resume an
    ``IterableDataset``; this one saves the epoch and the batches yielded
    and, on recovery inside an epoch, tells the stream to skip them.

    Arguments
    ---------
    stream : ShardStream
        The dataset; ``num_workers`` must equal ``stream.num_workers``.
    **kwargs
        DataLoader options (``num_workers``, ``pin_memory``, ...);
        ``batch_size`` is None: the stream yields whole batches.
    """

    def __init__(self, stream, **kwargs):
        kwargs.setdefault("num_workers", stream.num_workers)
        if kwargs["num_workers"] != stream.num_workers:
            raise ValueError(
                f"num_workers={kwargs['num_workers']} but the stream was "
                f"planned for {stream.num_workers}"
            )
        super().__init__(stream, batch_size=None, **kwargs)
        self._iterator_ref = None
        self._skipped = 0

    def __iter__(self):
        """Starts an epoch's iteration, taking the stream's resume skip.

        Returns
        -------
        iterator
            The DataLoader iterator, kept to count the batches yielded.
        """
        self._skipped = self.dataset.start_iteration()
        self._iterator_ref = super().__iter__()
        return self._iterator_ref

    def batches_done(self):
        """Batches of the current epoch this rank has yielded.

        Returns
        -------
        int
            Batches skipped on resume plus batches yielded since; 0 before
            iteration starts.
        """
        if self._iterator_ref is None:
            return 0
        return self._skipped + self._iterator_ref._num_yielded

    @mark_as_saver
    def _save(self, path):
        """Checkpoints the epoch, the batches done and the slot count.

        Arguments
        ---------
        path : str or Path
            JSON file to write.
        """
        state = {
            "epoch": self.dataset.epoch,
            "batches": self.batches_done(),
            "num_slots": self.dataset.num_slots,
        }
        Path(path).write_text(json.dumps(state), encoding="utf-8")

    @mark_as_loader
    def _recover(self, path, end_of_epoch):
        """Tells the stream to resume inside the saved epoch.

        Raises :class:`ShardError` if the number of slots (ranks x
        workers) changed, since the epoch's plan would differ.

        Arguments
        ---------
        path : str or Path
            JSON file written by :meth:`_save`.
        end_of_epoch : bool
            True for an end-of-epoch checkpoint: nothing to resume.
        """
        if end_of_epoch:
            return
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        if state["num_slots"] != self.dataset.num_slots:
            raise ShardError(
                f"{path}: saved with {state['num_slots']} slots (ranks x "
                f"workers), resumed with {self.dataset.num_slots}: the "
                "epoch's batches would differ; resume with the same setup"
            )
        self.dataset.resume(state["epoch"], state["batches"])


def stream_batches_seen(stream, epoch):
    """Every batch of ``epoch`` as clip ids, per rank (for checks).

    Needs the shards' sidecars (ids); all slots are planned here.

    Arguments
    ---------
    stream : ShardStream
        The stream whose plan is listed.
    epoch : int
        The epoch to plan.

    Returns
    -------
    list of list
        For each slot, its batches as lists of clip ids.
    """
    ids = {}
    for shard, path in enumerate(stream.paths):
        record = json.loads(path.with_suffix(".json").read_text("utf-8"))
        ids[shard] = record["ids"]
    return [
        [
            [ids[s][p] for s, p in batch]
            for batch in stream.planned_batches(epoch, slot)
        ]
        for slot in range(stream.num_slots)
    ]


__all__ = [
    "ShardStream",
    "StreamLoader",
    "language_shares",
    "stream_batches_seen",
]
