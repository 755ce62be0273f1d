#!/usr/bin/env python3
"""Reads audiotagger's results from Python (PyGObject): bus messages, or buffer metadata.

    GST_PLUGIN_PATH=target/release python3 examples/read_messages.py FILE
    GST_PLUGIN_PATH=target/release python3 examples/read_messages.py --meta FILE

The first form reads the `audiotagger` element messages from the bus; `--meta` reads the same
fields from the AudioTaggerMeta on the buffers that reach an appsink. Needs Debian's python3-gi,
python3-gst-1.0 and gir1.2-gstreamer-1.0 (scripts/setup.sh installs them): run it with the system
python3, which is where those packages live.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def describe(s: Gst.Structure) -> str:
    start = s.get_value("timestamp") / Gst.SECOND
    # Lists arrive as Gst.ValueArray, which indexes like a list (python3-gst-1.0 overrides).
    labels, scores = s.get_value("labels"), s.get_value("scores")
    tags = ", ".join(f"{labels[i]} {scores[i]:.2f}" for i in range(len(labels)))
    return f"{start:8.2f} s  {tags}"


def from_messages(path: str) -> int:
    pipeline = Gst.parse_launch(
        "filesrc name=src ! decodebin ! audioconvert ! audioresample ! audiotagger ! fakesink sync=false")
    pipeline.get_by_name("src").set_property("location", path)
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    status = 0
    while True:
        msg = bus.timed_pop_filtered(Gst.CLOCK_TIME_NONE,
                                     Gst.MessageType.ELEMENT | Gst.MessageType.ERROR | Gst.MessageType.EOS)
        if msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            print(f"error: {err.message}", file=sys.stderr)
            status = 1
            break
        if msg.type == Gst.MessageType.EOS:
            break
        s = msg.get_structure()
        if s is not None and s.get_name() == "audiotagger":
            print(describe(s))
    pipeline.set_state(Gst.State.NULL)
    return status


def from_meta(path: str) -> int:
    # mode=blocking: each buffer carries the results of the windows it completed. In the
    # default mode a file's results ride on later buffers, and the last ones, with no buffer
    # after them, come only as messages.
    pipeline = Gst.parse_launch(
        "filesrc name=src ! decodebin ! audioconvert ! audiotagger mode=blocking post-messages=false ! "
        "appsink name=sink sync=false")
    pipeline.get_by_name("src").set_property("location", path)
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    while (sample := sink.emit("pull-sample")) is not None:
        meta = sample.get_buffer().get_custom_meta("AudioTaggerMeta")
        if meta is not None:
            print(describe(meta.get_structure()))
    pipeline.set_state(Gst.State.NULL)
    return 0


def main() -> int:
    args = sys.argv[1:]
    meta = "--meta" in args
    args = [a for a in args if a != "--meta"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    Gst.init(None)
    return from_meta(args[0]) if meta else from_messages(args[0])


if __name__ == "__main__":
    sys.exit(main())
