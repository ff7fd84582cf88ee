/* mm-classify: classify pictures, sounds and text with a libmm model
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * One example from files:
 *
 *   mm-classify --model models/scenes.safetensors --image tiger.png \
 *       --audio roar.wav --text "A tiger in the zoo"
 *
 * prints the model's name, the inputs used and the top labels with their
 * scores, one "LABEL<TAB>SCORE" line each, best first.
 *
 * A data set (batch mode):
 *
 *   mm-classify --model M --manifest test.tsv [--predictions out.tsv]
 *
 * reads a TSV manifest (label, image, audio, text file; paths relative to
 * the manifest; '-' = missing; '#' starts a comment line) and prints the
 * accuracy for each subset of modalities: each alone, all fused, and all
 * minus each one.  --predictions writes every prediction
 * (index, subset, true label, predicted label, score).
 *
 * Pictures are read with gdk-pixbuf; transparent pixels are composited on
 * white, v = (c a + 255 (255 - a) + 127) / 255, as models/train.py does.
 * Audio is read with libsndfile, down-mixed to mono and must be at the
 * model's sample rate (resample first, e.g. with sox or audioresample).
 * Text is UTF-8.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gdk-pixbuf/gdk-pixbuf.h>
#include <sndfile.h>

#include "mm.h"

#define MAX_AUDIO_SECONDS 30
#define MAX_CHANNELS 16
#define BLOCK_FRAMES 256

enum
{
  IMAGE,
  AUDIO,
  TEXT,
  N_MODALITIES
};

static const char *const modality_names[N_MODALITIES] = { "image", "audio", "text" };

/* Subsets of modalities scored in batch mode (bit i = modality i); the
 * names are those of models/evaluate.py. */
static const struct
{
  const char *name;
  guint bits;
} subsets[] = {
  { "image", 1 << IMAGE },
  { "audio", 1 << AUDIO },
  { "text", 1 << TEXT },
  { "all", (1 << IMAGE) | (1 << AUDIO) | (1 << TEXT) },
  { "no-image", (1 << AUDIO) | (1 << TEXT) },
  { "no-audio", (1 << IMAGE) | (1 << TEXT) },
  { "no-text", (1 << IMAGE) | (1 << AUDIO) },
};

#define N_SUBSETS G_N_ELEMENTS (subsets)

/* Everything created once per run: encoders for the modalities the model
 * has, the fusion, the head, and their output buffers. */
typedef struct
{
  MmModel *model;
  MmImageEncoder *image;
  MmAudioEncoder *audio;
  MmTextEncoder *text;
  MmFusion *fusion;
  MmHead *head;
  guint n_inputs;
  gint input_of[N_MODALITIES]; /* fusion input index of each modality, or -1 */
  float *z[N_MODALITIES];      /* embedding of each modality */
  float *fused;
  float *scores;
  guint n_outputs;
  guint rate;
  gsize max_audio;
  float *audio_buf; /* max_audio mono samples */
} Classifier;

static void
classifier_free (Classifier *c)
{
  if (!c)
    return;
  mm_image_encoder_free (c->image);
  mm_audio_encoder_free (c->audio);
  mm_text_encoder_free (c->text);
  mm_fusion_free (c->fusion);
  mm_head_free (c->head);
  for (int m = 0; m < N_MODALITIES; m++)
    g_free (c->z[m]);
  g_free (c->fused);
  g_free (c->scores);
  g_free (c->audio_buf);
  mm_model_unref (c->model);
  g_free (c);
}

