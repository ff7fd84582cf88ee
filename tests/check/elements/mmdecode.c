/* mmdecode element tests
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Fused inputs are made with libmm (text encoder + concat fusion of the
 * tiny fixture, fused dim 3 * 8 + 3 mask bits = 27) and the expected scores
 * with libmm's head called directly; the test sorts and formats them
 * itself.
 */
#include <string.h>
#include <math.h>

#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <mm.h>

#include "gstmmmeta.h"
#include "mmcheck.h"

#define FUSED_DIM 27
#define N_LABELS 3

#define FUSED_CAPS MM_EMBEDDING_CAPS_NAME ", modality=fused, dim=(int)27"

static GstHarness *
harness_new (const gchar *extra, GstBus **bus)
{
  GstHarness *h = mm_harness_new ("mmdecode", extra);

  if (bus) {
    *bus = gst_bus_new ();
    gst_element_set_bus (h->element, *bus);
  }
  return h;
}

static void
harness_free (GstHarness *h, GstBus *bus)
{
  if (bus) {
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
  }
  gst_harness_teardown (h);
}

/* fused (FUSED_DIM) and scores (N_LABELS) for @text as the only present
 * input, straight from libmm. */
static void
reference_model (const gchar *fixture_name, const gchar *text, gfloat *fused, gfloat *scores)
{
  gchar *path = fixture (fixture_name);
  GError *err = NULL;
  MmModel *model = mm_model_open (path, &err);
  MmContextParams params = mm_context_default_params ();
  MmTextEncoder *enc;
  MmFusion *fusion;
  MmHead *head;
  gfloat z[8];
  const float *inputs[3] = { NULL, NULL, NULL };

  fail_unless (model != NULL);
  fail_unless_equals_int (mm_model_get_dim (model, MM_COMPONENT_FUSION), FUSED_DIM);
  fail_unless_equals_int (mm_model_find_fusion_input (model, "text"), 2);
  enc = mm_text_encoder_new (model, &params, &err);
  fusion = mm_fusion_new (model, &params, &err);
  head = mm_head_new (model, &params, &err);
  fail_unless (enc && fusion && head);
  fail_unless (mm_text_encoder_encode (enc, text, -1, z, NULL, &err));
  inputs[2] = z;
  fail_unless (mm_fusion_run (fusion, inputs, fused, &err));
  fail_unless (mm_head_run (head, fused, scores, &err));
  mm_text_encoder_free (enc);
  mm_fusion_free (fusion);
  mm_head_free (head);
  mm_model_unref (model);
  g_free (path);
}

static void
reference (const gchar *text, gfloat *fused, gfloat *scores)
{
  reference_model ("tiny.safetensors", text, fused, scores);
}

static const gchar *labels[N_LABELS] = { "speech", "music", "noise" };

/* "label score, ..." for the @k best of @scores at or above @threshold. */
static gchar *
expected_text (const gfloat *scores, guint k, gdouble threshold, guint *order, guint *n_out)
{
  GString *s = g_string_new (NULL);
  guint idx[N_LABELS] = { 0, 1, 2 };
  guint i, j, n = 0;

  /* bubble sort, descending, stable */
  for (i = 0; i < N_LABELS; i++)
    for (j = 0; j + 1 < N_LABELS - i; j++)
      if (scores[idx[j]] < scores[idx[j + 1]]) {
        guint t = idx[j];
        idx[j] = idx[j + 1];
        idx[j + 1] = t;
      }
  for (i = 0; i < N_LABELS && n < k; i++) {
    if (scores[idx[i]] < threshold)
      continue;
    if (order)
      order[n] = idx[i];
    g_string_append_printf (s, "%s%s %.2f", n ? ", " : "", labels[idx[i]], scores[idx[i]]);
    n++;
  }
  if (n_out)
    *n_out = n;
  return g_string_free (s, FALSE);
}

static GstBuffer *
fused_buffer (const gfloat *fused, GstClockTime pts, GstClockTime duration)
{
  GstBuffer *buf = gst_buffer_new_memdup (fused, FUSED_DIM * sizeof (gfloat));

  GST_BUFFER_PTS (buf) = pts;
  GST_BUFFER_DURATION (buf) = duration;
  return buf;
}

static gchar *
buffer_text (GstBuffer *buf)
{
  GstMapInfo map;
  gchar *s;

  if (gst_buffer_get_size (buf) == 0)
    return g_strdup ("");
  gst_buffer_map (buf, &map, GST_MAP_READ);
  s = g_strndup ((const gchar *)map.data, map.size);
  gst_buffer_unmap (buf, &map);
  return s;
}

static GstStructure *
pop_classification (GstBus *bus)
{
  GstMessage *msg;
  GstStructure *s;

  while ((msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ELEMENT)) != NULL) {
    if (gst_message_has_name (msg, "mm-classification")) {
      s = gst_structure_copy (gst_message_get_structure (msg));
      gst_message_unref (msg);
      return s;
    }
    gst_message_unref (msg);
  }
  return NULL;
}

