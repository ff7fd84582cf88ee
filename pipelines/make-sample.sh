#!/bin/sh
# make-sample.sh -- generates the demo's sample media from real tools.
#
#   sh pipelines/make-sample.sh [OUTDIR]        (default: build/sample)
#
# Six segments of 5 s, each about one topic (a class of the bundled model
# models/scenes.safetensors).  Each segment shows one Tux Paint stamp
# (package tuxpaint-stamps-default) taken from the model's HELD-OUT test
# split (models/stamps.py: the picture, its caption and the kal16 voice never
# appear in training), so the demo does not replay training data:
#   - video: the stamp on white, 320x240 at 15 fps (pngdec ! imagefreeze !
#     compositor ! pngenc makes one frame per segment; multifilesrc reads
#     it 75 times), H.264 (x264enc);
#   - audio: the stamp's English caption spoken twice by flite (voice kal16,
#     16 kHz) over light white noise (about 20 dB SNR), Vorbis;
#   - subtitles: the caption as an SRT cue on SOME segments only (sparse
#     subtitles, like a real broadcast), muxed as a text track.
# All three are muxed into OUTDIR/news.mkv:
#
#   gst-launch-1.0 matroskamux name=mux ! filesink location=news.mkv \
#     multifilesrc location=video%d.png stop-index=449 caps=image/png,framerate=15/1 ! \
#       pngdec ! videoconvert ! video/x-raw,format=I420 ! x264enc ! h264parse ! queue ! mux. \
#     filesrc location=news.wav ! wavparse ! audioconvert ! vorbisenc ! queue ! mux. \
#     filesrc location=news.srt ! subparse ! queue ! mux.
#
# Beside it: news.wav (the audio, 16 kHz mono S16LE), news.srt (the
# subtitles) and segments.tsv (start, end, label, subtitled, picture,
# caption: the ground truth other pipelines and tests compare with).
# Deterministic: the same stamps, captions, voice and noise seed every time
# (the MKV's container UIDs and date differ, its contents do not).
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-build/sample}
PYTHON=${PYTHON:-/usr/bin/python3}
STAMPS=/usr/share/tuxpaint/stamps
SEG=5          # seconds per segment
FPS=15

# label | picture (under $STAMPS) | subtitled (1/0).  All from the test split
# of models/stamps.py (checked by tests/pipelines/test-sample-split.py).
ITEMS="animals|animals/birds/crow.png|1
food|food/fruit/Strawberry2.png|0
vehicles|vehicles/locomotive/cartoon/toy_train.png|1
space|space/moon/moon_full.png|1
plants|plants/flowers/red-gazania.png|0
household|household/tools/hammer.png|1"

for tool in flite gst-launch-1.0 "$PYTHON"; do
  command -v "$tool" >/dev/null || { echo "make-sample: $tool not found (run sh tests/setup.sh)" >&2; exit 1; }
done
[ -d "$STAMPS" ] || { echo "make-sample: $STAMPS missing (apt-get install tuxpaint-stamps-default)" >&2; exit 1; }

mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# 1. speech: each caption spoken by flite, voice kal16 (16 kHz native)
i=0
echo "$ITEMS" | while IFS='|' read -r label pic sub; do
  i=$((i + 1))
  caption=$(head -n 1 "$STAMPS/${pic%.png}.txt" | tr -d '\r')
  printf '%s|%s|%s|%s\n' "$label" "$pic" "$sub" "$caption" >> "$TMP/items"
  flite -voice kal16 -t "$caption" -o "$TMP/speech$i.wav"
done

# 2. audio track, subtitles, ground truth and stamp placement (Python stdlib
#    only: wave + a seeded random)
"$PYTHON" - "$TMP" "$OUT" "$STAMPS" "$SEG" <<'EOF'
import array, os, random, struct, sys, wave

tmp, out, stamps, seg = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
RATE = 16000
items = [l.rstrip("\n").split("|", 3) for l in open(os.path.join(tmp, "items"), encoding="utf-8")]
rng = random.Random(20240601)

def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getsampwidth() == 2 and w.getnchannels() == 1, path
        a = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        a.byteswap()
    return [x / 32768.0 for x in a]

def rms(x):
    return (sum(v * v for v in x) / max(len(x), 1)) ** 0.5