static Classifier *
classifier_new (const char *path, GError **error)
{
  Classifier *c = g_new0 (Classifier, 1);
  MmContextParams params = mm_context_default_params ();

  c->model = mm_model_open (path, error);
  if (!c->model)
    goto fail;
  if (!mm_model_has_component (c->model, MM_COMPONENT_FUSION)
      || !mm_model_has_component (c->model, MM_COMPONENT_HEAD)) {
    g_set_error (error, MM_ERROR, MM_ERROR_MISSING_COMPONENT,
        "%s: a classifier needs a fusion and a head component", path);
    goto fail;
  }
  c->n_inputs = mm_model_get_fusion_n_inputs (c->model);
  c->rate = mm_model_get_audio_rate (c->model);
  if (mm_model_has_component (c->model, MM_COMPONENT_AUDIO)) {
    c->max_audio = (gsize)c->rate * MAX_AUDIO_SECONDS;
    if (c->max_audio < mm_model_get_audio_window (c->model))
      c->max_audio = mm_model_get_audio_window (c->model);
    params.max_audio_samples = c->max_audio;
  }

  for (int m = 0; m < N_MODALITIES; m++) {
    static const MmComponent comp[N_MODALITIES] = { MM_COMPONENT_IMAGE, MM_COMPONENT_AUDIO,
      MM_COMPONENT_TEXT };
    c->input_of[m] = mm_model_find_fusion_input (c->model, modality_names[m]);
    if (c->input_of[m] < 0 || !mm_model_has_component (c->model, comp[m])) {
      c->input_of[m] = -1;
      continue;
    }
    /* mm_model_open already checked the encoder's dim against the fusion input */
    c->z[m] = g_new0 (float, mm_model_get_dim (c->model, comp[m]));
  }
  if (c->input_of[IMAGE] >= 0 && !(c->image = mm_image_encoder_new (c->model, &params, error)))
    goto fail;
  if (c->input_of[AUDIO] >= 0 && !(c->audio = mm_audio_encoder_new (c->model, &params, error)))
    goto fail;
  if (c->input_of[TEXT] >= 0 && !(c->text = mm_text_encoder_new (c->model, &params, error)))
    goto fail;
  if (!(c->fusion = mm_fusion_new (c->model, &params, error)))
    goto fail;
  if (!(c->head = mm_head_new (c->model, &params, error)))
    goto fail;
  c->fused = g_new0 (float, mm_model_get_dim (c->model, MM_COMPONENT_FUSION));
  c->n_outputs = mm_model_get_n_outputs (c->model);
  c->scores = g_new0 (float, c->n_outputs);
  if (c->max_audio)
    c->audio_buf = g_new (float, c->max_audio);
  return c;

fail:
  classifier_free (c);
  return NULL;
}

static gboolean
require_modality (Classifier *c, int m, const char *file, GError **error)
{
  if (c->input_of[m] >= 0)
    return TRUE;
  g_set_error (error, MM_ERROR, MM_ERROR_MISSING_COMPONENT,
      "%s: model %s has no %s encoder feeding its fusion", file, mm_model_get_path (c->model),
      modality_names[m]);
  return FALSE;
}

/* ---- readers ----------------------------------------------------------- */

/* rgb (w, h, 3) packed = @pixbuf with alpha composited on white */
static guint8 *
picture_rgb (GdkPixbuf *pixbuf, guint *width, guint *height)
{
  guint w = gdk_pixbuf_get_width (pixbuf), h = gdk_pixbuf_get_height (pixbuf);
  guint nc = gdk_pixbuf_get_n_channels (pixbuf);
  gsize stride = gdk_pixbuf_get_rowstride (pixbuf);
  const guint8 *src = gdk_pixbuf_read_pixels (pixbuf);
  guint8 *rgb = g_malloc ((gsize)w * h * 3);

  for (guint y = 0; y < h; y++) {
    const guint8 *s = src + y * stride;
    guint8 *d = rgb + (gsize)y * w * 3;
    for (guint x = 0; x < w; x++, s += nc, d += 3) {
      guint a = nc == 4 ? s[3] : 255;
      for (int k = 0; k < 3; k++)
        d[k] = (guint8)((s[k] * a + 255 * (255 - a) + 127) / 255);
    }
  }
  *width = w;
  *height = h;
  return rgb;
}

static gboolean
encode_image (Classifier *c, const char *file, GError **error)
{
  GError *err = NULL;
  GdkPixbuf *pixbuf;
  guint8 *rgb;
  guint w, h;
  gboolean ok;

  if (!require_modality (c, IMAGE, file, error))
    return FALSE;
  pixbuf = gdk_pixbuf_new_from_file (file, &err);
  if (!pixbuf) {
    g_set_error (
        error, MM_ERROR, MM_ERROR_INPUT, "%s: cannot read the picture: %s", file, err->message);
    g_error_free (err);
    return FALSE;
  }
  if (gdk_pixbuf_get_bits_per_sample (pixbuf) != 8
      || gdk_pixbuf_get_colorspace (pixbuf) != GDK_COLORSPACE_RGB
      || gdk_pixbuf_get_n_channels (pixbuf) < 3 || gdk_pixbuf_get_n_channels (pixbuf) > 4) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
        "%s: unsupported pixel layout (%d bits, %d channels)", file,
        gdk_pixbuf_get_bits_per_sample (pixbuf), gdk_pixbuf_get_n_channels (pixbuf));
    g_object_unref (pixbuf);
    return FALSE;
  }
  rgb = picture_rgb (pixbuf, &w, &h);
  g_object_unref (pixbuf);
  ok = mm_image_encoder_encode (c->image, MM_PIXEL_RGB, rgb, w, h, (gsize)w * 3, c->z[IMAGE], &err);
  g_free (rgb);
  if (!ok) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "%s: %s", file, err->message);
    g_error_free (err);
  }
  return ok;
}