static guint64
get_u64 (const GstStructure *s, const gchar *field)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v), "no %s", field);
  return v;
}

static void
check_u64_array (const GstStructure *s, const gchar *field, guint64 a, guint64 b, guint64 c)
{
  const GValue *arr = gst_structure_get_value (s, field);
  guint64 expect[3] = { a, b, c };
  guint i;

  fail_unless (arr && GST_VALUE_HOLDS_ARRAY (arr), "no %s", field);
  fail_unless_equals_int (gst_value_array_get_size (arr), 3);
  for (i = 0; i < 3; i++)
    fail_unless_equals_uint64 (g_value_get_uint64 (gst_value_array_get_value (arr, i)), expect[i]);
}

/* @field is an array of doubles equal to @values (n), as floats widen. */
static void
check_double_array (const GstStructure *s, const gchar *field, const gfloat *values, guint n)
{
  const GValue *arr = gst_structure_get_value (s, field);
  guint i;

  fail_unless (arr && GST_VALUE_HOLDS_ARRAY (arr), "no %s", field);
  fail_unless_equals_int (gst_value_array_get_size (arr), n);
  for (i = 0; i < n; i++)
    fail_unless (g_value_get_double (gst_value_array_get_value (arr, i)) == (gdouble)values[i],
        "%s[%u] %.9g vs %.9g", field, i, g_value_get_double (gst_value_array_get_value (arr, i)),
        values[i]);
}

static void
check_string_array (const GstStructure *s, const gchar *field, const gchar *const *values, guint n)
{
  const GValue *arr = gst_structure_get_value (s, field);
  guint i;

  fail_unless (arr && GST_VALUE_HOLDS_ARRAY (arr), "no %s", field);
  fail_unless_equals_int (gst_value_array_get_size (arr), n);
  for (i = 0; i < n; i++)
    fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (arr, i)), values[i]);
}

GST_START_TEST (test_decision)
{
  GstBus *bus;
  GstHarness *h = harness_new (NULL, &bus);
  gfloat fused[FUSED_DIM], scores[N_LABELS];
  GstBuffer *out;
  gchar *text, *expect;
  guint order[N_LABELS], n;
  MmClassificationMeta *meta;
  GstCaps *caps;
  GstStructure *s;
  const GValue *arr;

  reference ("a guitar song and piano music", fused, scores);
  expect = expected_text (scores, 1, 0.0, order, &n);
  fail_unless_equals_int (order[0], 1); /* the fixture says "music" */

  gst_harness_set_src_caps_str (h, FUSED_CAPS);
  fail_unless_equals_int (
      gst_harness_push (h, fused_buffer (fused, 2 * GST_SECOND, GST_SECOND)), GST_FLOW_OK);
  out = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), 2 * GST_SECOND);
  fail_unless_equals_uint64 (GST_BUFFER_DURATION (out), GST_SECOND);
  text = buffer_text (out);
  fail_unless_equals_string (text, expect);
  fail_unless (g_str_has_prefix (text, "music 0."), "%s", text);

  caps = gst_pad_get_current_caps (h->sinkpad);
  s = gst_caps_get_structure (caps, 0);
  fail_unless (gst_structure_has_name (s, "text/x-raw"));
  fail_unless_equals_string (gst_structure_get_string (s, "format"), "utf8");
  gst_caps_unref (caps);

  meta = gst_buffer_get_mm_classification_meta (out);
  fail_unless (meta != NULL);
  fail_unless_equals_int (meta->n_top, 1);
  fail_unless_equals_string (g_quark_to_string (meta->label[0]), "music");
  fail_unless (fabsf (meta->score[0] - scores[1]) < 1e-6f);
  /* no MmFusionMeta on the input: every fusion input counts as present */
  fail_unless_equals_int (meta->n_inputs, 3);
  fail_unless (meta->present[0] && meta->present[1] && meta->present[2]);

  s = pop_classification (bus);
  fail_unless (s != NULL);
  fail_unless_equals_uint64 (get_u64 (s, "pts"), 2 * GST_SECOND);
  fail_unless_equals_uint64 (get_u64 (s, "duration"), GST_SECOND);
  fail_unless_equals_uint64 (get_u64 (s, "running-time"), 2 * GST_SECOND);
  fail_unless_equals_uint64 (get_u64 (s, "stream-time"), 2 * GST_SECOND);
  arr = gst_structure_get_value (s, "labels");
  fail_unless (GST_VALUE_HOLDS_ARRAY (arr));
  fail_unless_equals_int (gst_value_array_get_size (arr), 1);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (arr, 0)), "music");
  arr = gst_structure_get_value (s, "scores");
  fail_unless_equals_int (gst_value_array_get_size (arr), 1);
  fail_unless (fabs (g_value_get_double (gst_value_array_get_value (arr, 0)) - scores[1]) < 1e-6);
  arr = gst_structure_get_value (s, "present");
  fail_unless_equals_int (gst_value_array_get_size (arr), 3);
  arr = gst_structure_get_value (s, "missing");
  fail_unless (GST_VALUE_HOLDS_ARRAY (arr));
  fail_unless_equals_int (gst_value_array_get_size (arr), 0);
  fail_unless_equals_string (gst_structure_get_string (s, "present-csv"), "image,audio,text");
  fail_unless_equals_string (gst_structure_get_string (s, "missing-csv"), "");
  fail_unless_equals_string (gst_structure_get_string (s, "label"), "music");
  fail_unless_equals_string (gst_structure_get_string (s, "text"), expect);
  /* the whole output vector, in the model's order, whatever top-k says */
  fail_unless_equals_string (gst_structure_get_string (s, "kind"), "softmax");
  check_double_array (s, "outputs", scores, N_LABELS);
  check_string_array (s, "names", labels, N_LABELS);
  gst_structure_free (s);

  gst_buffer_unref (out);
  g_free (text);
  g_free (expect);
  harness_free (h, bus);
}

