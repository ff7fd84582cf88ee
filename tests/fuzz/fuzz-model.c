/* libFuzzer target: the model loader, and every context of a model that
 * loads, on arbitrary bytes.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Build and run: sh tests/fuzz/run-fuzz.sh [SECONDS]
 *   (CC=clang meson setup build-fuzz -Dfuzz=true -Dplugins=disabled;
 *    ninja -C build-fuzz tests/fuzz/fuzz-model)
 * Every input must either load or fail with a GError in the MM_ERROR domain;
 * a model that loads must create each context or fail the same way.
 * ASan/UBSan catch the rest.
 *
 * Speed: the loader (header, JSON checks, "mm" document, binding, packing,
 * graph planning) runs on every input, and so does the creation of every
 * context.  The text, image and audio encoders (and a graph head) run only
 * when the model's work per item, the largest figure its budget checks
 * computed (mm_budget_load_work), is at most ENCODE_MAX_WORK.  Most seeds
 * are above it (the bundled model 87 MFLOP, the graph fixtures up to
 * 250 MFLOP), take tens to hundreds of milliseconds to encode under ASan,
 * and their mutants mostly stay valid: encoding every one held the target
 * at about 60 executions a second.  Below it are the small fixtures
 * (vit_tiny, bert_tiny, mobilenet_v3_small, the resnet and BERT encoder
 * fixtures) and mutants that shrink a model.  Fusion and a layer head run
 * on every model: their work is at most two FLOPs per weight in the file.
 */
#include "mm-private.h"

#define MAX_VEC 65536
#define ENCODE_MAX_WORK (G_GUINT64_CONSTANT (2000000)) /* FLOPs per item */

int LLVMFuzzerTestOneInput (const guint8 *data, size_t size);

static float zeros[MAX_VEC];
static float out[MAX_VEC];
static float pcm[32000];
static const guint8 pixels[4 * 4 * 3];

static void
check_failure (gboolean ok, GError *err)
{
  g_assert (ok || (err != NULL && err->domain == MM_ERROR));
  g_clear_error (&err);
}

static void
run_contexts (MmModel *m, gboolean encode)
{
  MmContextParams p = mm_context_default_params ();
  p.max_audio_samples = G_N_ELEMENTS (pcm);
  GError *err = NULL;

  if (mm_model_has_component (m, MM_COMPONENT_TEXT)
      && mm_model_get_dim (m, MM_COMPONENT_TEXT) <= MAX_VEC) {
    MmTextEncoder *e = mm_text_encoder_new (m, &p, &err);
    check_failure (e != NULL, err);
    err = NULL;
    if (e && encode)
      check_failure (
          mm_text_encoder_encode (e, "a dog barks, caf\xc3\xa9 \xff", -1, out, NULL, &err), err);
    if (e)
      mm_text_encoder_free (e);
  }
  if (mm_model_has_component (m, MM_COMPONENT_IMAGE)
      && mm_model_get_dim (m, MM_COMPONENT_IMAGE) <= MAX_VEC) {
    err = NULL;
    MmImageEncoder *e = mm_image_encoder_new (m, &p, &err);
    check_failure (e != NULL, err);
    err = NULL;
    if (e && encode)
      check_failure (mm_image_encoder_encode (e, MM_PIXEL_RGB, pixels, 4, 4, 12, out, &err), err);
    if (e)
      mm_image_encoder_free (e);
  }
  guint window = mm_model_get_audio_window (m);
  if (mm_model_has_component (m, MM_COMPONENT_AUDIO)
      && mm_model_get_dim (m, MM_COMPONENT_AUDIO) <= MAX_VEC) {
    err = NULL;
    MmAudioEncoder *e = mm_audio_encoder_new (m, &p, &err);
    check_failure (e != NULL, err);
    err = NULL;
    if (e && encode) {
      gsize n = MIN (window ? window : G_N_ELEMENTS (pcm), G_N_ELEMENTS (pcm));
      check_failure (mm_audio_encoder_encode (e, pcm, n, out, &err), err);
    }
    if (e)
      mm_audio_encoder_free (e);
  }
  if (mm_model_has_component (m, MM_COMPONENT_FUSION)
      && mm_model_get_dim (m, MM_COMPONENT_FUSION) <= MAX_VEC) {
    err = NULL;
    MmFusion *f = mm_fusion_new (m, &p, &err);
    check_failure (f != NULL, err);
    if (f) {
      const float *inputs[64] = { NULL };
      guint n = MIN (mm_model_get_fusion_n_inputs (m), G_N_ELEMENTS (inputs));
      err = NULL;
      check_failure (mm_fusion_run (f, inputs, out, &err), err); /* all missing */
      for (guint i = 0; i < n; i++)
        inputs[i] = mm_model_get_fusion_input_dim (m, i) <= MAX_VEC ? zeros : NULL;
      err = NULL;
      check_failure (mm_fusion_run (f, inputs, out, &err), err);
    }
    if (f)
      mm_fusion_free (f);
  }
  if (mm_model_has_component (m, MM_COMPONENT_HEAD) && mm_model_get_n_outputs (m) <= MAX_VEC) {
    const MmTensor *w = mm_safetensors_find (m->st, "head.layers.0.weight");
    err = NULL;
    MmHead *h = mm_head_new (m, &p, &err);
    check_failure (h != NULL, err);
    gboolean graph = g_strcmp0 (mm_model_get_component_type (m, MM_COMPONENT_HEAD), "graph") == 0;
    if (h && (encode || !graph) && w && w->ndim == 2 && w->shape[1] <= MAX_VEC) {
      err = NULL;
      check_failure (mm_head_run (h, zeros, out, &err), err);
    }
    if (h)
      mm_head_free (h);
  }
}

int
LLVMFuzzerTestOneInput (const guint8 *data, size_t size)
{
  GError *err = NULL;
  /* held to the budget as a whole, as mm_model_open does */
  mm_budget_load_begin ();
  MmSafetensors *st = mm_safetensors_open_bytes ("fuzz", data, size, &err);
  MmModel *m = st ? mm_model_new_from_safetensors (st, "fuzz", &err) : NULL;
  mm_budget_load_end ();
  if (!m) {
    check_failure (FALSE, err);
    if (st)
      mm_safetensors_free (st);
    return 0;
  }
  run_contexts (m, mm_budget_load_work () <= ENCODE_MAX_WORK);
  mm_model_unref (m); /* frees st too */
  return 0;
}
