#!/bin/sh
# meson test --wrapper of tests/run.sh asan|tsan.  The test programs built
# here carry the sanitizer runtime; Python, gst-launch-1.0 and the other
# system programs a test starts do not, yet load the instrumented plugin
# and libmm, so the runtime must be preloaded into them (it has to come
# first in the library list).  Children inherit LD_PRELOAD.  Shell-script
# tests run compilers and meson; they are left alone and preload
# MM_SANITIZER_PRELOAD only into the program that loads project code
# (tests/check/installed-app.sh).
case "$(basename "$1")" in
  sh | dash | bash) exec "$@" ;;
esac
LD_PRELOAD="$MM_SANITIZER_PRELOAD${LD_PRELOAD:+ $LD_PRELOAD}"
export LD_PRELOAD
exec "$@"