GST_END_TEST;

/* A harness around mmdecode with fixture @name. */
static GstHarness *
harness_new_model (const gchar *name, const gchar *extra, GstBus **bus)
{
  gchar *path = fixture (name);
  gchar *desc = g_strdup_printf ("mmdecode model=\"%s\" %s", path, extra ? extra : "");
  GstHarness *h = gst_harness_new_parse (desc);

  *bus = gst_bus_new ();
  gst_element_set_bus (h->element, *bus);
  g_free (desc);
  g_free (path);
  return h;
}

/* Sigmoid (multi-label) heads: every tag at or above the threshold, best
 * first, at most top-k of them; table-driven against libmm's head. */
GST_START_TEST (test_sigmoid)
{
  static const struct
  {
    const gchar *text;
    guint top_k;
    gdouble threshold;
  } cases[] = {
    { "a guitar song and piano music", 3, 0.5 },
    { "a guitar song and piano music", 3, 0.0 },
    { "a guitar song and piano music", 1, 0.0 },
    { "music on the news and car traffic noise", 3, 0.5 },
    { "music on the news and car traffic noise", 2, 0.5 },
    { "the dog", 3, 0.999 },
  };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstBus *bus;
    gchar *extra = g_strdup_printf ("top-k=%u threshold=%g", cases[c].top_k, cases[c].threshold);
    GstHarness *h = harness_new_model ("tiny-sigmoid.safetensors", extra, &bus);
    gfloat fused[FUSED_DIM], scores[N_LABELS];
    guint order[N_LABELS], n, i, above = 0;
    gchar *text, *expect;
    GstBuffer *out;
    GstStructure *s;
    MmClassificationMeta *meta;
    const GValue *arr;

    reference_model ("tiny-sigmoid.safetensors", cases[c].text, fused, scores);
    for (i = 0; i < N_LABELS; i++) {
      fail_unless (scores[i] >= 0.0f && scores[i] <= 1.0f);
      above += scores[i] >= cases[c].threshold;
    }
    expect = expected_text (scores, cases[c].top_k, cases[c].threshold, order, &n);
    fail_unless_equals_int (n, MIN (above, cases[c].top_k));
    gst_harness_set_src_caps_str (h, FUSED_CAPS);
    gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND));
    out = gst_harness_pull (h);
    text = buffer_text (out);
    fail_unless_equals_string (text, expect);
    meta = gst_buffer_get_mm_classification_meta (out);
    fail_unless_equals_int (meta->kind, MM_CLASSIFICATION_SIGMOID);
    fail_unless_equals_int (meta->n_top, n);
    s = pop_classification (bus);
    fail_unless_equals_string (gst_structure_get_string (s, "kind"), "sigmoid");
    arr = gst_structure_get_value (s, "labels");
    fail_unless_equals_int (gst_value_array_get_size (arr), n);
    for (i = 0; i < n; i++)
      fail_unless_equals_string (
          g_value_get_string (gst_value_array_get_value (arr, i)), labels[order[i]]);
    check_double_array (s, "outputs", scores, N_LABELS);
    check_string_array (s, "names", labels, N_LABELS);
    gst_structure_free (s);
    gst_buffer_unref (out);
    g_free (text);
    g_free (expect);
    g_free (extra);
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
    gst_harness_teardown (h);
  }
}

GST_END_TEST;

/* Regression heads: every output with its name and raw value, in the
 * model's order, negative ones included; top-k and threshold do not apply;
 * full float precision in the message and the meta. */
