#!/bin/sh
# Test of tools/mm-classify: output format, batch mode and clear errors.
#   sh test-mm-classify.sh MM_CLASSIFY MODEL TESTDATA_DIR
set -u
tool=$1
model=$2
data=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fail () {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# 1. one example, picture + text: header, then 3 "label<TAB>score" lines, best first
if "$tool" --model "$model" --image "$data/kangaroo.png" --text-file "$data/kangaroo.txt" \
    >"$tmp/out" 2>"$tmp/err"; then
  head -n 1 "$tmp/out" | grep -q '^# model scenes inputs image,text$' \
    || fail "header line: $(head -n 1 "$tmp/out")"
  [ "$(tail -n +2 "$tmp/out" | wc -l)" -eq 3 ] || fail "expected 3 label lines"
  tail -n +2 "$tmp/out" | grep -qv "$(printf '^[a-z][a-z-]*\t[01]\\.[0-9][0-9][0-9][0-9]$')" \
    && fail "bad label line in: $(cat "$tmp/out")"
  tail -n +2 "$tmp/out" | cut -f 2 | sort -r -c 2>/dev/null || fail "scores not sorted"
  # the pictures and caption of a kangaroo are an animal
  [ "$(sed -n 2p "$tmp/out" | cut -f 1)" = animals ] || fail "kangaroo is not animals: $(cat "$tmp/out")"
else
  fail "picture + text run failed: $(cat "$tmp/err")"
fi

# 2. --top and text given on the command line
"$tool" -m "$model" --text "a fire truck and a police car" --top 5 >"$tmp/out" 2>"$tmp/err" \
  || fail "--text run failed: $(cat "$tmp/err")"
[ "$(tail -n +2 "$tmp/out" | wc -l)" -eq 5 ] || fail "--top 5 gave $(cat "$tmp/out")"
[ "$(sed -n 2p "$tmp/out" | cut -f 1)" = vehicles ] || fail "fire truck is not vehicles: $(cat "$tmp/out")"

# 3. audio at the model's rate works; audio at another rate is a clear error
"$tool" -m "$model" --audio "$data/speech-16k.wav" >"$tmp/out" 2>"$tmp/err" \
  || fail "16 kHz audio failed: $(cat "$tmp/err")"
head -n 1 "$tmp/out" | grep -q 'inputs audio$' || fail "audio header: $(cat "$tmp/out")"
if "$tool" -m "$model" --audio "$data/speech-8k.wav" >"$tmp/out" 2>"$tmp/err"; then
  fail "8 kHz audio accepted"
fi
grep -q 'speech-8k.wav: sample rate 8000 Hz, but the model takes 16000 Hz' "$tmp/err" \
  || fail "8 kHz message: $(cat "$tmp/err")"

# 4. a missing model file names the file
if "$tool" -m "$tmp/no-such-model.safetensors" --text hello >"$tmp/out" 2>"$tmp/err"; then
  fail "missing model accepted"
fi
grep -q "^mm-classify: .*no-such-model.safetensors" "$tmp/err" \
  || fail "missing model message: $(cat "$tmp/err")"

# 5. a missing picture names the file
if "$tool" -m "$model" --image "$tmp/nothing.png" >"$tmp/out" 2>"$tmp/err"; then
  fail "missing picture accepted"
fi
grep -q "nothing.png" "$tmp/err" || fail "missing picture message: $(cat "$tmp/err")"

# 6. batch mode: 7 subsets, predictions file with 7 lines per example
if "$tool" -m "$model" --manifest "$data/manifest.tsv" --predictions "$tmp/pred.tsv" \
    >"$tmp/out" 2>"$tmp/err"; then
  grep -q "manifest .*: 2 examples (2 with a picture, 1 with audio, 1 with text)" "$tmp/out" \
    || fail "batch summary: $(cat "$tmp/out")"
  for s in image audio text all no-image no-audio no-text; do
    grep -Eq "^$s +[0-2] +2 +[01]\.[0-9]{4}$" "$tmp/out" || fail "batch row $s: $(cat "$tmp/out")"
  done
  [ "$(grep -vc '^#' "$tmp/pred.tsv")" -eq 14 ] || fail "predictions: $(cat "$tmp/pred.tsv")"
else
  fail "batch run failed: $(cat "$tmp/err")"
fi

# 7. a manifest label the model does not know names the line
printf 'dinosaurs\tkangaroo.png\t-\t-\n' >"$tmp/bad.tsv"
cp "$data/kangaroo.png" "$tmp/"
if "$tool" -m "$model" --manifest "$tmp/bad.tsv" >"$tmp/out" 2>"$tmp/err"; then
  fail "unknown label accepted"
fi
grep -q 'bad.tsv:1: label "dinosaurs" is not one of the model' "$tmp/err" \
  || fail "unknown label message: $(cat "$tmp/err")"

# 8. usage errors
"$tool" --text hello >"$tmp/out" 2>"$tmp/err" && fail "no --model accepted"
grep -q -- "--model FILE is required" "$tmp/err" || fail "no --model message: $(cat "$tmp/err")"

"$tool" -m "$model" >"$tmp/out" 2>"$tmp/err" && fail "no input accepted"
grep -q -- "give --image, --audio, --text" "$tmp/err" || fail "no input message: $(cat "$tmp/err")"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all mm-classify checks passed"
