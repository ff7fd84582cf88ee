#!/usr/bin/python3
"""mmrun.py -- runs a gst-launch style pipeline and reports its decisions.

    /usr/bin/python3 pipelines/mmrun.py [options] PIPELINE...

PIPELINE is exactly what you would give gst-launch-1.0 (it goes through
Gst.parse_launch).  Every `mm-classification` element message that mmdecode
posts on the bus (fields pts, duration, running-time, stream-time, labels,
scores, present) becomes one decision, printed as a timeline line

    0:00:05.0  food        0.87  image+audio         (truth: food)

(final pocketsphinx hypotheses, when the pipeline has a recogniser, are
printed too, as "[transcript] ..."), and optionally written as one JSON
object per line (--jsonl FILE):

    {"pts": 5000000000, "duration": 1000000000, "running-time": ...,
     "stream-time": ..., "time": 5.0, "label": "food", "score": 0.87,
     "labels": ["food"], "scores": [0.87], "present": ["image", "audio"]}

(times in ns, null when unknown; "time" is the stream time in seconds).

Options
  --duration S   stop after S seconds: a live pipeline gets EOS after S
                 seconds of wall-clock time, a file pipeline is seeked to stop
                 at S seconds of stream time (both end with a clean EOS)
  --jsonl FILE   write the decisions as JSON lines to FILE ("-": stdout)
  --truth TSV    segments.tsv from make-sample.sh: print the true topic of
                 each decision and the share of decisions that match it
  --stats FILE   write a JSON summary (decisions, labels, latency, eos...)
  --quiet        no timeline on stdout
  --timeout S    give up (exit 2) after S seconds of wall-clock time (300),
                 counted from the start: preroll included
  --clock-provider PORT
                 share this pipeline's clock (the system clock) on UDP PORT
                 with GstNetTimeProvider, for the pipelines of other
                 processes or hosts (--net-clock)
  --net-clock HOST:PORT
                 run on the clock another mmrun shares (GstNetClientClock,
                 synchronised before the pipeline starts; exit 1 if it
                 cannot be within 10 s)
  --base-time NS|now
                 the pipeline's base time on that clock, instead of the
                 moment it goes to PLAYING.  "now" (with --clock-provider)
                 takes the clock's current time and prints
                 "mmrun: base-time NS" on stderr: give that NS to the other
                 processes.  With the same clock and base time, live
                 pipelines in several processes give the same running time
                 to the same moment, so embeddings sent between them (GDP,
                 RTP) pair by their timestamps as in one process
  --linger S     after EOS, keep the pipeline playing S more seconds before
                 stopping it.  For senders into srtsink: srtsink closes its
                 SRT socket at once (no SRT linger), which drops whatever the
                 receiver has not acknowledged yet, i.e. the end of a stream;
                 lingering past the SRT latency (125 ms by default) lets the
                 tail arrive.  The receiver's srtsrc sees the close as EOS
  --tracks FILE  run nothing; print the tracks of the media FILE as shell
                 assignments (CONTAINER=the file's format, e.g. video/x-matroska
                 or audio/x-wav, N_VIDEO=n, N_AUDIO=n, N_TEXT=n: how many
                 tracks of each kind) for the scripts to eval; exit 1
                 with the reason when FILE cannot be read as media

Latency (live pipelines): when a decision is posted, the pipeline's running
time minus the decision's running-time, i.e. how long after the start of
the media it describes the decision was known.  Reported as mean and max.

A file pipeline that cannot preroll (a branch waiting for a track the
file does not have) is stopped by --timeout like any other; the message
then says it was still prerolling.

Exit status: 0 after EOS (or the --duration stop, where a live pipeline is
stopped 3 s after the EOS it was sent if the EOS cannot get through, e.g. a
caption file paced by clocksync), 1 on a pipeline error, 2 on timeout.
"""
import argparse
import json
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

NONE = Gst.CLOCK_TIME_NONE


def ns_or_none(v):
    return None if v is None or v == NONE or v < 0 else int(v)