GST_START_TEST (test_regression)
{
  static const gchar *names[N_LABELS] = { "pressure", "temperature", "humidity" };
  static const gchar *texts[] = { "a guitar song and piano music", "the news", "the dog" };
  gboolean saw_negative = FALSE;
  guint c;

  for (c = 0; c < G_N_ELEMENTS (texts); c++) {
    GstBus *bus;
    GstHarness *h =
        harness_new_model ("tiny-regression.safetensors", "top-k=1 threshold=0.9", &bus);
    gfloat fused[FUSED_DIM], values[N_LABELS];
    GString *expect = g_string_new (NULL);
    gchar *text;
    GstBuffer *out;
    GstStructure *s;
    MmClassificationMeta *meta;
    gdouble first;
    guint i;

    reference_model ("tiny-regression.safetensors", texts[c], fused, values);
    for (i = 0; i < N_LABELS; i++) {
      gchar num[G_ASCII_DTOSTR_BUF_SIZE];

      saw_negative |= values[i] < 0.0f;
      g_ascii_formatd (num, sizeof (num), "%.3g", values[i]);
      g_string_append_printf (expect, "%s%s=%s", i ? " " : "", names[i], num);
    }
    gst_harness_set_src_caps_str (h, FUSED_CAPS);
    gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND));
    out = gst_harness_pull (h);
    text = buffer_text (out);
    fail_unless_equals_string (text, expect->str);
    meta = gst_buffer_get_mm_classification_meta (out);
    fail_unless_equals_int (meta->kind, MM_CLASSIFICATION_REGRESSION);
    fail_unless_equals_int (meta->n_top, N_LABELS);
    for (i = 0; i < N_LABELS; i++) {
      fail_unless_equals_string (g_quark_to_string (meta->label[i]), names[i]);
      fail_unless (meta->score[i] == values[i]);
      fail_unless (meta->outputs[i] == values[i]);
    }
    s = pop_classification (bus);
    fail_unless_equals_string (gst_structure_get_string (s, "kind"), "regression");
    check_string_array (s, "labels", names, N_LABELS);
    check_double_array (s, "scores", values, N_LABELS);
    check_double_array (s, "outputs", values, N_LABELS);
    check_string_array (s, "names", names, N_LABELS);
    fail_unless_equals_string (gst_structure_get_string (s, "label"), "pressure");
    fail_unless (gst_structure_get_double (s, "score", &first) && first == (gdouble)values[0]);
    fail_unless_equals_string (gst_structure_get_string (s, "text"), expect->str);
    gst_structure_free (s);
    gst_buffer_unref (out);
    g_free (text);
    g_string_free (expect, TRUE);
    gst_element_set_bus (h->element, NULL);
    gst_object_unref (bus);
    gst_harness_teardown (h);
  }
  /* the fixture gives negative values, which a threshold would have hidden */
  fail_unless (saw_negative);
}

GST_END_TEST;

/* top-k and threshold, table-driven. */
GST_START_TEST (test_top_k_threshold)
{
  static const struct
  {
    guint top_k;
    gdouble threshold;
  } cases[] = { { 1, 0.0 }, { 2, 0.0 }, { 3, 0.0 }, { 16, 0.0 }, { 3, 0.2 }, { 3, 0.5 }, { 3, 1.0 },
    { 1, 1.0 } };
  const gchar *texts[] = { "news report", "traffic noise on the street", "a dog" };
  guint c, t;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    for (t = 0; t < G_N_ELEMENTS (texts); t++) {
      gchar *extra = g_strdup_printf ("top-k=%u threshold=%g", cases[c].top_k, cases[c].threshold);
      GstBus *bus;
      GstHarness *h = harness_new (extra, &bus);
      gfloat fused[FUSED_DIM], scores[N_LABELS];
      guint order[N_LABELS], n, i;
      gchar *expect, *text;
      GstBuffer *out;
      MmClassificationMeta *meta;
      GstStructure *s;

      reference (texts[t], fused, scores);
      expect = expected_text (scores, cases[c].top_k, cases[c].threshold, order, &n);
      gst_harness_set_src_caps_str (h, FUSED_CAPS);
      gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND));
      out = gst_harness_pull (h);
      text = buffer_text (out);
      fail_unless_equals_string (text, expect);
      if (n == 0)
        fail_unless_equals_int (gst_buffer_get_size (out), 0);
      meta = gst_buffer_get_mm_classification_meta (out);
      fail_unless_equals_int (meta->n_top, n);
      for (i = 0; i < n; i++)
        fail_unless_equals_string (g_quark_to_string (meta->label[i]), labels[order[i]]);
      s = pop_classification (bus);
      fail_unless_equals_int (gst_value_array_get_size (gst_structure_get_value (s, "labels")), n);
      fail_unless_equals_int (gst_value_array_get_size (gst_structure_get_value (s, "scores")), n);
      /* the scalar fields say the same */
      fail_unless_equals_string (gst_structure_get_string (s, "text"), expect);
      fail_unless_equals_string (gst_structure_get_string (s, "label"), n ? labels[order[0]] : "");
      {
        gdouble score = -1.0;

        fail_unless (gst_structure_get_double (s, "score", &score));
        fail_unless (fabs (score - (n ? scores[order[0]] : 0.0)) < 1e-6, "%g", score);
      }
      gst_structure_free (s);
      gst_buffer_unref (out);
      g_free (text);
      g_free (expect);
      g_free (extra);
      harness_free (h, bus);
    }
  }
}

GST_END_TEST;

