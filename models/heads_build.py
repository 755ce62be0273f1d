"""Augmented windows for the heads: events mixed into real backgrounds at many SNRs, gains and
offsets, look-alikes mixed the same way as negatives, and backgrounds alone; then the backbone's
features of every window."""
from __future__ import annotations

import numpy as np

import heads_data as hd


def pooled_views(raw: dict[str, np.ndarray], layout: str) -> dict[str, np.ndarray]:
    """The input views the heads train on, from the backbone's tensors by role: the last layer's
    positions for attention pooling (YAMNet's six time-frequency cells, a transformer's tokens),
    and mean + max over time of a middle and the last layer for fusion ([002] eq. 3; a
    convolution's frequency bands stay apart, a transformer's tokens are pooled together)."""
    last, middle = raw["last"], raw["middle"]
    n = last.shape[0]

    def mean_max_over_time(x: np.ndarray) -> np.ndarray:  # [n, C, T, F] -> [n, C*F]; [n, T, C] -> [n, C]
        if layout == "nctf":
            x = x.transpose(0, 2, 1, 3).reshape(n, x.shape[2], -1)
        return x.mean(axis=1) + x.max(axis=1)

    positions = last.reshape(n, last.shape[1], -1).transpose(0, 2, 1) if layout == "nctf" else last
    return {
        "scores": raw["scores"],
        "logits": raw["logits"],
        "embedding": raw["embedding"].astype(np.float16),
        "positions": positions.astype(np.float16),  # [n, positions, channels]
        "fusion": np.concatenate([mean_max_over_time(middle), mean_max_over_time(last)], axis=1).astype(np.float16),
    }


class Builder:
    """Makes windows and labels from clips, deterministic for a given seed and clip order."""

    def __init__(self, classes: dict[str, list[str]], backgrounds: list[np.ndarray], seed: int,
                 window: int = hd.WINDOW, hop: int = hd.TRAIN_HOP,
                 snr_range=(-5.0, 25.0), clean_fraction: float = 0.15):
        self.window, self.hop = window, hop
        # The event starts this far into a mixture (seconds): anywhere a short window can hold
        # it, and up to 2 s into a 3 s one, where a look around a candidate has it.
        self.lead = (0.1, max(0.9, window / hd.RATE - 1.0))
        self.classes = classes
        self.label_to_class = {lab: k for k, labs in enumerate(classes.values()) for lab in labs}
        self.backgrounds = backgrounds
        self.rng = np.random.default_rng(seed)
        self.snr_range = snr_range
        self.clean_fraction = clean_fraction

    def background(self, n: int) -> np.ndarray:
        bg = self.backgrounds[self.rng.integers(len(self.backgrounds))]
        idx = (self.rng.integers(bg.size) + np.arange(n)) % bg.size
        return bg[idx].astype(np.float32)

    def mixtures(self, clip: hd.Clip, copies: int):
        """(windows [m, window], labels [m, K] in {-1, 0, 1}, snr per window) for `copies`
        mixtures of `clip`, each in a random background at a random SNR, offset and level."""
        k = len(self.classes)
        target = self.label_to_class.get(clip.label)
        event = clip.audio
        wins, labs, snrs = [], [], []
        for _ in range(copies):
            lead = int(self.rng.uniform(*self.lead) * hd.RATE)
            n = max(lead + event.size + int(0.3 * hd.RATE), self.window + self.hop * 4)
            clean = self.rng.random() < self.clean_fraction
            snr = None if clean else float(self.rng.uniform(*self.snr_range))
            mixture, track = hd.mix(self.background(n), event, lead, snr)
            hd.scale_to_peak(mixture, track, peak_db=float(self.rng.uniform(-35.0, -1.0)))
            starts = hd.window_starts(n, self.hop, self.window)
            lab = np.zeros((len(starts), k), np.int8)
            if target is not None:
                lab[:, target] = hd.window_labels(track, mixture, starts, self.window)
            wins.append(np.stack([mixture[s: s + self.window] for s in starts]))
            labs.append(lab)
            snrs.append(np.full(len(starts), np.nan if snr is None else snr, np.float32))
        return np.concatenate(wins), np.concatenate(labs), np.concatenate(snrs)

    def alone(self, audio: np.ndarray):
        """A background's own windows, every other hop: negatives for every class."""
        if audio.size < self.window:
            audio = np.pad(audio, (0, self.window - audio.size))
        starts = hd.window_starts(audio.size, self.hop * 2, self.window)
        wins = np.stack([audio[s: s + self.window] for s in starts]).astype(np.float32)
        return wins, np.zeros((len(starts), len(self.classes)), np.int8), np.full(len(starts), np.nan, np.float32)


def copies_for(n_clips: int, per_label: int) -> int:
    """Mixtures per clip so that each label gets about `per_label` mixtures, 1 to 12 per clip."""
    return int(np.clip(round(per_label / max(n_clips, 1)), 1, 12))


def build_features(backbone: hd.Backbone, builder: Builder, events: list[hd.Clip],
                   backgrounds_alone: list[np.ndarray], per_label: int, log=print) -> dict[str, np.ndarray]:
    """Features, labels and SNRs of every window made from `events` (targets and look-alikes,
    each mixed `copies_for` times) and `backgrounds_alone`."""
    by_label: dict[str, int] = {}
    for c in events:
        by_label[c.label] = by_label.get(c.label, 0) + 1
    # Each source gives (windows, labels, snr) and the id its windows carry: an event's index
    # in `events`, or -1 - j for the j-th background alone.
    sources = [
        (i, lambda c=clip: builder.mixtures(c, copies_for(
            # Look-alikes are many labels: half as many mixtures each keeps the classes' share.
            by_label[c.label], per_label if c.label in builder.label_to_class else per_label // 2)))
        for i, clip in enumerate(events)
    ] + [(-1 - j, lambda a=audio: builder.alone(a)) for j, audio in enumerate(backgrounds_alone)]
    parts: list[dict[str, np.ndarray]] = []
    pending: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []

    def flush():
        views = pooled_views(backbone.features(np.concatenate([w for w, _ in pending])), backbone.layout)
        for key in ("labels", "snr", "clip"):
            views[key] = np.concatenate([p[key] for _, p in pending])
        parts.append(views)
        pending.clear()

    total = 0
    for source_id, make in sources:
        w, lab, snr = make()
        pending.append((w, {"labels": lab, "snr": snr, "clip": np.full(len(w), source_id, np.int32)}))
        total += len(w)
        if sum(len(x) for x, _ in pending) >= 1024:
            flush()
    if pending:
        flush()
    log(f"  {total} windows from {len(events)} clips and {len(backgrounds_alone)} backgrounds")
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
