/* libFuzzer target: the model loader on arbitrary bytes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Build and run (see tests/fuzz/run-fuzz.sh):
 *   meson setup build-fuzz -Dfuzz=true -Dplugins=disabled --native-file tests/fuzz/clang.ini
 *   ninja -C build-fuzz tests/fuzz/fuzz-model
 *   build-fuzz/tests/fuzz/fuzz-model -max_total_time=300 tests/fuzz/corpus
 * Every input must either load or fail with a GError; ASan/UBSan catch the rest.
 */
#include "mm-private.h"

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  GError *err = NULL;
  MmSafetensors *st = mm_safetensors_open_bytes ("fuzz", data, size, &err);
  if (!st) {
    g_assert (err != NULL && err->domain == MM_ERROR);
    g_error_free (err);
    return 0;
  }
  MmModel *m = mm_model_new_from_safetensors (st, "fuzz", &err);
  if (!m) {
    g_assert (err != NULL && err->domain == MM_ERROR);
    g_error_free (err);
    mm_safetensors_free (st);
    return 0;
  }
  /* a model that loads must also run: exercise every context once */
  MmContextParams p = mm_context_default_params ();
  p.max_audio_samples = 32000;
  float out[65536];
  if (mm_model_has_component (m, MM_COMPONENT_HEAD)
      && mm_model_get_dim (m, MM_COMPONENT_FUSION) == 0) {
    MmHead *h = mm_head_new (m, &p, NULL);
    const MmTensor *w = mm_safetensors_find (st, "head.layers.0.weight");
    if (h && w && w->ndim == 2 && w->shape[1] <= 65536) {
      static float in[65536];
      mm_head_run (h, in, out, NULL);
    }
    if (h)
      mm_head_free (h);
  }
  mm_model_unref (m); /* frees st too */
  return 0;
}
