/* libmm from many threads at once (issue 14): models opened and released
 * from 8 threads, and the encoders of one shared model run in parallel,
 * each thread with its own contexts, against a serial run of the same
 * inputs.  Run in the normal suite and, for data races, in the TSan build
 * (sh tests/run.sh tsan).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <string.h>

#include "mm.h"

#define N_THREADS 8

/* ---------------------------------------------------------------------- */
/* Opening and releasing                                                   */

/* the bundled model (relative to MM_FIXTURES) and fixtures of every family */
static const char *const model_files[] = {
  "../../models/scenes.safetensors",
  "tiny.safetensors",
  "tiny-attn.safetensors",
  "text/bert-tiny.safetensors",
  "text/wordvec.safetensors",
  "encoders/resnet-small.safetensors",
  "encoders/audio.safetensors",
};
#define N_MODELS G_N_ELEMENTS (model_files)
#define OPEN_ROUNDS 6

typedef struct
{
  const char *fixtures;
  guint index;
  char *names[N_MODELS]; /* what each open model called itself */
} OpenJob;

static gpointer
open_release_worker (gpointer data)
{
  OpenJob *job = data;
  for (guint r = 0; r < OPEN_ROUNDS; r++) {
    /* each thread walks the list from its own place, so first opens, last
     * releases and reopens of the same file meet in different orders */
    for (guint k = 0; k < N_MODELS; k++) {
      guint i = (k + job->index + r) % N_MODELS;
      char *path = g_build_filename (job->fixtures, model_files[i], NULL);
      GError *err = NULL;
      MmModel *m = mm_model_open (path, &err);
      if (!m)
        g_error ("%s", err->message);
      /* a second reference taken and dropped while others release theirs */
      MmModel *again = mm_model_ref (m);
      if (!job->names[i])
        job->names[i] = g_strdup (mm_model_get_name (m));
      else
        g_assert_cmpstr (job->names[i], ==, mm_model_get_name (m));
      mm_model_unref (again);
      mm_model_unref (m);
      g_free (path);
    }
  }
  return NULL;
}

static void
test_open_release (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  OpenJob jobs[N_THREADS] = { 0 };
  GThread *t[N_THREADS];
  for (guint i = 0; i < N_THREADS; i++) {
    jobs[i].fixtures = fixtures;
    jobs[i].index = i;
    t[i] = g_thread_new ("open-release", open_release_worker, &jobs[i]);
  }
  for (guint i = 0; i < N_THREADS; i++)
    g_thread_join (t[i]);
  /* every thread saw the same model behind each file */
  for (guint i = 0; i < N_THREADS; i++)
    for (guint m = 0; m < N_MODELS; m++) {
      g_assert_cmpstr (jobs[i].names[m], ==, jobs[0].names[m]);
      if (i > 0)
        g_free (jobs[i].names[m]);
    }
  for (guint m = 0; m < N_MODELS; m++)
    g_free (jobs[0].names[m]);
}

/* ---------------------------------------------------------------------- */
/* Encoders of one model in parallel                                       */

static const char *const texts[] = {
  "a dog barks in the park",
  "the government said on tuesday that police officials",
  "", /* no token */
  "rain over the city, two people walk home",
};
#define N_TEXTS G_N_ELEMENTS (texts)
#define N_IMAGES 3
#define N_AUDIO 3
#define PARALLEL_ROUNDS 2

typedef struct
{
  MmModel *model;
  guint image_w, image_h;
  gsize audio_len;
  guint8 *images[N_IMAGES];
  float *audio[N_AUDIO];
  guint dim_text, dim_image, dim_audio;
  /* serial reference embeddings */
  float *ref_text, *ref_image, *ref_audio;
} Shared;

typedef struct
{
  const Shared *s;
  guint index;
  float worst; /* largest difference from the serial run */
} EncodeJob;

static void
make_inputs (Shared *s)
{
  /* odd sizes, so the resize path runs too */
  s->image_w = 97;
  s->image_h = 61;
  for (guint k = 0; k < N_IMAGES; k++) {
    s->images[k] = g_malloc (s->image_w * s->image_h * 3);
    for (guint p = 0; p < s->image_w * s->image_h * 3; p++)
      s->images[k][p] = (guint8)((p * (k + 3) + (p / 7) * 13 + k * 41) & 0xff);
  }
  guint rate = mm_model_get_audio_rate (s->model);
  s->audio_len = mm_model_get_audio_window (s->model);
  for (guint k = 0; k < N_AUDIO; k++) {
    s->audio[k] = g_new (float, s->audio_len);
    for (gsize i = 0; i < s->audio_len; i++)
      s->audio[k][i] = 0.4f * sinf (2.0f * (float)G_PI * (220.0f * (k + 1)) * i / rate)
          + 0.05f * sinf ((float)i * 0.37f * (k + 1));
  }
}

/* Runs every input through fresh contexts on the shared model (an encoder
 * error fails the test). */