static void
get_scores (GstBus *bus, gfloat *out_by_label)
{
  GstStructure *s = pop_classification (bus);
  const GValue *l, *v;
  guint i, j;

  fail_unless (s != NULL);
  l = gst_structure_get_value (s, "labels");
  v = gst_structure_get_value (s, "scores");
  fail_unless_equals_int (gst_value_array_get_size (l), N_LABELS);
  for (i = 0; i < N_LABELS; i++)
    for (j = 0; j < N_LABELS; j++)
      if (g_str_equal (g_value_get_string (gst_value_array_get_value (l, i)), labels[j]))
        out_by_label[j] = g_value_get_double (gst_value_array_get_value (v, i));
  gst_structure_free (s);
}

/* smoothed = s * previous + (1 - s) * current; reset by a flush, by a
 * DISCONT buffer and (per score) after a non-finite one. */
GST_START_TEST (test_smoothing)
{
  const gdouble factors[] = { 0.0, 0.5, 0.9, 0.99 };
  guint f, i;

  for (f = 0; f < G_N_ELEMENTS (factors); f++) {
    gchar *extra = g_strdup_printf ("top-k=3 smoothing=%g", factors[f]);
    GstBus *bus;
    GstHarness *h = harness_new (extra, &bus);
    gfloat fa[FUSED_DIM], fb[FUSED_DIM], sa[N_LABELS], sb[N_LABELS];
    gfloat got[N_LABELS], expect[N_LABELS];
    GstSegment segment;
    gdouble s = factors[f];

    reference ("music music", fa, sa);
    reference ("engine traffic", fb, sb);
    gst_harness_set_src_caps_str (h, FUSED_CAPS);

    gst_harness_push (h, fused_buffer (fa, 0, GST_SECOND));
    get_scores (bus, got);
    for (i = 0; i < N_LABELS; i++)
      fail_unless (fabsf (got[i] - sa[i]) < 1e-6f);

    gst_harness_push (h, fused_buffer (fb, GST_SECOND, GST_SECOND));
    get_scores (bus, got);
    for (i = 0; i < N_LABELS; i++) {
      expect[i] = s * sa[i] + (1 - s) * sb[i];
      fail_unless (fabsf (got[i] - expect[i]) < 1e-5f, "%g vs %g", got[i], expect[i]);
    }
    /* even the largest smoothing still moves towards the new scores */
    {
      gfloat moved = 0.0f;

      for (i = 0; i < N_LABELS; i++)
        moved = MAX (moved, fabsf (got[i] - sa[i]));
      fail_unless (moved > 1e-4f, "smoothing %g: scores did not move (%g)", s, moved);
    }

    gst_harness_push (h, fused_buffer (fb, 2 * GST_SECOND, GST_SECOND));
    get_scores (bus, got);
    for (i = 0; i < N_LABELS; i++) {
      expect[i] = s * expect[i] + (1 - s) * sb[i];
      fail_unless (fabsf (got[i] - expect[i]) < 1e-5f);
    }

    /* a flush forgets the past */
    fail_unless (gst_harness_push_event (h, gst_event_new_flush_start ()));
    fail_unless (gst_harness_push_event (h, gst_event_new_flush_stop (TRUE)));
    gst_segment_init (&segment, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));
    gst_harness_push (h, fused_buffer (fa, 0, GST_SECOND));
    get_scores (bus, got);
    for (i = 0; i < N_LABELS; i++)
      fail_unless (fabsf (got[i] - sa[i]) < 1e-6f);

    /* so does a DISCONT buffer */
    {
      GstBuffer *b = fused_buffer (fb, 5 * GST_SECOND, GST_SECOND);

      GST_BUFFER_FLAG_SET (b, GST_BUFFER_FLAG_DISCONT);
      gst_harness_push (h, b);
      get_scores (bus, got);
      for (i = 0; i < N_LABELS; i++)
        fail_unless (fabsf (got[i] - sb[i]) < 1e-6f, "%g vs %g", got[i], sb[i]);
    }

    /* a NaN input does not crash, and does not poison the average: if
     * its scores are not finite (no labels reported), the next decision is
     * the fresh scores; if libmm turned it into finite scores, those are
     * averaged as usual */
    {
      gfloat nan_fused[FUSED_DIM], prev[N_LABELS];
      GstStructure *st;
      gboolean finite;

      for (i = 0; i < FUSED_DIM; i++)
        nan_fused[i] = NAN;
      gst_harness_push (h, fused_buffer (nan_fused, 6 * GST_SECOND, GST_SECOND));
      st = pop_classification (bus);
      fail_unless (st != NULL);
      finite = gst_value_array_get_size (gst_structure_get_value (st, "labels")) == N_LABELS;
      gst_structure_free (st);
      if (finite) {
        gst_harness_push (h, fused_buffer (nan_fused, 6 * GST_SECOND, GST_SECOND));
        get_scores (bus, prev);
      }
      gst_harness_push (h, fused_buffer (fa, 7 * GST_SECOND, GST_SECOND));
      get_scores (bus, got);
      for (i = 0; i < N_LABELS; i++) {
        expect[i] = finite ? s * prev[i] + (1 - s) * sa[i] : sa[i];
        fail_unless (
            isfinite (got[i]) && fabsf (got[i] - expect[i]) < 1e-5f, "%g vs %g", got[i], expect[i]);
      }
    }

    gst_buffer_unref (gst_harness_pull (h));
    g_free (extra);
    harness_free (h, bus);
  }
}