static gboolean
encode_audio (Classifier *c, const char *file, GError **error)
{
  SF_INFO info = { 0 };
  SNDFILE *sf;
  float block[BLOCK_FRAMES * MAX_CHANNELS];
  gsize n = 0;
  GError *err = NULL;

  if (!require_modality (c, AUDIO, file, error))
    return FALSE;
  sf = sf_open (file, SFM_READ, &info);
  if (!sf) {
    g_set_error (
        error, MM_ERROR, MM_ERROR_INPUT, "%s: cannot read the audio: %s", file, sf_strerror (NULL));
    return FALSE;
  }
  if (info.samplerate != (int)c->rate) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
        "%s: sample rate %d Hz, but the model takes %u Hz (resample it first)", file,
        info.samplerate, c->rate);
    sf_close (sf);
    return FALSE;
  }
  if (info.channels < 1 || info.channels > MAX_CHANNELS) {
    g_set_error (
        error, MM_ERROR, MM_ERROR_INPUT, "%s: %d channels is not supported", file, info.channels);
    sf_close (sf);
    return FALSE;
  }
  /* blocks of frames; mono = mean of the channels */
  for (;;) {
    sf_count_t got = sf_readf_float (sf, block, BLOCK_FRAMES);
    if (got <= 0)
      break;
    if (n + (gsize)got > c->max_audio) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
          "%s: longer than %d s; cut it into shorter files", file, MAX_AUDIO_SECONDS);
      sf_close (sf);
      return FALSE;
    }
    for (sf_count_t i = 0; i < got; i++) {
      const float *fr = block + i * info.channels;
      float sum = 0.0f;
      for (int k = 0; k < info.channels; k++)
        sum += fr[k];
      c->audio_buf[n++] = info.channels == 1 ? sum : sum / info.channels;
    }
  }
  sf_close (sf);
  if (!mm_audio_encoder_encode (c->audio, c->audio_buf, n, c->z[AUDIO], &err)) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "%s: %s", file, err->message);
    g_error_free (err);
    return FALSE;
  }
  return TRUE;
}

static gboolean
encode_text (Classifier *c, const char *text, gssize len, const char *origin, GError **error)
{
  GError *err = NULL;

  if (!require_modality (c, TEXT, origin, error))
    return FALSE;
  if (!mm_text_encoder_encode (c->text, text, len, c->z[TEXT], NULL, &err)) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "%s: %s", origin, err->message);
    g_error_free (err);
    return FALSE;
  }
  return TRUE;
}

static gboolean
encode_text_file (Classifier *c, const char *file, GError **error)
{
  char *text;
  gsize len;
  gboolean ok;

  if (!g_file_get_contents (file, &text, &len, error))
    return FALSE;
  ok = encode_text (c, text, len, file, error);
  g_free (text);
  return ok;
}

/* ---- fusion + head ----------------------------------------------------- */

/* scores of the head with the modalities in @bits that are @present */
static gboolean
classify (Classifier *c, guint present, guint bits, GError **error)
{
  const float **inputs = g_newa (const float *, c->n_inputs);

  for (guint i = 0; i < c->n_inputs; i++)
    inputs[i] = NULL;
  for (int m = 0; m < N_MODALITIES; m++)
    if (c->input_of[m] >= 0 && (present & bits & (1u << m)))
      inputs[c->input_of[m]] = c->z[m];
  return mm_fusion_run (c->fusion, inputs, c->fused, error)
      && mm_head_run (c->head, c->fused, c->scores, error);
}

