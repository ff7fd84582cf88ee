#!/usr/bin/python3
"""bf16 against fp32 on the bundled model's held-out pictures (issue 15).

The held-out split is models/stamps.py's (every fifth caption group of each
category, from the Debian package tuxpaint-stamps-default, installed by
tests/setup.sh); its pictures go to bf16-agreement, which encodes each with
an fp32 and a bf16 image encoder and requires >= 99.5 % top-1 agreement
(image alone through fusion and head), printing the largest deviation of
the embeddings.  Exit 77 (skipped) without the stamps or without bf16.

    test_bf16_heldout.py BF16_AGREEMENT MODEL
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models"))


def main():
    tool, model = sys.argv[1], sys.argv[2]
    try:
        import numpy  # noqa: F401  (stamps.py imports it; scan() does not use it)
    except ImportError:
        import types
        sys.modules["numpy"] = types.ModuleType("numpy")
    import stamps
    if not os.path.isdir(stamps.STAMPS):
        print("skipped: no %s (tuxpaint-stamps-default, tests/setup.sh)" % stamps.STAMPS)
        return 77
    pictures = [it["picture"] for it in stamps.scan() if it["split"] == "test"]
    print("held-out pictures: %d" % len(pictures))
    if not pictures:
        print("no held-out pictures found")
        return 1
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(pictures) + "\n")
        listing = f.name
    try:
        r = subprocess.run([tool, model, listing], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=600)
    finally:
        os.unlink(listing)
    sys.stdout.write(r.stdout)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