GST_END_TEST;

/* Presence from MmFusionMeta; times from the segment. */
GST_START_TEST (test_presence_and_times)
{
  GstBus *bus;
  GstHarness *h = harness_new (NULL, &bus);
  gfloat fused[FUSED_DIM], scores[N_LABELS];
  GstBuffer *in, *out;
  MmFusionMeta *fmeta;
  MmClassificationMeta *meta;
  GstSegment segment;
  GstStructure *s;
  const GValue *arr;

  reference ("the news", fused, scores);
  gst_harness_set_src_caps_str (h, FUSED_CAPS);
  gst_segment_init (&segment, GST_FORMAT_TIME);
  segment.start = 10 * GST_SECOND;
  segment.time = 100 * GST_SECOND;
  segment.base = GST_SECOND;
  fail_unless (gst_harness_push_event (h, gst_event_new_segment (&segment)));

  in = fused_buffer (fused, 12 * GST_SECOND, 500 * GST_MSECOND);
  fmeta = gst_buffer_add_mm_fusion_meta (in, 3);
  fmeta->modality[0] = g_quark_from_string ("image");
  fmeta->modality[1] = g_quark_from_string ("audio");
  fmeta->modality[2] = g_quark_from_string ("text");
  fmeta->present[0] = TRUE;
  fmeta->present[2] = TRUE;
  fmeta->pts[0] = 12 * GST_SECOND;
  fmeta->duration[0] = 500 * GST_MSECOND; /* the drive frame: covers the decision */
  fmeta->pts[2] = 11 * GST_SECOND;
  fmeta->duration[2] = 250 * GST_MSECOND; /* a cue that ended 750 ms before */
  {
    GstBuffer *copy = gst_buffer_copy (in);
    MmFusionMeta *fm = gst_buffer_get_mm_fusion_meta (copy);

    fail_unless (fm != NULL && fm != fmeta);
    fail_unless_equals_int (fm->n_inputs, 3);
    fail_unless (fm->present[0] && !fm->present[1] && fm->present[2]);
    fail_unless_equals_uint64 (fm->pts[2], 11 * GST_SECOND);
    fail_unless_equals_uint64 (fm->duration[2], 250 * GST_MSECOND);
    fail_unless_equals_uint64 (fm->pts[1], GST_CLOCK_TIME_NONE);
    fail_unless_equals_uint64 (fm->duration[1], GST_CLOCK_TIME_NONE);
    gst_buffer_unref (copy);
  }
  gst_harness_push (h, in);
  out = gst_harness_pull (h);

  meta = gst_buffer_get_mm_classification_meta (out);
  fail_unless_equals_int (meta->n_inputs, 3);
  fail_unless (meta->present[0] && !meta->present[1] && meta->present[2]);
  fail_unless_equals_string (g_quark_to_string (meta->modality[1]), "audio");
  /* provenance: PTS, duration and age at the decision (12 s) per input */
  fail_unless_equals_uint64 (meta->pts[0], 12 * GST_SECOND);
  fail_unless_equals_uint64 (meta->duration[0], 500 * GST_MSECOND);
  fail_unless_equals_uint64 (meta->age[0], 0);
  fail_unless_equals_uint64 (meta->pts[1], GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64 (meta->duration[1], GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64 (meta->age[1], GST_CLOCK_TIME_NONE);
  fail_unless_equals_uint64 (meta->pts[2], 11 * GST_SECOND);
  fail_unless_equals_uint64 (meta->duration[2], 250 * GST_MSECOND);
  fail_unless_equals_uint64 (meta->age[2], 750 * GST_MSECOND);
  fail_unless_equals_int (meta->kind, MM_CLASSIFICATION_SOFTMAX);
  fail_unless_equals_int (meta->n_outputs, N_LABELS);
  fail_unless (meta->outputs[0] == scores[0] && meta->outputs[2] == scores[2]);
  /* the meta survives a copy (its transform function) */
  {
    GstBuffer *copy = gst_buffer_copy (out);
    MmClassificationMeta *cm = gst_buffer_get_mm_classification_meta (copy);

    fail_unless (cm != NULL && cm != meta);
    fail_unless_equals_int (cm->n_top, meta->n_top);
    fail_unless (cm->label[0] == meta->label[0]);
    fail_unless (cm->score[0] == meta->score[0]);
    fail_unless_equals_int (cm->n_inputs, 3);
    fail_unless (cm->present[0] && !cm->present[1] && cm->present[2]);
    fail_unless_equals_uint64 (cm->age[2], 750 * GST_MSECOND);
    fail_unless_equals_uint64 (cm->duration[2], 250 * GST_MSECOND);
    fail_unless (cm->outputs != meta->outputs && cm->n_outputs == N_LABELS);
    fail_unless (memcmp (cm->outputs, meta->outputs, N_LABELS * sizeof (gfloat)) == 0);
    fail_unless (gst_buffer_get_mm_classification_structure (copy) != NULL);
    gst_buffer_unref (copy);
  }

  s = pop_classification (bus);
  /* the structure meta (for bindings) holds exactly the message's fields */
  fail_unless (gst_structure_is_equal (gst_buffer_get_mm_classification_structure (out), s));
  check_u64_array (s, "input-pts", 12 * GST_SECOND, GST_CLOCK_TIME_NONE, 11 * GST_SECOND);
  check_u64_array (s, "input-duration", 500 * GST_MSECOND, GST_CLOCK_TIME_NONE, 250 * GST_MSECOND);
  check_u64_array (s, "input-age", 0, GST_CLOCK_TIME_NONE, 750 * GST_MSECOND);
  arr = gst_structure_get_value (s, "input-present");
  fail_unless_equals_int (gst_value_array_get_size (arr), 3);
  fail_unless (g_value_get_boolean (gst_value_array_get_value (arr, 0)));
  fail_if (g_value_get_boolean (gst_value_array_get_value (arr, 1)));
  fail_unless (g_value_get_boolean (gst_value_array_get_value (arr, 2)));
  arr = gst_structure_get_value (s, "inputs");
  fail_unless_equals_int (gst_value_array_get_size (arr), 3);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (arr, 2)), "text");
  fail_unless_equals_uint64 (get_u64 (s, "pts"), 12 * GST_SECOND);
  fail_unless_equals_uint64 (get_u64 (s, "duration"), 500 * GST_MSECOND);
  fail_unless_equals_uint64 (get_u64 (s, "running-time"), 3 * GST_SECOND);
  fail_unless_equals_uint64 (get_u64 (s, "stream-time"), 102 * GST_SECOND);
  arr = gst_structure_get_value (s, "present");
  fail_unless_equals_int (gst_value_array_get_size (arr), 2);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (arr, 0)), "image");
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (arr, 1)), "text");
  arr = gst_structure_get_value (s, "missing");
  fail_unless_equals_int (gst_value_array_get_size (arr), 1);
  fail_unless_equals_string (g_value_get_string (gst_value_array_get_value (arr, 0)), "audio");
  fail_unless_equals_string (gst_structure_get_string (s, "present-csv"), "image,text");
  fail_unless_equals_string (gst_structure_get_string (s, "missing-csv"), "audio");
  gst_structure_free (s);
  gst_buffer_unref (out);
  harness_free (h, bus);
}