static guint
argmax (const float *v, guint n)
{
  guint best = 0;
  for (guint i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

static gint
label_index (MmModel *model, const char *label)
{
  for (guint i = 0; i < mm_model_get_n_outputs (model); i++)
    if (g_strcmp0 (mm_model_get_label (model, i), label) == 0)
      return (gint)i;
  return -1;
}

/* ---- one example ------------------------------------------------------- */

static int
run_single (Classifier *c, const char *image, const char *audio, const char *text,
    const char *text_file, guint top, GError **error)
{
  guint present = 0, *order;
  GString *used = g_string_new (NULL);

  if (image) {
    if (!encode_image (c, image, error))
      goto fail;
    present |= 1 << IMAGE;
  }
  if (audio) {
    if (!encode_audio (c, audio, error))
      goto fail;
    present |= 1 << AUDIO;
  }
  if (text || text_file) {
    if (text ? !encode_text (c, text, -1, "--text", error)
             : !encode_text_file (c, text_file, error))
      goto fail;
    present |= 1 << TEXT;
  }
  if (!classify (c, present, ~0u, error))
    goto fail;

  for (int m = 0; m < N_MODALITIES; m++)
    if (present & (1u << m))
      g_string_append_printf (used, "%s%s", used->len ? "," : "", modality_names[m]);
  printf ("# model %s inputs %s\n", mm_model_get_name (c->model), used->len ? used->str : "none");
  g_string_free (used, TRUE);

  /* selection of the top labels, best first */
  order = g_new (guint, c->n_outputs);
  for (guint i = 0; i < c->n_outputs; i++)
    order[i] = i;
  for (guint i = 0; i < MIN (top, c->n_outputs); i++) {
    guint best = i;
    for (guint j = i + 1; j < c->n_outputs; j++)
      if (c->scores[order[j]] > c->scores[order[best]])
        best = j;
    guint t = order[i];
    order[i] = order[best];
    order[best] = t;
    printf ("%s\t%.4f\n", mm_model_get_label (c->model, order[i]), c->scores[order[i]]);
  }
  g_free (order);
  return 0;

fail:
  g_string_free (used, TRUE);
  return 1;
}

/* ---- batch ------------------------------------------------------------- */

static char *
manifest_path (const char *dir, const char *field)
{
  if (strcmp (field, "-") == 0 || field[0] == '\0')
    return NULL;
  if (g_path_is_absolute (field))
    return g_strdup (field);
  return g_build_filename (dir, field, NULL);
}

static int
run_manifest (Classifier *c, const char *manifest, const char *predictions, GError **error)
{
  char *contents, **lines, *dir;
  guint correct[N_SUBSETS] = { 0 }, total = 0, with[N_MODALITIES] = { 0 };
  FILE *pred = NULL;
  int ret = 1;

  if (!g_file_get_contents (manifest, &contents, NULL, error))
    return 1;
  lines = g_strsplit (contents, "\n", -1);
  g_free (contents);
  dir = g_path_get_dirname (manifest);
  if (predictions) {
    pred = fopen (predictions, "w");
    if (!pred) {
      g_set_error (
          error, MM_ERROR, MM_ERROR_IO, "%s: cannot write: %s", predictions, g_strerror (errno));
      goto out;
    }
    fprintf (pred, "# index\tsubset\ttruth\tprediction\tscore\n");
  }

  for (guint ln = 0; lines[ln]; ln++) {
    char *line = g_strchomp (lines[ln]);
    char **f;
    guint present = 0;
    gint truth;
    gboolean ok = TRUE;

    if (line[0] == '\0' || line[0] == '#')
      continue;
    f = g_strsplit (line, "\t", -1);
    if (g_strv_length (f) != 4) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
          "%s:%u: expected 4 tab-separated fields (label, image, audio, text), got %u", manifest,
          ln + 1, g_strv_length (f));
      g_strfreev (f);
      goto out;
    }
    truth = label_index (c->model, f[0]);
    if (truth < 0) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
          "%s:%u: label \"%s\" is not one of the "
          "model's labels",
          manifest, ln + 1, f[0]);
      g_strfreev (f);
      goto out;
    }
    for (int m = 0; m < N_MODALITIES && ok; m++) {
      char *path = manifest_path (dir, f[m + 1]);
      if (!path)
        continue;
      ok = m == IMAGE  ? encode_image (c, path, error)
          : m == AUDIO ? encode_audio (c, path, error)
                       : encode_text_file (c, path, error);
      if (ok) {
        present |= 1u << m;
        with[m]++;
      }
      g_free (path);
    }
    g_strfreev (f);
    if (!ok) {
      g_prefix_error (error, "%s:%u: ", manifest, ln + 1);
      goto out;
    }
    for (guint s = 0; s < N_SUBSETS; s++) {
      guint best;
      if (!classify (c, present, subsets[s].bits, error))
        goto out;
      best = argmax (c->scores, c->n_outputs);
      correct[s] += best == (guint)truth;
      if (pred)
        fprintf (pred, "%u\t%s\t%s\t%s\t%.6f\n", total, subsets[s].name,
            mm_model_get_label (c->model, truth), mm_model_get_label (c->model, best),
            c->scores[best]);
    }
    total++;
  }

  printf ("# model %s manifest %s: %u examples (%u with a picture, %u with audio, %u with "
          "text)\n",
      mm_model_get_name (c->model), manifest, total, with[IMAGE], with[AUDIO], with[TEXT]);
  printf ("%-10s %8s %8s %9s\n", "inputs", "correct", "total", "accuracy");
  for (guint s = 0; s < N_SUBSETS; s++)
    printf ("%-10s %8u %8u %9.4f\n", subsets[s].name, correct[s], total,
        total ? (double)correct[s] / total : 0.0);
  ret = 0;