def fmt_time(ns):
    if ns is None:
        return "       ?  "
    s = ns / 1e9
    return "%d:%02d:%04.1f" % (s // 3600, s // 60 % 60, s % 60)


def read_truth(path):
    """segments.tsv -> [(start_s, end_s, label)]."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            p = line.rstrip("\n").split("\t")
            out.append((float(p[0]), float(p[1]), p[2]))
    return out


def truth_at(truth, t):
    for a, b, label in truth:
        if a <= t < b:
            return label
    return None


def decision_from_structure(s):
    """mm-classification structure -> dict (JSON-ready)."""
    labels = list(s.get_value("labels")) if s.has_field("labels") else []
    scores = [float(x) for x in s.get_value("scores")] if s.has_field("scores") else []
    present = list(s.get_value("present")) if s.has_field("present") else []
    d = {}
    for f in ("pts", "duration", "running-time", "stream-time"):
        d[f] = ns_or_none(s.get_value(f)) if s.has_field(f) else None
    t = d["stream-time"] if d["stream-time"] is not None else d["pts"]
    d["time"] = None if t is None else round(t / 1e9, 6)
    d["label"] = labels[0] if labels else None
    d["score"] = scores[0] if scores else None
    d["labels"], d["scores"], d["present"] = labels, scores, present
    return d


class Runner:
    def __init__(self, desc, args):
        self.args = args
        self.pipeline = Gst.parse_launch(desc)
        self.loop = GLib.MainLoop()
        self.decisions = []
        self.transcripts = []    # pocketsphinx utterances, when there is one
        self.error = None
        self.eos = False
        self.timed_out = False
        self.prerolling = False         # waiting for PAUSED in the main loop
        self.preroll_timed_out = False
        self.stopped = False     # live run stopped without a full EOS
        self.live = False
        self.lock = threading.Lock()
        self.reporting = True    # decisions are printed as they come
        self.truth = read_truth(args.truth) if args.truth else None
        self.jsonl = None
        if args.jsonl == "-":
            self.jsonl = sys.stdout
        elif args.jsonl:
            self.jsonl = open(args.jsonl, "w", encoding="utf-8")
        self.clock_provider = None
        self.setup_clock()
        bus = self.pipeline.get_bus()
        # The sync handler runs in the thread that posts the message, so the
        # latency is measured when mmdecode decided, not when we got to it.
        bus.enable_sync_message_emission()
        bus.connect("sync-message::element", self.on_sync_element)
        bus.add_signal_watch()
        bus.connect("message", self.on_message)

    # -- shared clock (live pipelines across processes) ---------------------
    def setup_clock(self):
        a = self.args
        clock = None
        if a.clock_provider is not None:
            gi.require_version("GstNet", "1.0")
            from gi.repository import GstNet
            clock = Gst.SystemClock.obtain()
            self.clock_provider = GstNet.NetTimeProvider.new(clock, None, a.clock_provider)
            if self.clock_provider is None:
                raise SystemExit("mmrun: cannot share the clock on UDP port %d" % a.clock_provider)
        elif a.net_clock:
            gi.require_version("GstNet", "1.0")
            from gi.repository import GstNet
            host, _, port = a.net_clock.rpartition(":")
            clock = GstNet.NetClientClock.new("mmrun-net-clock", host, int(port), 0)
            if not clock.wait_for_sync(10 * Gst.SECOND):
                raise SystemExit("mmrun: no clock from %s within 10 s (is an mmrun "
                                 "--clock-provider running there?)" % a.net_clock)
        if clock is not None:
            self.pipeline.use_clock(clock)
        if a.base_time is not None:
            if clock is None:
                raise SystemExit("mmrun: --base-time needs --clock-provider or --net-clock")
            if a.base_time == "now":
                base = clock.get_time()
                print("mmrun: base-time %d" % base, file=sys.stderr, flush=True)
            else:
                base = int(a.base_time)
            self.pipeline.set_start_time(NONE)
            self.pipeline.set_base_time(base)

    # -- bus ---------------------------------------------------------------
    def on_sync_element(self, bus, msg):
        s = msg.get_structure()
        if s is not None and s.get_name() in ("pocketsphinx", "mm-transcript"):
            self.on_transcript(s)
            return
        if s is None or s.get_name() != "mm-classification":
            return
        d = decision_from_structure(s)
        clock = self.pipeline.get_clock()
        if self.live and clock is not None and d["running-time"] is not None:
            now = clock.get_time() - self.pipeline.get_base_time()
            d["latency"] = round((now - d["running-time"]) / 1e9, 6)
        with self.lock:
            self.decisions.append(d)
            if self.reporting:
                self.report(d)

    def on_transcript(self, s):
        """pocketsphinx's final hypotheses, or mmtranscribe's timed
        utterances: what textenc is about to get."""
        if s.get_name() == "mm-transcript":
            text = s.get_value("text")
        elif not s.has_field("final") or not s.get_value("final"):
            return
        else:
            text = s.get_value("hypothesis") if s.has_field("hypothesis") else ""
        with self.lock:
            self.transcripts.append(text)
            if not self.args.quiet:
                print("           [transcript] %s" % text, flush=True)

    def on_flush_stop(self, pad, info):
        # decisions made before a flushing seek (the preroll before the
        # --duration seek) are not part of the run
        if info.get_event().type == Gst.EventType.FLUSH_STOP:
            with self.lock:
                self.decisions = []
        return Gst.PadProbeReturn.OK

    def elements(self):
        it = self.pipeline.iterate_recurse()
        out = []
        while True:
            res, e = it.next()
            if res == Gst.IteratorResult.OK:
                out.append(e)
            elif res == Gst.IteratorResult.RESYNC:
                it.resync()
                out = []
            else:
                return out

    def limit_file(self):
        """Stops a non-live pipeline at --duration: a flushing seek with a
        stop position, sent to the pipeline (i.e. its sinks) or, when some
        sink refuses it (a muxer), to the demuxers."""
        def seek_event():
            return Gst.Event.new_seek(1.0, Gst.Format.TIME,
                                      Gst.SeekFlags.FLUSH | Gst.SeekFlags.ACCURATE,
                                      Gst.SeekType.SET, 0, Gst.SeekType.SET,
                                      int(self.args.duration * Gst.SECOND))
        if self.pipeline.send_event(seek_event()):
            return True
        for e in self.elements():
            f = e.get_factory()
            if f is not None and "Demux" in (f.get_klass() or "") and e.send_event(seek_event()):
                return True
        return False

    def report(self, d):
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(d, sort_keys=True) + "\n")
            self.jsonl.flush()
        if self.args.quiet:
            return
        tt = ""
        if self.truth is not None and d["time"] is not None:
            tt = "  (truth: %s)" % (truth_at(self.truth, d["time"]) or "-")
        lat = "  latency %.2f s" % d["latency"] if "latency" in d else ""
        print("%s  %-11s %5s  %-17s%s%s" % (
            fmt_time(d["stream-time"] if d["stream-time"] is not None else d["pts"]),
            d["label"] if d["label"] is not None else "(none)",
            "%.2f" % d["score"] if d["score"] is not None else "-",
            "+".join(d["present"]) or "-", tt, lat), flush=True)

    def on_message(self, bus, msg):
        t = msg.type
        if t == Gst.MessageType.ASYNC_DONE:
            if self.prerolling and msg.src == self.pipeline:
                self.loop.quit()
        elif t == Gst.MessageType.EOS:
            if not self.eos and self.args.linger > 0:
                GLib.timeout_add(int(self.args.linger * 1000), self.loop.quit)
            elif not self.eos:
                self.loop.quit()
            self.eos = True
        elif t == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            self.error = "%s: %s\n%s" % (msg.src.get_path_string(), err.message, dbg or "")
            self.loop.quit()
        elif t == Gst.MessageType.WARNING:
            w, dbg = msg.parse_warning()
            print("WARNING from %s: %s" % (msg.src.get_path_string(), w.message), file=sys.stderr)
        return True

    # -- run ---------------------------------------------------------------
    def stop_live(self):
        print("mmrun: %.1f s elapsed, sending EOS" % self.args.duration, file=sys.stderr,
              flush=True)
        # EOS to the live sources only: a source that is not live may be
        # blocked downstream (captions paced by clocksync) and sending it an
        # event would block until its next buffer is due.  The others end
        # when the stream they feed ends (the drive pad's EOS ends mmfuse).
        live = []
        it = self.pipeline.iterate_sources()
        while True:
            res, e = it.next()
            if res != Gst.IteratorResult.OK:
                break
            if e.find_property("is-live") is not None and e.get_property("is-live"):
                live.append(e)
        targets = live or [self.pipeline]
        threading.Thread(target=lambda: [t.send_event(Gst.Event.new_eos()) for t in targets],
                         daemon=True).start()
        # should the EOS not get through, do not wait for it forever
        GLib.timeout_add(3000, self.stop_anyway)
        return False

    def stop_anyway(self):
        if not self.eos:
            print("mmrun: no EOS 3 s after the stop, stopping the pipeline", file=sys.stderr,
                  flush=True)
            self.stopped = True
            self.loop.quit()
        return False

    def on_timeout(self):
        self.timed_out = True
        self.loop.quit()
        return False

    def remaining(self):
        """Seconds left before --timeout, counted from the start."""
        return max(0.0, self.deadline - time.monotonic())

    def run(self):
        self.deadline = time.monotonic() + self.args.timeout
        if not self.args.quiet:
            print("%-10s  %-11s %5s  %-17s" % ("time", "label", "conf", "present"), flush=True)
        ret = self.pipeline.set_state(Gst.State.PAUSED)
        if ret == Gst.StateChangeReturn.FAILURE:
            return self.fail_early()
        self.live = ret == Gst.StateChangeReturn.NO_PREROLL
        if not self.live:
            if self.args.duration:
                # hold the reports until the seek is done: the preroll's
                # decisions are dropped by the flush
                self.reporting = False
                for e in self.elements():
                    f = e.get_factory()
                    if f is not None and f.get_name() == "mmdecode":
                        e.get_static_pad("sink").add_probe(
                            Gst.PadProbeType.EVENT_FLUSH, self.on_flush_stop)
            if ret == Gst.StateChangeReturn.ASYNC and not self.wait_preroll():
                wall = self.args.timeout - self.remaining()
                self.pipeline.set_state(Gst.State.NULL)
                return self.finish(wall)
            if self.args.duration and not self.limit_file():
                print("mmrun: seek to stop at %.1f s refused" % self.args.duration,
                      file=sys.stderr)
            with self.lock:
                if not self.reporting:
                    self.reporting = True
                    for d in self.decisions:
                        self.report(d)
        elif self.args.duration:
            GLib.timeout_add(int(self.args.duration * 1000), self.stop_live)
        GLib.timeout_add(int(self.remaining() * 1000), self.on_timeout)
        t0 = time.monotonic()
        self.pipeline.set_state(Gst.State.PLAYING)
        self.loop.run()
        wall = time.monotonic() - t0
        self.pipeline.set_state(Gst.State.NULL)
        return self.finish(wall)

    def wait_preroll(self):
        """Runs the main loop until the pipeline has prerolled (True), or an
        error or the deadline (False): the --timeout counts from the start,
        and an error while prerolling (a demuxer that cannot link, a missing
        file) ends the wait at once."""
        self.prerolling = True
        tid = GLib.timeout_add(max(1, int(self.remaining() * 1000)), self.on_timeout)
        self.loop.run()
        self.prerolling = False
        if not self.timed_out:
            GLib.source_remove(tid)
        else:
            self.preroll_timed_out = True
        return not (self.timed_out or self.error or self.eos)

    def fail_early(self):
        # the error message, if any, is on the bus already
        bus = self.pipeline.get_bus()
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        if msg is not None:
            err, dbg = msg.parse_error()
            self.error = "%s: %s\n%s" % (msg.src.get_path_string(), err.message, dbg or "")
        else:
            self.error = "pipeline failed to start"
        self.pipeline.set_state(Gst.State.NULL)
        return self.finish(0.0)

    def finish(self, wall):
        with self.lock:
            decisions = list(self.decisions)
        lat = [d["latency"] for d in decisions if "latency" in d]
        stats = {"decisions": len(decisions), "eos": self.eos, "stopped": self.stopped,
                 "error": self.error,
                 "timed_out": self.timed_out, "live": self.live, "wall_seconds": round(wall, 3),
                 "labels": sorted({d["label"] for d in decisions if d["label"]}),
                 "present": sorted({m for d in decisions for m in d["present"]}),
                 "transcripts": list(self.transcripts)}
        if lat:
            stats["latency_mean"] = round(sum(lat) / len(lat), 4)
            stats["latency_max"] = round(max(lat), 4)
        if self.truth is not None:
            judged = [(d, truth_at(self.truth, d["time"])) for d in decisions
                      if d["time"] is not None and truth_at(self.truth, d["time"])]
            hits = sum(1 for d, t in judged if d["label"] == t)
            stats["agreement"] = round(hits / len(judged), 4) if judged else None
            per = {}
            for d, t in judged:
                per.setdefault(t, [0, 0])
                per[t][1] += 1
                per[t][0] += d["label"] == t
            stats["per_topic"] = {k: "%d/%d" % tuple(v) for k, v in per.items()}
        if self.args.stats:
            with open(self.args.stats, "w", encoding="utf-8") as f:
                json.dump(stats, f, indent=1, sort_keys=True)
        if self.jsonl is not None and self.jsonl is not sys.stdout:
            self.jsonl.close()
        out = sys.stderr if self.args.quiet else sys.stdout
        summary = "%d decisions in %.1f s" % (len(decisions), wall)
        if lat:
            summary += ", latency mean %.2f s max %.2f s" % (stats["latency_mean"],
                                                             stats["latency_max"])
        if self.truth is not None and stats["agreement"] is not None:
            summary += ", %.0f %% agree with the sample's topics" % (100 * stats["agreement"])
        print(summary, file=out)
        if self.error:
            print("ERROR: " + self.error, file=sys.stderr)
            return 1
        if self.timed_out:
            print("ERROR: timed out after %g s%s" % (
                self.args.timeout,
                ", still prerolling: some branch never got data (a track the input does not "
                "have?)" if self.preroll_timed_out else ""), file=sys.stderr)
            return 2
        return 0


def tracks(path, timeout=20):
    """The --tracks report: shell assignments naming the container and
    counting the video, audio and subtitle tracks of a media file."""
    import os
    gi.require_version("GstPbutils", "1.0")
    from gi.repository import GstPbutils
    if not os.path.isfile(path):
        print("mmrun: %s: not a file" % path, file=sys.stderr)
        return 1
    try:
        disc = GstPbutils.Discoverer.new(int(timeout * Gst.SECOND))
        info = disc.discover_uri(Gst.filename_to_uri(os.path.abspath(path)))
    except GLib.Error as e:
        print("mmrun: %s: cannot read it as media: %s" % (path, e.message), file=sys.stderr)
        return 1
    res = info.get_result()
    if res not in (GstPbutils.DiscovererResult.OK, GstPbutils.DiscovererResult.MISSING_PLUGINS):
        print("mmrun: %s: cannot read it as media (%s)" % (path, res.value_nick),
              file=sys.stderr)
        return 1
    top = info.get_stream_info()
    caps = top.get_caps() if top is not None else None
    # the file's format as typefind names it: video/x-matroska, audio/x-wav...
    container = caps.get_structure(0).get_name() if caps is not None else ""
    print("CONTAINER=%s" % container)
    print("N_VIDEO=%d" % len(info.get_video_streams()))
    print("N_AUDIO=%d" % len(info.get_audio_streams()))
    print("N_TEXT=%d" % len(info.get_subtitle_streams()))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=0)
    ap.add_argument("--jsonl")
    ap.add_argument("--truth")
    ap.add_argument("--stats")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--tracks", metavar="FILE")
    ap.add_argument("--linger", type=float, default=0, metavar="S")
    ap.add_argument("--clock-provider", type=int, metavar="PORT")
    ap.add_argument("--net-clock", metavar="HOST:PORT")
    ap.add_argument("--base-time", metavar="NS|now")
    ap.add_argument("pipeline", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.tracks:
        Gst.init(None)
        return tracks(args.tracks)
    if not args.pipeline:
        ap.error("no pipeline")
    Gst.init(None)
    try:
        runner = Runner(" ".join(args.pipeline), args)
    except GLib.Error as e:
        print("ERROR: could not build the pipeline: %s" % e.message, file=sys.stderr)
        return 1
    return runner.run()


if __name__ == "__main__":
    sys.exit(main())