n_seg = seg * RATE
mix = [0.0] * (n_seg * len(items))
for k, it in enumerate(items):
    sp = read_wav(os.path.join(tmp, "speech%d.wav" % (k + 1)))
    g = 0.1 / (rms(sp) + 1e-9)                 # speech at RMS 0.1
    for start in (0.4, 2.8):                   # said twice per segment
        o = k * n_seg + int(start * RATE)
        for j, v in enumerate(sp[: n_seg - int(start * RATE)]):
            mix[o + j] += g * v
pcm = array.array("h", (max(-32768, min(32767, int(round((v + rng.gauss(0, 0.01)) * 32767))))
                        for v in mix))
if sys.byteorder == "big":
    pcm.byteswap()
with wave.open(os.path.join(out, "news.wav"), "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(RATE)
    w.writeframes(pcm.tobytes())

def srt_time(t):
    ms = int(round(t * 1000))
    return "%02d:%02d:%02d,%03d" % (ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000)

cues, truth, place = [], ["# start\tend\tlabel\tsubtitled\tpicture\tcaption"], []
for k, (label, pic, sub, caption) in enumerate(items):
    t0, t1 = k * seg, (k + 1) * seg
    truth.append("%d\t%d\t%s\t%s\t%s\t%s" % (t0, t1, label, sub, pic, caption))
    if sub == "1":
        cues.append("%d\n%s --> %s\n%s\n" % (len(cues) + 1, srt_time(t0 + 0.2),
                                              srt_time(t1 - 0.2), caption))
    # the stamp fitted into a 200x200 box, centred on the 320x240 frame
    with open(os.path.join(stamps, pic), "rb") as f:
        head = f.read(24)
    pw, ph = struct.unpack(">II", head[16:24])
    s = min(200.0 / pw, 200.0 / ph)
    w, h = max(1, int(round(pw * s))), max(1, int(round(ph * s)))
    place.append("%d %d %d %d" % ((320 - w) // 2, (240 - h) // 2, w, h))
with open(os.path.join(out, "news.srt"), "w", encoding="utf-8") as f:
    f.write("\n".join(cues))
with open(os.path.join(out, "segments.tsv"), "w", encoding="utf-8") as f:
    f.write("\n".join(truth) + "\n")
with open(os.path.join(tmp, "place"), "w") as f:
    f.write("\n".join(place) + "\n")
EOF

# 3. one frame per segment (the stamp on white, compositor does the alpha
#    blending and scaling), then the frames as a 15 fps video (multifilesrc)
#    muxed with the audio and the subtitles
i=0
while IFS='|' read -r label pic sub caption; do
  i=$((i + 1))
  set -- $(sed -n "${i}p" "$TMP/place")
  gst-launch-1.0 -q filesrc location="$STAMPS/$pic" ! pngdec ! imagefreeze num-buffers=1 ! \
    compositor background=white \
      sink_0::xpos=$1 sink_0::ypos=$2 sink_0::width=$3 sink_0::height=$4 ! \
    video/x-raw,width=320,height=240 ! videoconvert ! video/x-raw,format=RGB ! \
    pngenc ! filesink location="$TMP/frame$((i - 1)).png"
done < "$TMP/items"

# each segment's frame repeated SEG * FPS times (symlinks), read at FPS
n=$(wc -l < "$TMP/items")
k=0
i=0
while [ $i -lt "$n" ]; do
  j=0
  while [ $j -lt $((SEG * FPS)) ]; do
    ln -s "frame$i.png" "$TMP/video$k.png"
    j=$((j + 1)); k=$((k + 1))
  done
  i=$((i + 1))
done

gst-launch-1.0 -q matroskamux name=mux ! filesink location="$OUT/news.mkv" \
  multifilesrc location="$TMP/video%d.png" index=0 stop-index=$((k - 1)) \
    caps="image/png,framerate=(fraction)$FPS/1" ! pngdec ! videoconvert ! \
    video/x-raw,format=I420 ! \
    x264enc speed-preset=veryfast tune=stillimage key-int-max=$FPS ! h264parse ! queue ! mux.video_0 \
  filesrc location="$OUT/news.wav" ! wavparse ! audioconvert ! vorbisenc quality=0.5 ! queue ! mux.audio_0 \
  filesrc location="$OUT/news.srt" ! subparse ! queue ! mux.subtitle_0

echo "$OUT/news.mkv"