out:
  if (pred && fclose (pred) != 0 && ret == 0) {
    g_set_error (error, MM_ERROR, MM_ERROR_IO, "%s: write error", predictions);
    ret = 1;
  }
  g_free (dir);
  g_strfreev (lines);
  return ret;
}

/* ---- main -------------------------------------------------------------- */

int
main (int argc, char **argv)
{
  char *model = NULL, *image = NULL, *audio = NULL, *text = NULL, *text_file = NULL;
  char *manifest = NULL, *predictions = NULL;
  int top = 3, ret;
  GError *error = NULL;
  Classifier *c;
  GOptionEntry entries[] = { { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model,
                                 "Model file (safetensors)", "FILE" },
    { "image", 'i', 0, G_OPTION_ARG_FILENAME, &image, "Picture (any format gdk-pixbuf reads)",
        "FILE" },
    { "audio", 'a', 0, G_OPTION_ARG_FILENAME, &audio,
        "Sound file (any format libsndfile reads) at the model's sample rate", "FILE" },
    { "text", 't', 0, G_OPTION_ARG_STRING, &text, "Text (UTF-8)", "STRING" },
    { "text-file", 'f', 0, G_OPTION_ARG_FILENAME, &text_file, "Text file (UTF-8)", "FILE" },
    { "top", 'n', 0, G_OPTION_ARG_INT, &top, "Number of labels printed (default 3)", "N" },
    { "manifest", 0, 0, G_OPTION_ARG_FILENAME, &manifest,
        "Batch mode: TSV of label, image, audio, text file ('-' = missing)", "FILE" },
    { "predictions", 0, 0, G_OPTION_ARG_FILENAME, &predictions,
        "Batch mode: write every prediction to this TSV", "FILE" },
    { NULL } };
  GOptionContext *ctx = g_option_context_new ("- classify pictures, sounds and text");

  g_option_context_set_summary (ctx,
      "Runs a libmm model (encoders, fusion and head) on one "
      "example given as files,\nor on every example of a manifest (--manifest), printing the "
      "accuracy\nof each subset of modalities.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  gboolean parsed = g_option_context_parse (ctx, &argc, &argv, &error);
  g_option_context_free (ctx);
  ret = 2; /* usage errors below; the option strings are freed at the end */
  if (!parsed) {
    g_printerr ("mm-classify: %s\n", error->message);
    g_error_free (error);
    goto out;
  }
  if (!model) {
    g_printerr ("mm-classify: --model FILE is required (see --help)\n");
    goto out;
  }
  if (text && text_file) {
    g_printerr ("mm-classify: give --text or --text-file, not both\n");
    goto out;
  }
  if (manifest && (image || audio || text || text_file)) {
    g_printerr ("mm-classify: --manifest cannot be combined with --image/--audio/--text\n");
    goto out;
  }
  if (!manifest && !image && !audio && !text && !text_file) {
    g_printerr ("mm-classify: give --image, --audio, --text or --text-file (or --manifest)\n");
    goto out;
  }
  if (!manifest && predictions) {
    g_printerr ("mm-classify: --predictions needs --manifest\n");
    goto out;
  }
  if (top < 1)
    top = 1;

  c = classifier_new (model, &error);
  if (!c) {
    g_printerr ("mm-classify: %s\n", error->message);
    g_error_free (error);
    ret = 1;
    goto out;
  }
  if (manifest)
    ret = run_manifest (c, manifest, predictions, &error);
  else
    ret = run_single (c, image, audio, text, text_file, top, &error);
  if (ret != 0) {
    g_printerr ("mm-classify: %s\n", error ? error->message : "failed");
    g_clear_error (&error);
  }
  classifier_free (c);
out:
  g_free (model);
  g_free (image);
  g_free (audio);
  g_free (text);
  g_free (text_file);
  g_free (manifest);
  g_free (predictions);
  return ret;
}
