#!/usr/bin/python3
"""video-sensor-model.py -- builds pipelines/video-sensor.safetensors, the
ILLUSTRATIVE model of pipelines/video-sensor.sh (video + a numeric sensor
log, fused).

    /usr/bin/python3 pipelines/video-sensor-model.py [OUT]

numpy only (models/export.py with state dicts, models/mmfile.py); no
training: the model is assembled from the bundled scenes model and a rule,
so what it does can be stated exactly.

- image: models/scenes.safetensors' image encoder, unchanged (64-d).
- numeric (modality "sensor"): two features, `rms_db` and `peak_db`, the
  audio level (dB) that pipelines/video-sensor.sh's first pass logs with
  GStreamer's `level`.  mean/std are not statistics of a training set but
  the points the rule turns on: -30 dB RMS and -16 dB peak, half-way
  between the sample's background noise (about -39 / -28 dB) and its speech
  (about -20 / -5 dB), with std 10 / 12 dB.  One linear layer gives
  s = ((rms + 30) / 10 + (peak + 16) / 12) / 2 (and a second output 0):
  s > 0 means "louder than the threshold".  A missing value (empty CSV
  field) counts as the threshold ("nan": "mean").
- fusion: concat of image (64) and sensor (2), with the 2 presence bits.
- head (softmax, 20 labels): for each of scenes' 10 topics, TOPIC/narrated
  and TOPIC/quiet.  Its first layer holds scenes' head rows for the image
  (scenes' answer when only the picture is present) plus two units
  relu(s) and relu(-s); the second layer gives both labels of a topic
  scenes' topic score, plus GAIN * s for narrated and minus it for quiet.
  So the topic comes from the picture, and narrated/quiet from the sensor
  (s > 0: narrated).  Without a sensor reading the two labels of a topic
  tie (narrated is listed first, so top-1 says narrated).

It is a demonstration of the plumbing (a CSV log through numericenc into
mmfuse next to imageenc), not a trained model: nothing here was learnt from
sensor data.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))

import numpy as np  # noqa: E402

import export  # noqa: E402
import mmfile  # noqa: E402

FEATURES = ["rms_db", "peak_db"]
THRESHOLD = [-30.0, -16.0]     # dB: numeric.mean
SCALE = [10.0, 12.0]           # dB: numeric.std
GAIN = 4.0                     # logit added to narrated (and taken from quiet) per unit of s


def build(out, scenes):
    t, doc = mmfile.load(scenes)
    comps = doc["components"]
    img_cfg = dict(comps["image"])
    img_sd = {k[len("image."):]: v for k, v in t.items() if k.startswith("image.")}
    d_img = img_cfg["dim"]

    # numeric: x = (v - mean) / std; s = (x0 + x1) / 2; second output 0
    num_sd = {"mean": np.array(THRESHOLD, np.float32), "std": np.array(SCALE, np.float32),
              "layers.0.weight": np.array([[0.5, 0.5], [0.0, 0.0]], np.float32),
              "layers.0.bias": np.zeros(2, np.float32)}
    d_sens = 2

    # scenes' head: input [image 64, audio 64, text 64, mask image, audio, text]
    fus = comps["fusion"]
    assert fus["type"] == "concat" and fus["append_mask"], "scenes: expected concat + mask"
    names = [i["modality"] for i in fus["inputs"]]
    offs, o = {}, 0
    for i in fus["inputs"]:
        offs[i["modality"]] = o
        o += i["dim"]
    mask_img = o + names.index("image")
    w0, b0 = t["head.layers.0.weight"], t["head.layers.0.bias"]
    w1, b1 = t["head.layers.1.weight"], t["head.layers.1.bias"]
    hid, topics = w0.shape[0], comps["head"]["labels"]
    assert comps["head"]["layers"] == 2 and comps["head"]["kind"] == "softmax"

    # new fused vector: [image 64, sensor 2, mask image, mask sensor]
    d_in = d_img + d_sens + 2
    nw0 = np.zeros((hid + 2, d_in), np.float32)
    nb0 = np.zeros(hid + 2, np.float32)
    nw0[:hid, :d_img] = w0[:, offs["image"]:offs["image"] + d_img]
    nw0[:hid, d_img + d_sens] = w0[:, mask_img]      # image presence bit
    nb0[:hid] = b0
    nw0[hid, d_img] = 1.0        # relu(s)
    nw0[hid + 1, d_img] = -1.0   # relu(-s)
    labels, rows, bias = [], [], []
    for k, topic in enumerate(topics):
        for name, sign in (("narrated", 1.0), ("quiet", -1.0)):
            labels.append("%s/%s" % (topic, name))
            rows.append(np.concatenate([w1[k], [sign * GAIN, -sign * GAIN]]))
            bias.append(b1[k])
    head_sd = {"layers.0.weight": nw0, "layers.0.bias": nb0,
               "layers.1.weight": np.array(rows, np.float32),
               "layers.1.bias": np.array(bias, np.float32)}

    return export.export(out, {
        "image": (img_sd, img_cfg),
        "numeric": (num_sd, {"names": FEATURES, "nan": "mean", "modality": "sensor"}),
        "fusion": (None, {"type": "concat", "append_mask": True,
                          "inputs": [{"modality": "image", "dim": d_img},
                                     {"modality": "sensor", "dim": d_sens}]}),
        "head": (head_sd, {"kind": "softmax", "labels": labels}),
    }, name="video-sensor", fp16="auto", extra_metadata={
        "license": "as models/scenes.safetensors (its image encoder and head)",
        "note": "illustrative, assembled by pipelines/video-sensor-model.py, not trained"})


def main(argv):
    out = argv[1] if len(argv) > 1 else os.path.join(HERE, "video-sensor.safetensors")
    scenes = os.path.join(HERE, "..", "models", "scenes.safetensors")
    doc = build(out, scenes)
    print("%s: %s" % (out, ", ".join("%s %s" % (k, v["type"])
                                     for k, v in doc["components"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
