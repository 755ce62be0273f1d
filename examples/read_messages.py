#!/usr/bin/env python3
"""Reads audiotagger's bus messages from Python (PyGObject).

    GST_PLUGIN_PATH=target/release python3 examples/read_messages.py FILE

Needs Debian's python3-gi and gir1.2-gstreamer-1.0 (scripts/setup.sh installs them); run it with
the system python3, which is where those packages live.
"""
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    Gst.init(None)
    pipeline = Gst.parse_launch(
        "filesrc name=src ! decodebin ! audioconvert ! audioresample ! audiotagger ! fakesink sync=false")
    pipeline.get_by_name("src").set_property("location", sys.argv[1])
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
        if s is None or s.get_name() != "audiotagger":
            continue
        start = s.get_value("timestamp") / Gst.SECOND
        # Lists arrive as Gst.ValueArray; their items are plain Python values.
        labels = [s.get_value("labels")[i] for i in range(len(s.get_value("labels")))]
        scores = [s.get_value("scores")[i] for i in range(len(s.get_value("scores")))]
        tags = ", ".join(f"{label} {score:.2f}" for label, score in zip(labels, scores))
        print(f"{start:8.2f} s  {tags}")
    pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    sys.exit(main())
