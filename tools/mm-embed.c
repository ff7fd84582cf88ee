/* mm-embed: one component of a libmm model on one raw input, output as raw floats
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 *   mm-embed MODEL COMPONENT INPUT OUTPUT
 *
 * COMPONENT is image, audio, text or head.  INPUT is
 * - image: packed RGB bytes, exactly the model's width x height x 3
 *   (the encoder's resize is then the identity);
 * - audio: little-endian float32 mono samples at the model's rate;
 * - text: UTF-8 text;
 * - head: little-endian float32, the head's input vector.
 * OUTPUT receives the component's output (the embedding, or the head's
 * scores after its activation) as little-endian float32; "-" prints one
 * value a line instead.  Used by models/onnx2mm.py and models/export.py to
 * check a written file against its source, and by the graph parity tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mm.h"

/* a head's input is as long as the file says; the buffer is at least this
 * long (zero-filled) so that a head expecting more never reads past it */
#define MIN_HEAD_INPUT 65536

static gboolean
write_output (const char *path, const float *v, guint n, GError **error)
{
  if (strcmp (path, "-") == 0) {
    for (guint i = 0; i < n; i++)
      printf ("%.9g\n", v[i]);
    return TRUE;
  }
  guint32 *le = g_new (guint32, n);
  for (guint i = 0; i < n; i++) {
    guint32 u;
    memcpy (&u, &v[i], 4);
    le[i] = GUINT32_TO_LE (u);
  }
  gboolean ok = g_file_set_contents (path, (const char *)le, (gssize)n * 4, error);
  g_free (le);
  return ok;
}

static float *
floats_of (const char *data, gsize len, gsize min_count, gsize *count)
{
  gsize n = len / 4;
  float *v = g_new0 (float, MAX (n, min_count));
  for (gsize i = 0; i < n; i++) {
    guint32 u;
    memcpy (&u, data + 4 * i, 4);
    u = GUINT32_FROM_LE (u);
    memcpy (&v[i], &u, 4);
  }
  *count = n;
  return v;
}

static gboolean
run (const char *model_path, const char *component, const char *input, const char *output,
    GError **error)
{
  gboolean ok = FALSE;
  char *data = NULL;
  gsize len = 0;
  float *in = NULL, *out = NULL;
  guint dim = 0;
  MmContextParams params = mm_context_default_params ();
  MmModel *model = mm_model_open (model_path, error);
  if (!model)
    return FALSE;
  if (!g_file_get_contents (input, &data, &len, error))
    goto done;

  if (strcmp (component, "image") == 0) {
    guint w = 0, h = 0;
    if (!mm_model_get_image_size (model, &w, &h)) {
      g_set_error (
          error, MM_ERROR, MM_ERROR_MISSING_COMPONENT, "%s has no image component", model_path);
      goto done;
    }
    if (len != (gsize)w * h * 3) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
          "%s: %" G_GSIZE_FORMAT " bytes, the model's %ux%u RGB input is %" G_GSIZE_FORMAT, input,
          len, w, h, (gsize)w * h * 3);
      goto done;
    }
    MmImageEncoder *enc = mm_image_encoder_new (model, &params, error);
    if (!enc)
      goto done;
    dim = mm_model_get_dim (model, MM_COMPONENT_IMAGE);
    out = g_new0 (float, dim);
    ok = mm_image_encoder_encode (
        enc, MM_PIXEL_RGB, (const guint8 *)data, w, h, (gsize)w * 3, out, error);
    mm_image_encoder_free (enc);
  } else if (strcmp (component, "audio") == 0) {
    gsize n;
    in = floats_of (data, len, 1, &n);
    if (n == 0 || n > G_MAXUINT / 2) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "%s: no samples", input);
      goto done;
    }
    params.max_audio_samples = MAX ((guint)n, mm_model_get_audio_window (model));
    MmAudioEncoder *enc = mm_audio_encoder_new (model, &params, error);
    if (!enc)
      goto done;
    dim = mm_model_get_dim (model, MM_COMPONENT_AUDIO);
    out = g_new0 (float, dim);
    ok = mm_audio_encoder_encode (enc, in, n, out, error);
    mm_audio_encoder_free (enc);
  } else if (strcmp (component, "text") == 0) {
    params.max_text_bytes = MAX (params.max_text_bytes, len);
    MmTextEncoder *enc = mm_text_encoder_new (model, &params, error);
    if (!enc)
      goto done;
    dim = mm_model_get_dim (model, MM_COMPONENT_TEXT);
    out = g_new0 (float, dim);
    ok = mm_text_encoder_encode (enc, data, (gssize)len, out, NULL, error);
    mm_text_encoder_free (enc);
  } else if (strcmp (component, "head") == 0) {
    gsize n;
    in = floats_of (data, len, MIN_HEAD_INPUT, &n);
    MmHead *head = mm_head_new (model, &params, error);
    if (!head)
      goto done;
    dim = mm_model_get_n_outputs (model);
    out = g_new0 (float, dim);
    ok = mm_head_run (head, in, out, error);
    mm_head_free (head);
  } else {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
        "unknown component '%s' (image, audio, text or head)", component);
    goto done;
  }
  if (ok)
    ok = write_output (output, out, dim, error);

done:
  g_free (in);
  g_free (out);
  g_free (data);
  mm_model_unref (model);
  return ok;
}

int
main (int argc, char **argv)
{
  GError *error = NULL;
  if (argc != 5) {
    g_printerr ("usage: %s MODEL image|audio|text|head INPUT OUTPUT\n"
                "  INPUT: RGB bytes at the model's size, float32 samples, UTF-8 text,\n"
                "  or the head's float32 input; OUTPUT: float32 values, or - to print\n",
        argv[0]);
    return 2;
  }
  if (!run (argv[1], argv[2], argv[3], argv[4], &error)) {
    g_printerr ("mm-embed: %s\n", error ? error->message : "failed");
    g_clear_error (&error);
    return 1;
  }
  return 0;
}
