#!/usr/bin/env python3
"""Train heads on a frozen backbone's embeddings and write backbone + head as one ONNX model.

    .venv/bin/python models/train_heads.py                         # the shipped security head
    .venv/bin/python models/train_heads.py --data my_sounds/ --classes knock,doorbell \\
        --out models/my-head.onnx                                   # a head for your own sounds
    .venv/bin/python models/train_heads.py --backbone models/ced-tiny.onnx \\
        --kind fusion+scores --per-label 150 -o models/ced-tiny-heads.onnx  # the second look's heads

DATA holds one sub-folder of WAV files per label. `--classes` names the labels to detect
(`name=folder+folder` merges folders into one class); folders whose name starts with `bg_` are
backgrounds (events are mixed into them, and their own windows are negatives); every other
folder is a look-alike: mixed into backgrounds like the events, a negative for every class.
A `manifest.csv` (file,label,source,license) says which clips were cut from the same recording,
so that no recording is on both sides of the train/validation split.

The split is by source recording (`--val-fraction` of each label's recordings, chosen by a hash
of the recording's name and `--seed`), never by clip. Validation figures are per window, on
mixtures built from validation recordings only; `cargo bench --bench events` measures events.
Seeded and run in a fixed order: the same data, seed and machine give the same head.

Backbones: YAMNet (windows of 0.975 s every 0.24 s) and CED-Tiny (its descriptor's 3 s every
0.5 s), both 16 kHz like the training recordings; the head reads each one's own tensors
(`heads_data.backbone_tensors`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import heads_build as hb  # noqa: E402
import heads_data as hd  # noqa: E402
import heads_export as hx  # noqa: E402
import heads_model as hm  # noqa: E402

# The shipped head: what a security camera listens for. Sirens and alarm bells are one class.
SECURITY_CLASSES = "gunshot,glass=glass_breaking,scream,fireworks,siren=siren+alarm_phone,dog=dog_bark,baby_cry"
SHIPPED_KIND = "fusion"


def parse_classes(spec: str, labels: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, folders = item.partition("=")
        folders_list = [f.strip() for f in (folders or name).split("+")]
        missing = [f for f in folders_list if f not in labels]
        if missing:
            raise SystemExit(f"--classes: no folder named {', '.join(missing)} in the data "
                             f"(folders: {', '.join(sorted(labels))})")
        out[name.strip()] = folders_list
    if not out:
        raise SystemExit("--classes names no class")
    return out


def window_report(classes: list[str], probs: np.ndarray, labels: np.ndarray, snr: np.ndarray) -> dict:
    """Per class on validation windows: ROC AUC, and recall (per SNR band) at the threshold that
    1 in 1000 of the class's negative windows exceeds."""
    rep = {}
    for k, name in enumerate(classes):
        p, y = probs[:, k], labels[:, k]
        pos, neg = p[y == 1], p[y == 0]
        if not pos.size or not neg.size:
            continue
        order = np.argsort(np.concatenate([pos, neg]), kind="stable")
        ranks = np.empty(order.size)
        ranks[order] = np.arange(1, order.size + 1)
        auc = (ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size)
        thr = float(np.quantile(neg, 0.999))
        bands = {}
        for lo, hi, tag in ((-99, 2.5, "0dB"), (7.5, 12.5, "10dB"), (17.5, 99, "20dB")):
            sel = (y == 1) & (snr >= lo) & (snr < hi)
            if sel.any():
                bands[tag] = float((p[sel] > thr).mean())
        rep[name] = {"auc": float(auc), "threshold_1e-3": thr, "recall": float((pos > thr).mean()), **bands}
    return rep


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "train")
    ap.add_argument("--classes", default=None, help=f"default for ../shared/train: {SECURITY_CLASSES}")
    ap.add_argument("--backbone", type=Path, default=HERE / "yamnet.onnx",
                    help="yamnet.onnx or ced-tiny.onnx (models/convert_*.py make them)")
    ap.add_argument("-o", "--out", type=Path, default=HERE / "yamnet-heads.onnx")
    ap.add_argument("--kind", default=SHIPPED_KIND, choices=hm.KINDS)
    ap.add_argument("--compare", action="store_true", help="train and report every kind, export --kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.25)
    ap.add_argument("--per-label", type=int, default=400, help="mixtures per label (each clip 1-12 times)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--limit", type=int, default=0, help="at most this many clips per label (quick runs)")
    ap.add_argument("--no-debian", action="store_true", help="leave out Debian's recordings")
    ap.add_argument("--cache", type=Path, default=None, help="features cache (.npz), reused when present")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    started = time.time()
    log = lambda *a: print(*a, flush=True)  # noqa: E731

    if not args.data.is_dir():
        raise SystemExit(f"--data {args.data}: no such folder (one sub-folder of WAV files per label)")
    try:
        clips = hd.read_folder(args.data)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    labels = {c.label for c in clips}
    classes = parse_classes(args.classes or SECURITY_CLASSES, labels)
    if args.limit:
        kept: dict[str, int] = {}
        for c in list(clips):
            kept[c.label] = kept.get(c.label, 0) + 1
            if kept[c.label] > args.limit:
                clips.remove(c)
    train, val = hd.split(clips, args.val_fraction, args.seed)
    log(f"{len(clips)} clips of {len(labels)} labels; {len(train)} to train, {len(val)} to validate "
        f"({len({c.recording for c in val})} held-out recordings)")

    features = None
    if args.cache and args.cache.exists():
        with np.load(args.cache) as z:
            features = {k: z[k] for k in z.files}
        log(f"features from {args.cache}")
    else:
        for c in clips:
            c.audio = hd.load_audio(c.path)
        debian = [] if args.no_debian else hd.debian_clips()
        for c in debian:
            c.audio = hd.load_audio(c.path)
        is_bg = lambda c: c.label.startswith("bg_")  # noqa: E731
        train_bg = [c.audio for c in train if is_bg(c)] + [c.audio for c in debian if c.label != "alerts"]
        val_bg = [c.audio for c in val if is_bg(c)]
        if not train_bg:
            raise SystemExit(f"{args.data}: no backgrounds to mix events into: add a folder named bg_... "
                             "(room tone, street, speech: what your microphones hear)")
        if not val_bg:
            log("no background recording held out: validation mixes into the training backgrounds")
            val_bg = train_bg
        backbone = hd.Backbone(args.backbone, args.threads)
        features = {}
        # (name, clips, backgrounds to mix into, extra look-alikes, backgrounds used alone)
        for name, part, bgs, extra_neg, alone in (
            ("train", train, train_bg, [c for c in debian if c.label == "alerts"], train_bg),
            ("val", val, val_bg, [], [c.audio for c in val if is_bg(c)]),
        ):
            log(f"{name}: mixing and running the backbone")
            builder = hb.Builder(classes, bgs, args.seed + (name == "val"), backbone.window,
                                 backbone.hop)
            events = [c for c in part if not is_bg(c)] + extra_neg
            f = hb.build_features(backbone, builder, events, alone, args.per_label, log)
            features.update({f"{name}/{k}": v for k, v in f.items()})
        if args.cache:
            np.savez(args.cache, **features)
        log(f"features in {time.time() - started:.0f} s")

    part = lambda name: {k.split("/", 1)[1]: v for k, v in features.items() if k.startswith(name + "/")}  # noqa: E731
    tr, va = part("train"), part("val")
    names = list(classes)
    for k, name in enumerate(names):
        log(f"  {name}: {int((tr['labels'][:, k] == 1).sum())} positive training windows, "
            f"{int((va['labels'][:, k] == 1).sum())} validation")

    kinds = hm.KINDS if args.compare else (args.kind,)
    results, chosen = {}, None
    for kind in kinds:
        t0 = time.time()
        head = hm.train(kind, tr, tr["labels"], args.seed, epochs=args.epochs, l2=args.l2)
        temps = hm.calibrate(head, va, va["labels"])
        rep = window_report(names, hm.predict(head, va), va["labels"], va["snr"])
        results[kind] = {"train_s": round(time.time() - t0, 1), "classes": rep,
                         "temperatures": dict(zip(names, map(float, temps)))}
        log(f"{kind:<14} {time.time() - t0:5.1f} s  " + "  ".join(
            f"{n} AUC {r['auc']:.3f} R {r['recall']:.2f} ({r.get('0dB', 0):.2f}/{r.get('10dB', 0):.2f}/{r.get('20dB', 0):.2f})"
            for n, r in rep.items()))
        if kind == args.kind:
            chosen = head

    meta = {
        "kind": args.kind, "seed": args.seed, "classes": classes, "data": str(args.data),
        "val_fraction": args.val_fraction, "per_label": args.per_label, "epochs": args.epochs,
        "validation_recordings": sorted({c.recording for c in val}),
        "validation_files": sorted(str(c.path.relative_to(args.data)) for c in val),
        "licences": sorted({c.licence for c in clips if c.licence}),
        "validation": results[args.kind]["classes"],
        "temperatures": results[args.kind]["temperatures"],
    }
    hx.write_model(args.backbone, chosen, names, args.out, meta)
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB) in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