static void
encode_all (const Shared *s, float *text, float *image, float *audio)
{
  MmContextParams p = mm_context_default_params ();
  GError *err = NULL;
  MmTextEncoder *te = mm_text_encoder_new (s->model, &p, &err);
  g_assert_no_error (err);
  MmImageEncoder *ie = mm_image_encoder_new (s->model, &p, &err);
  g_assert_no_error (err);
  MmAudioEncoder *ae = mm_audio_encoder_new (s->model, &p, &err);
  g_assert_no_error (err);
  for (guint k = 0; k < N_TEXTS; k++)
    if (!mm_text_encoder_encode (te, texts[k], -1, text + k * s->dim_text, NULL, &err))
      g_error ("text %u: %s", k, err->message);
  for (guint k = 0; k < N_IMAGES; k++)
    if (!mm_image_encoder_encode (ie, MM_PIXEL_RGB, s->images[k], s->image_w, s->image_h,
            s->image_w * 3, image + k * s->dim_image, &err))
      g_error ("image %u: %s", k, err->message);
  for (guint k = 0; k < N_AUDIO; k++)
    if (!mm_audio_encoder_encode (ae, s->audio[k], s->audio_len, audio + k * s->dim_audio, &err))
      g_error ("audio %u: %s", k, err->message);
  mm_text_encoder_free (te);
  mm_image_encoder_free (ie);
  mm_audio_encoder_free (ae);
}

static float
max_diff (const float *a, const float *b, gsize n)
{
  float worst = 0;
  for (gsize i = 0; i < n; i++) {
    float d = fabsf (a[i] - b[i]);
    if (!(d <= worst)) /* NaN counts as the worst */
      worst = isnan (d) ? INFINITY : d;
  }
  return worst;
}

static gpointer
encode_worker (gpointer data)
{
  EncodeJob *job = data;
  const Shared *s = job->s;
  float *text = g_new (float, N_TEXTS * s->dim_text);
  float *image = g_new (float, N_IMAGES * s->dim_image);
  float *audio = g_new (float, N_AUDIO * s->dim_audio);
  for (guint r = 0; r < PARALLEL_ROUNDS; r++) {
    encode_all (s, text, image, audio);
    job->worst = MAX (job->worst, max_diff (text, s->ref_text, N_TEXTS * s->dim_text));
    job->worst = MAX (job->worst, max_diff (image, s->ref_image, N_IMAGES * s->dim_image));
    job->worst = MAX (job->worst, max_diff (audio, s->ref_audio, N_AUDIO * s->dim_audio));
  }
  g_free (text);
  g_free (image);
  g_free (audio);
  return NULL;
}

static void
test_encoders_parallel (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  char *path = g_build_filename (fixtures, model_files[0], NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_test_skip ("no models/scenes.safetensors");
    g_free (path);
    return;
  }
  Shared s = { 0 };
  GError *err = NULL;
  s.model = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_free (path);
  g_assert_true (mm_model_has_component (s.model, MM_COMPONENT_TEXT));
  g_assert_true (mm_model_has_component (s.model, MM_COMPONENT_IMAGE));
  g_assert_true (mm_model_has_component (s.model, MM_COMPONENT_AUDIO));
  s.dim_text = mm_model_get_dim (s.model, MM_COMPONENT_TEXT);
  s.dim_image = mm_model_get_dim (s.model, MM_COMPONENT_IMAGE);
  s.dim_audio = mm_model_get_dim (s.model, MM_COMPONENT_AUDIO);
  make_inputs (&s);

  /* serial reference, one thread */
  s.ref_text = g_malloc (sizeof (float) * N_TEXTS * s.dim_text);
  s.ref_image = g_malloc (sizeof (float) * N_IMAGES * s.dim_image);
  s.ref_audio = g_malloc (sizeof (float) * N_AUDIO * s.dim_audio);
  encode_all (&s, s.ref_text, s.ref_image, s.ref_audio);
  /* the inputs give different embeddings (the comparison is not vacuous) */
  g_assert_cmpfloat (max_diff (s.ref_image, s.ref_image + s.dim_image, s.dim_image), >, 1e-4);
  g_assert_cmpfloat (max_diff (s.ref_audio, s.ref_audio + s.dim_audio, s.dim_audio), >, 1e-4);
  g_assert_cmpfloat (max_diff (s.ref_text, s.ref_text + s.dim_text, s.dim_text), >, 1e-4);

  /* 8 threads, each with its own text, image and audio contexts on the
   * same MmModel, all encoding at once */
  EncodeJob jobs[N_THREADS] = { 0 };
  GThread *t[N_THREADS];
  for (guint i = 0; i < N_THREADS; i++) {
    jobs[i].s = &s;
    jobs[i].index = i;
    t[i] = g_thread_new ("encode", encode_worker, &jobs[i]);
  }
  float worst = 0;
  for (guint i = 0; i < N_THREADS; i++) {
    g_thread_join (t[i]);
    worst = MAX (worst, jobs[i].worst);
  }
  g_test_message ("largest difference from the serial run over %d threads x %d rounds: %g",
      N_THREADS, PARALLEL_ROUNDS, worst);
  g_assert_cmpfloat (worst, <=, 1e-6);

  for (guint k = 0; k < N_IMAGES; k++)
    g_free (s.images[k]);
  for (guint k = 0; k < N_AUDIO; k++)
    g_free (s.audio[k]);
  g_free (s.ref_text);
  g_free (s.ref_image);
  g_free (s.ref_audio);
  mm_model_unref (s.model);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/concurrency/open-release-8-threads", test_open_release);
  g_test_add_func ("/concurrency/encoders-parallel", test_encoders_parallel);
  return g_test_run ();
}