GST_END_TEST;

/* Fused caps naming another model (same dim) are decoded with a warning;
 * naming this model, or none, without. */
GST_START_TEST (test_other_model_warning)
{
  static const struct
  {
    const gchar *model;
    gboolean warns;
  } cases[] = { { NULL, FALSE }, { "tiny", FALSE }, { "other", TRUE } };
  guint c;

  for (c = 0; c < G_N_ELEMENTS (cases); c++) {
    GstBus *bus;
    GstHarness *h = harness_new (NULL, &bus);
    gchar *caps = cases[c].model ? g_strdup_printf ("%s, model=%s", FUSED_CAPS, cases[c].model)
                                 : g_strdup (FUSED_CAPS);
    gfloat fused[FUSED_DIM] = { 0 };

    gst_harness_set_src_caps_str (h, caps);
    fail_unless_equals_int (gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND)), GST_FLOW_OK);
    gst_buffer_unref (gst_harness_pull (h));
    if (cases[c].warns)
      assert_bus_message (bus, GST_MESSAGE_WARNING, "\"other\"", "\"tiny\"", NULL);
    fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING) == NULL, "case %u", c);
    g_free (caps);
    harness_free (h, bus);
  }
}

GST_END_TEST;

/* Downstream refusing the text caps is a clear negotiation error. */
GST_START_TEST (test_downstream_refuses)
{
  GstBus *bus;
  GstHarness *h = harness_new (NULL, &bus);
  gfloat fused[FUSED_DIM] = { 0 };

  gst_harness_set_sink_caps_str (h, "text/x-raw, format=pango-markup");
  gst_harness_set_src_caps_str (h, FUSED_CAPS);
  fail_unless_equals_int (
      gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND)), GST_FLOW_NOT_NEGOTIATED);
  assert_bus_message (bus, GST_MESSAGE_ERROR, "refuses its output", "utf8", NULL);
  harness_free (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_caps)
{
  GstBus *bus;
  GstHarness *h = harness_new (NULL, &bus);
  GstPad *sinkpad = gst_element_get_static_pad (h->element, "sink");
  GstCaps *caps;
  GstMessage *msg;
  GError *err = NULL;
  gint dim = 0;
  gfloat fused[FUSED_DIM] = { 0 };

  caps = gst_caps_from_string (MM_EMBEDDING_CAPS_NAME ", modality=text, dim=(int)27");
  fail_if (gst_pad_query_accept_caps (sinkpad, caps));
  gst_caps_unref (caps);
  caps = gst_caps_from_string ("text/x-raw, format=utf8");
  fail_if (gst_pad_query_accept_caps (sinkpad, caps));
  gst_caps_unref (caps);

  /* the caps query names the model's fused dimension */
  caps = gst_pad_query_caps (sinkpad, NULL);
  fail_unless (gst_structure_get_int (gst_caps_get_structure (caps, 0), "dim", &dim));
  fail_unless_equals_int (dim, FUSED_DIM);
  gst_caps_unref (caps);

  /* another dimension fails with an error naming both */
  gst_harness_set_src_caps_str (h, MM_EMBEDDING_CAPS_NAME ", modality=fused, dim=(int)16");
  fail_unless_equals_int (
      gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND)), GST_FLOW_NOT_NEGOTIATED);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (strstr (err->message, "16") && strstr (err->message, "27"), "%s", err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_object_unref (sinkpad);
  harness_free (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_bad_buffer_size)
{
  GstBus *bus;
  GstHarness *h = harness_new (NULL, &bus);
  gfloat fused[FUSED_DIM] = { 0 };
  GstBuffer *buf = gst_buffer_new_memdup (fused, 5);
  GstMessage *msg;

  gst_harness_set_src_caps_str (h, FUSED_CAPS);
  fail_unless_equals_int (gst_harness_push (h, buf), GST_FLOW_ERROR);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_unref (msg);
  harness_free (h, bus);
}

GST_END_TEST;

GST_START_TEST (test_gap_and_eos)
{
  GstHarness *h = harness_new (NULL, NULL);
  gfloat fused[FUSED_DIM] = { 0 };
  GstEvent *ev;
  gboolean gap = FALSE, eos = FALSE;

  gst_harness_set_src_caps_str (h, FUSED_CAPS);
  gst_harness_push (h, fused_buffer (fused, 0, GST_SECOND));
  fail_unless (gst_harness_push_event (h, gst_event_new_gap (GST_SECOND, GST_SECOND)));
  fail_unless (gst_harness_push_event (h, gst_event_new_eos ()));
  fail_unless_equals_int (gst_harness_buffers_received (h), 1);
  while ((ev = gst_harness_try_pull_event (h)) != NULL) {
    gap |= GST_EVENT_TYPE (ev) == GST_EVENT_GAP;
    eos |= GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
  }
  fail_unless (gap && eos);
  harness_free (h, NULL);
}

GST_END_TEST;

GST_START_TEST (test_properties)
{
  GstElement *e = gst_element_factory_make ("mmdecode", NULL);
  GObjectClass *klass = G_OBJECT_GET_CLASS (e);
  GParamSpecUInt *k = (GParamSpecUInt *)g_object_class_find_property (klass, "top-k");
  GParamSpecDouble *t = (GParamSpecDouble *)g_object_class_find_property (klass, "threshold");
  GParamSpecDouble *s = (GParamSpecDouble *)g_object_class_find_property (klass, "smoothing");
  guint top_k;
  gdouble threshold, smoothing;

  fail_unless_equals_int (k->minimum, 1);
  fail_unless_equals_int (k->maximum, MM_MAX_TOP);
  fail_unless_equals_int (k->default_value, 1);
  fail_unless (t->minimum == 0.0 && t->maximum == 1.0 && t->default_value == 0.0);
  fail_unless (s->minimum == 0.0 && s->maximum == 0.99 && s->default_value == 0.0);
  /* 1 (scores frozen forever) is out of range: validation clamps it, as
   * g_object_set would after a warning */
  {
    GValue v = G_VALUE_INIT;

    g_value_init (&v, G_TYPE_DOUBLE);
    g_value_set_double (&v, 1.0);
    fail_unless (g_param_value_validate (G_PARAM_SPEC (s), &v));
    fail_unless (g_value_get_double (&v) == 0.99);
    g_value_set_double (&v, 0.99);
    fail_if (g_param_value_validate (G_PARAM_SPEC (s), &v));
    g_value_unset (&v);
  }
  g_object_set (e, "top-k", 3, "threshold", 0.25, "smoothing", 0.75, NULL);
  g_object_get (e, "top-k", &top_k, "threshold", &threshold, "smoothing", &smoothing, NULL);
  fail_unless_equals_int (top_k, 3);
  fail_unless (threshold == 0.25 && smoothing == 0.75);
  gst_object_unref (e);
}

GST_END_TEST;

GST_START_TEST (test_model_errors)
{
  check_model_errors ("mmdecode", "head");
}

GST_END_TEST;

static Suite *
mmdecode_suite (void)
{
  Suite *s = suite_create ("mmdecode");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_decision);
  tcase_add_test (tc, test_top_k_threshold);
  tcase_add_test (tc, test_smoothing);
  tcase_add_test (tc, test_sigmoid);
  tcase_add_test (tc, test_regression);
  tcase_add_test (tc, test_presence_and_times);
  tcase_add_test (tc, test_caps);
  tcase_add_test (tc, test_downstream_refuses);
  tcase_add_test (tc, test_other_model_warning);
  tcase_add_test (tc, test_bad_buffer_size);
  tcase_add_test (tc, test_gap_and_eos);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_model_errors);
  return s;
}

GST_CHECK_MAIN (mmdecode);
