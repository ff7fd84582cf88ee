/* libmm graph executor tests: every operator case against numpy
 * (tests/fixtures/graph/make_graph.py), the fused image network through
 * the image encoder, buffer reuse and zero allocations per run, and a case
 * per kind of hostile graph (each a GError naming the problem, never a
 * crash and never a large allocation).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include <math.h>
#include <string.h>

#include "alloc-count.h"
#include "graph.h"
#include "mm-private.h"
#include "ops.h"
#include "preprocess.h"

static char *
fixture (const char *name)
{
  const char *dir = g_getenv ("MM_FIXTURES");
  g_assert_nonnull (dir);
  return g_build_filename (dir, "graph", name, NULL);
}

static const MmTensor *
test_tensor (MmModel *m, const char *name)
{
  const MmTensor *t = mm_safetensors_find (m->st, name);
  g_assert_nonnull (t);
  return t;
}

/* max |a - b| / max (max |b|, 1e-3) */
static double
rel_err (const float *a, const float *b, gsize n)
{
  double d = 0.0, ref = 1e-3;
  for (gsize i = 0; i < n; i++) {
    if (isnan (a[i]) != isnan (b[i]))
      return INFINITY;
    d = MAX (d, fabs ((double)a[i] - b[i]));
    ref = MAX (ref, fabs ((double)b[i]));
  }
  return d / ref;
}

/* ---- every operator case, fast and reference paths ---- */

static gboolean
run_op_case (const char *name, gboolean reference)
{
  char *file = g_strdup_printf ("ops-%s.safetensors", name);
  char *path = fixture (file);
  GError *err = NULL;
  /* the plan is made at load: channel-first (im2col) under the reference
   * path, channel-last convs otherwise */
  mm_ops_set_reference (reference);
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  const MmTensor *x = test_tensor (m, "test.x"), *y = test_tensor (m, "test.y");
  MmHead *head = mm_head_new (m, NULL, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (mm_model_get_n_outputs (m), ==, y->n_elements);
  float *out = g_new (float, y->n_elements);
  mm_ops_set_reference (reference);
  g_assert_true (mm_head_run (head, x->data, out, &err));
  mm_ops_set_reference (FALSE);
  double e = rel_err (out, y->data, y->n_elements);
  if (!(e <= 1e-4))
    g_printerr ("%s (%s): relative error %g\n", name, reference ? "reference" : "fast", e);
  g_free (out);
  mm_head_free (head);
  mm_model_unref (m);
  g_free (path);
  g_free (file);
  return e <= 1e-4;
}

static void
test_ops (void)
{
  char *path = fixture ("ops.json"), *text;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  JsonParser *p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, text, -1, NULL));
  JsonArray *a = json_node_get_array (json_parser_get_root (p));
  g_assert_cmpuint (json_array_get_length (a), >=, 80);
  guint failed = 0;
  for (guint i = 0; i < json_array_get_length (a); i++) {
    failed += !run_op_case (json_array_get_string_element (a, i), FALSE);
    failed += !run_op_case (json_array_get_string_element (a, i), TRUE);
  }
  g_assert_cmpuint (failed, ==, 0);
  g_object_unref (p);
  g_free (text);
  g_free (path);
}

/* ---- the image network through the public image encoder ---- */

static void
encode_image_net (MmModel *m, MmImageEncoder *enc, float *out)
{
  const MmTensor *px = test_tensor (m, "test.pixels");
  guint w, h;
  g_assert_true (mm_model_get_image_size (m, &w, &h));
  guint8 *rgb = g_new (guint8, px->n_elements);
  for (gsize i = 0; i < px->n_elements; i++)
    rgb[i] = (guint8)px->data[i];
  GError *err = NULL;
  g_assert_true (mm_image_encoder_encode (enc, MM_PIXEL_RGB, rgb, w, h, 3 * w, out, &err));
  g_assert_no_error (err);
  g_free (rgb);
}

static void
test_image_net (void)
{
  char *path = fixture ("image-net.safetensors");
  for (int ref = 0; ref < 2; ref++) {
    GError *err = NULL;
    mm_ops_set_reference (ref);
    MmModel *m = mm_model_open (path, &err);
    g_assert_no_error (err);
    g_assert_cmpstr (mm_model_get_component_type (m, MM_COMPONENT_IMAGE), ==, "graph");
    g_assert_cmpuint (mm_model_get_dim (m, MM_COMPONENT_IMAGE), ==, 5);
    MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
    g_assert_no_error (err);
    float out[5];
    const MmTensor *y = test_tensor (m, "test.y");
    encode_image_net (m, enc, out);
    mm_ops_set_reference (FALSE);
    g_assert_cmpfloat (rel_err (out, y->data, 5), <=, 1e-4);
    mm_image_encoder_free (enc);
    mm_model_unref (m);
  }
  g_free (path);
}

/* text: WordPiece ids, mask and types into the graph, masked mean out */
static void
test_text_net (void)
{
  char *path = fixture ("text-net.safetensors");
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_cmpstr (mm_model_get_component_type (m, MM_COMPONENT_TEXT), ==, "graph");
  MmTextEncoder *enc = mm_text_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  float out[4];
  guint n = 0;
  g_assert_true (mm_text_encoder_encode (enc, "A dog barks", -1, out, &n, &err));
  g_assert_no_error (err);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmpfloat (rel_err (out, test_tensor (m, "test.y")->data, 4), <=, 1e-5);
  mm_text_encoder_free (enc);
  mm_model_unref (m);
  g_free (path);
}

/* audio: the raw window, zero-padded; longer input is refused */
static void
test_audio_waveform (void)
{
  char *path = fixture ("audio-wave.safetensors");
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (mm_model_get_audio_window (m), ==, 100);
  MmAudioEncoder *enc = mm_audio_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  float x[101], out[1];
  double want = 0.0;
  const float *w = test_tensor (m, "audio.w")->data;
  for (int i = 0; i < 101; i++)
    x[i] = (float)sin (i * 0.3);
  for (int i = 0; i < 60; i++)
    want += (double)w[i] * x[i];
  g_assert_true (mm_audio_encoder_encode (enc, x, 60, out, &err));
  g_assert_no_error (err);
  g_assert_cmpfloat (fabs (out[0] - want), <=, 1e-5 * MAX (fabs (want), 1.0));
  g_assert_false (mm_audio_encoder_encode (enc, x, 101, out, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_INPUT);
  g_clear_error (&err);
  mm_audio_encoder_free (enc);
  mm_model_unref (m);
  g_free (path);
}

/* audio: libmm's log-mel, time-major, into the graph */
static void
test_audio_logmel (void)
{
  char *path = fixture ("audio-logmel.safetensors");
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  MmAudioEncoder *enc = mm_audio_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  float x[256], out[8], mel[8 * 7], want[8] = { 0 };
  for (int i = 0; i < 256; i++)
    x[i] = (float)(0.5 * sin (i * 0.2) + 0.1 * cos (i * 1.7));
  g_assert_true (mm_audio_encoder_encode (enc, x, 256, out, &err));
  g_assert_no_error (err);
  MmMelParams p = { 16000, 64, 64, 32, 8, 0.0, 8000.0, 1e-6 };
  MmLogMel *lm = mm_logmel_new (&p, 256, &err);
  g_assert_no_error (err);
  g_assert_cmpuint (mm_logmel_compute (lm, mel, x, 256, &err), ==, 7);
  for (int b = 0; b < 8; b++) {
    for (int t = 0; t < 7; t++)
      want[b] += mel[b * 7 + t] / 7.0f;
  }
  g_assert_cmpfloat (rel_err (out, want, 8), <=, 1e-5);
  mm_logmel_free (lm);
  mm_audio_encoder_free (enc);
  mm_model_unref (m);
  g_free (path);
}

/* the block of depthwise conv, squeeze-excite, pool and concat keeps its
 * values channel-last (and is checked against numpy by /graph/ops) */
static void
test_channel_last_plan (void)
{
  char *path = fixture ("ops-channel_last_block.safetensors");
  GError *err = NULL;
  MmSafetensors *st = mm_safetensors_open (path, &err);
  g_assert_no_error (err);
  JsonParser *p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, mm_safetensors_metadata (st, "mm"), -1, NULL));
  JsonObject *head = json_object_get_object_member (
      json_object_get_object_member (json_node_get_object (json_parser_get_root (p)), "components"),
      "head");
  for (int ref = 0; ref < 2; ref++) {
    mm_ops_set_reference (ref);
    MmGraph *g = mm_graph_load (st, head, "head.", "block", &err);
    mm_ops_set_reference (FALSE);
    g_assert_no_error (err);
    /* a, d, m, p, c, e: every (1, C, H, W) value but the output */
    g_assert_cmpuint (mm_graph_n_channel_last (g), ==, ref ? 0 : 6);
    mm_graph_free (g);
  }
  g_object_unref (p);
  mm_safetensors_free (st);
  g_free (path);
}

static void
test_no_alloc (void)
{
  if (!COUNT_ALLOCS) {
    g_test_skip ("allocations are not counted under sanitizers");
    return;
  }
  char *path = fixture ("image-net.safetensors");
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  MmImageEncoder *enc = mm_image_encoder_new (m, NULL, &err);
  g_assert_no_error (err);
  float out[5];
  encode_image_net (m, enc, out); /* first run: BLAS may set itself up */
  const MmTensor *px = test_tensor (m, "test.pixels");
  guint8 *rgb = g_new (guint8, px->n_elements);
  for (gsize i = 0; i < px->n_elements; i++)
    rgb[i] = (guint8)px->data[i];
  allocs_begin ();
  gboolean ok = mm_image_encoder_encode (enc, MM_PIXEL_RGB, rgb, 10, 12, 30, out, &err);
  int n = allocs_end ();
  g_assert_true (ok);
  g_assert_cmpint (n, ==, 0);
  g_free (rgb);
  mm_image_encoder_free (enc);
  mm_model_unref (m);
  g_free (path);
}

/* ---- hostile graphs, built in memory ---- */

/* a model whose head is a graph: input "features" of @shape (JSON),
 * @nodes (JSON array), output @output, dim @dim; tensors head.w (4) and
 * head.var (4, one negative entry) */
static MmModel *
load_graph_model (
    const char *shape, const char *nodes, const char *output, guint dim, GError **error)
{
  GString *labels = g_string_new (NULL);
  for (guint i = 0; i < dim && i < 70000; i++)
    g_string_append_printf (labels, "%s\"o%u\"", i ? "," : "", i);
  char *doc = g_strdup_printf ("{\"version\":1,\"components\":{\"head\":{\"type\":\"graph\","
                               "\"kind\":\"regression\",\"dim\":%u,\"labels\":[%s],"
                               "\"inputs\":[{\"name\":\"features\",\"kind\":\"features\","
                               "\"shape\":%s}],\"output\":\"%s\",\"nodes\":%s}}}",
      dim, labels->str, shape, output, nodes);
  g_string_free (labels, TRUE);
  JsonBuilder *b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "__metadata__");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "mm");
  json_builder_add_string_value (b, doc);
  json_builder_end_object (b);
  const char *names[2] = { "head.w", "head.var" };
  for (int i = 0; i < 2; i++) {
    json_builder_set_member_name (b, names[i]);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, "F32");
    json_builder_set_member_name (b, "shape");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, 4);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "data_offsets");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, 16 * i);
    json_builder_add_int_value (b, 16 * i + 16);
    json_builder_end_array (b);
    json_builder_end_object (b);
  }
  json_builder_end_object (b);
  JsonGenerator *gen = json_generator_new ();
  JsonNode *root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  gsize hlen;
  char *header = json_generator_to_data (gen, &hlen);
  gsize len = 8 + hlen + 32;
  guint8 *bytes = g_malloc0 (len);
  guint64 h64 = GUINT64_TO_LE ((guint64)hlen);
  memcpy (bytes, &h64, 8);
  memcpy (bytes + 8, header, hlen);
  float data[8] = { 1, 2, 3, 4, 1, -1, 1, 1 };
  memcpy (bytes + 8 + hlen, data, sizeof data);
  MmSafetensors *st = mm_safetensors_open_bytes ("hostile", bytes, len, error);
  MmModel *m = NULL;
  if (st) {
    m = mm_model_new_from_safetensors (st, "hostile", error);
    if (!m)
      mm_safetensors_free (st);
  }
  /* the model keeps pointers into the bytes: tests only check failures
   * here, and free a model that loads at once */
  if (m)
    mm_model_unref (m);
  g_free (bytes);
  g_free (header);
  json_node_unref (root);
  g_object_unref (gen);
  g_object_unref (b);
  g_free (doc);
  return m;
}

typedef struct
{
  const char *name, *shape, *nodes, *output;
  guint dim;
  MmError code;
  const char *message; /* a part of the error message */
} Hostile;

#define ID(in, out)                                                                                \
  "{\"name\":\"" out "\",\"op\":\"Identity\",\"inputs\":[\"" in "\"],\"outputs\":[\"" out "\"]}"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const Hostile hostile[] = {
  { "cycle-self", "[1,4]", "[" ID ("a", "a") "]", "a", 4, MM_ERROR_FORMAT,
      "graph node 0 ('a', Identity): input 'a' is not a graph input, an output of an earlier" },
  { "later-node", "[1,4]", "[" ID ("b", "a") "," ID ("features", "b") "]", "b", 4, MM_ERROR_FORMAT,
      "graph node 0 ('a', Identity): input 'b'" },
  { "dangling", "[1,4]", "[" ID ("nowhere", "a") "]", "a", 4, MM_ERROR_FORMAT,
      "input 'nowhere' is not" },
  { "duplicate-output", "[1,4]", "[" ID ("features", "a") "," ID ("features", "a") "]", "a", 4,
      MM_ERROR_FORMAT, "graph node 1 ('a', Identity): output 'a' is already" },
  { "output-is-weight", "[1,4]", "[" ID ("features", "w") "]", "w", 4, MM_ERROR_FORMAT,
      "output 'w' is already" },
  { "output-is-input", "[1,4]", "[" ID ("features", "features") "]", "features", 4, MM_ERROR_FORMAT,
      "output 'features' is already" },
  { "unknown-op", "[1,4]",
      "[{\"name\":\"x\",\"op\":\"Loop\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_UNSUPPORTED, "operator 'Loop' is not supported (supported: Abs, Add," },
  { "unknown-attr", "[1,4]",
      "[{\"name\":\"r\",\"op\":\"Relu\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"auto_pad\":1}}]",
      "a", 4, MM_ERROR_UNSUPPORTED, "attribute 'auto_pad' is not supported" },
  { "string-attr", "[1,4]",
      "[{\"name\":\"s\",\"op\":\"Softmax\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"axis\":\"last\"}}]",
      "a", 4, MM_ERROR_FORMAT, "attribute 'axis' must be a number or an array of numbers" },
  { "nested-attr", "[1,4]",
      "[{\"name\":\"t\",\"op\":\"Transpose\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"perm\":[[[[[[[[1]]]]]]],0]}}]",
      "a", 4, MM_ERROR_FORMAT, "attribute 'perm' must be an array of numbers" },
  { "bad-axis", "[1,4]",
      "[{\"name\":\"s\",\"op\":\"Softmax\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"axis\":2}}]",
      "a", 4, MM_ERROR_FORMAT, "graph node 0 ('s', Softmax): axis 2 is outside [-2, 2)" },
  { "shape-mismatch", "[1,3]",
      "[{\"name\":\"add\",\"op\":\"Add\",\"inputs\":[\"features\","
      "\"w\"],\"outputs\":[\"a\"]}]",
      "a", 3, MM_ERROR_FORMAT, "('add', Add): shapes cannot be broadcast" },
  { "rank-mismatch", "[1,4]",
      "[{\"name\":\"c\",\"op\":\"Conv\",\"inputs\":[\"features\","
      "\"w\"],\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_UNSUPPORTED, "only 1-D and 2-D convolutions" },
  { "weight-required", "[1,4]",
      "[{\"name\":\"p\",\"op\":\"Pow\",\"inputs\":[\"features\","
      "\"features\"],\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_UNSUPPORTED, "the exponent (input 1) must be a weight" },
  { "negative-variance", "[1,4,1]",
      "[{\"name\":\"bn\",\"op\":\"BatchNormalization\","
      "\"inputs\":[\"features\",\"w\",\"w\",\"w\",\"var\"],"
      "\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_FORMAT, "variance 1 is negative" },
  { "missing-attr", "[1,4]",
      "[{\"name\":\"c\",\"op\":\"Concat\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_FORMAT, "attribute 'axis' is required" },
  { "too-many-inputs", "[1,4]",
      "[{\"name\":\"r\",\"op\":\"Relu\",\"inputs\":[\"features\","
      "\"features\"],\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_FORMAT, "2 inputs (Relu takes 1 to 1)" },
  { "gather-index-range", "[1,4]",
      "[{\"name\":\"g\",\"op\":\"Gather\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"axis\":1,\"indices\":[9]}}]",
      "a", 1, MM_ERROR_FORMAT, "attribute 'indices': 9 is not an integer in [-4, 3]" },
  { "reshape-count", "[1,4]",
      "[{\"name\":\"r\",\"op\":\"Reshape\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"shape\":[3,-1]}}]",
      "a", 4, MM_ERROR_FORMAT, "cannot infer the -1 entry" },
  { "huge-reshape", "[1,4]",
      "[{\"name\":\"r\",\"op\":\"Reshape\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"shape\":[65536,65536]}}]",
      "a", 4, MM_ERROR_FORMAT, "'shape' has more than 2^28 elements" },
  { "rank-7", "[1,4]",
      "[{\"name\":\"u\",\"op\":\"Unsqueeze\",\"inputs\":[\"features\"],"
      "\"outputs\":[\"a\"],\"attrs\":{\"axes\":[0,1,2,3,4]}}]",
      "a", 4, MM_ERROR_FORMAT, "rank 7 (at most 6)" },
  { "huge-input", "[1,268435457]", "[" ID ("features", "a") "]", "a", 4, MM_ERROR_FORMAT,
      "input 0: shape entry 1 is out of range" },
  { "huge-concat", "[1,16777216]",
      "[{\"name\":\"cat\",\"op\":\"Concat\",\"inputs\":[\"features\",\"features\",\"features\","
      "\"features\",\"features\",\"features\",\"features\",\"features\",\"features\","
      "\"features\",\"features\",\"features\",\"features\",\"features\",\"features\","
      "\"features\",\"features\"],\"outputs\":[\"a\"],\"attrs\":{\"axis\":1}}]",
      "a", 4, MM_ERROR_FORMAT, "('cat', Concat): a tensor of more than 2^28 elements" },
  { "too-much-work", "[1,16384,16384]",
      "[{\"name\":\"t\",\"op\":\"Transpose\",\"inputs\":[\"features\"],\"outputs\":[\"t\"],"
      "\"attrs\":{\"perm\":[0,2,1]}},{\"name\":\"mm\",\"op\":\"MatMul\",\"inputs\":[\"features\","
      "\"t\"],\"outputs\":[\"a\"]}]",
      "a", 4, MM_ERROR_FORMAT, "('mm', MatMul): the graph needs more than 2^35 multiply-adds" },
  { "arena-budget", "[1,268435456]",
      "[{\"name\":\"relu\",\"op\":\"Relu\",\"inputs\":[\"features\"],\"outputs\":[\"a\"]},"
      "{\"name\":\"mean\",\"op\":\"ReduceMean\",\"inputs\":[\"a\"],\"outputs\":[\"m\"]}]",
      "m", 1, MM_ERROR_FORMAT,
      "graph node 0 ('relu', Relu): the activations need more than 1 GiB" },
  { "dim-mismatch", "[1,4]", "[" ID ("features", "a") "]", "a", 5, MM_ERROR_FORMAT,
      "output 'a' pooled by flatten gives 4 values but \"dim\" is 5" },
  { "output-unknown", "[1,4]", "[" ID ("features", "a") "]", "zzz", 4, MM_ERROR_FORMAT,
      "\"output\" 'zzz' is not a node output" },
  { "node-not-object", "[1,4]", "[[1,2]]", "a", 4, MM_ERROR_FORMAT,
      "graph node 0 ('', ?): not a JSON object" },
  { "long-name", "[1,4]", "[" ID ("features", A64 A64 A64 A64 A64) "]", "a", 4, MM_ERROR_FORMAT,
      "a tensor name longer than 256 bytes" },
};

static void
test_hostile (gconstpointer data)
{
  const Hostile *h = data;
  GError *err = NULL;
  MmModel *m = load_graph_model (h->shape, h->nodes, h->output, h->dim, &err);
  g_assert_null (m);
  g_assert_error (err, MM_ERROR, (gint)h->code);
  if (!strstr (err->message, h->message))
    g_printerr ("%s: %s\n", h->name, err->message);
  g_assert_nonnull (strstr (err->message, h->message));
  g_error_free (err);
}

static void
test_too_many_nodes (void)
{
  GString *nodes = g_string_new ("[");
  for (int i = 0; i <= 8192; i++) {
    char *in = i ? g_strdup_printf ("v%d", i - 1) : g_strdup ("features");
    g_string_append_printf (nodes,
        "%s{\"op\":\"Identity\",\"inputs\":[\"%s\"],\"outputs\":[\"v%d\"]}", i ? "," : "", in, i);
    g_free (in);
  }
  g_string_append (nodes, "]");
  GError *err = NULL;
  g_assert_null (load_graph_model ("[1,4]", nodes->str, "v8192", 4, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  if (!strstr (err->message, "8193 nodes (at most 8192)"))
    g_printerr ("%s\n", err->message);
  g_assert_nonnull (strstr (err->message, "8193 nodes (at most 8192)"));
  g_error_free (err);
  g_string_free (nodes, TRUE);
}

/* the largest graph allowed loads; a long chain of activations reuses
 * two buffers */
static void
test_buffer_reuse (void)
{
  GString *nodes = g_string_new ("[");
  for (int i = 0; i < 100; i++) {
    char *in = i ? g_strdup_printf ("v%d", i - 1) : g_strdup ("features");
    g_string_append_printf (nodes, "%s{\"op\":\"%s\",\"inputs\":[\"%s\"],\"outputs\":[\"v%d\"]}",
        i ? "," : "", i % 2 ? "Neg" : "Abs", in, i);
    g_free (in);
  }
  g_string_append (nodes, "]");
  char *doc = g_strdup_printf ("{\"dim\":4096,\"inputs\":[{\"name\":\"features\",\"kind\":"
                               "\"features\",\"shape\":[1,4096]}],\"output\":\"v99\",\"nodes\":%s}",
      nodes->str);
  JsonParser *p = json_parser_new ();
  g_assert_true (json_parser_load_from_data (p, doc, -1, NULL));
  GError *err = NULL;
  char *path = fixture ("ops-relu.safetensors");
  MmSafetensors *st = mm_safetensors_open (path, &err);
  g_assert_no_error (err);
  MmGraph *g =
      mm_graph_load (st, json_node_get_object (json_parser_get_root (p)), "head.", "chain", &err);
  g_assert_no_error (err);
  g_assert_cmpuint (mm_graph_n_steps (g), ==, 100);
  /* input, and two live values at any step */
  g_assert_cmpuint (mm_graph_peak_bytes (g), <=, 3 * 4096 * sizeof (float));
  g_assert_cmpuint (mm_graph_total_bytes (g), ==, 101 * 4096 * sizeof (float));
  MmGraphCtx *c = mm_graph_ctx_new (g, "chain", FALSE, &err);
  g_assert_no_error (err);
  float *x = mm_graph_ctx_input (c, 0), *out = g_new (float, 4096);
  float *x0 = g_new (float, 4096);
  for (int i = 0; i < 4096; i++)
    x0[i] = x[i] = (float)(i - 2048);
  mm_graph_ctx_run (c, out);
  x = x0;
  for (int i = 0; i < 4096; i++)
    g_assert_cmpfloat (out[i], ==, -fabsf (x[i]));
  g_free (out);
  g_free (x0);
  mm_graph_ctx_free (c);
  mm_graph_free (g);
  mm_safetensors_free (st);
  g_free (path);
  g_object_unref (p);
  g_free (doc);
  g_string_free (nodes, TRUE);
}

/* the budget of MM_MAX_MEMORY / MM_MAX_WORK applies to a graph: one far
 * inside the fixed limits (an outer product: 64 MB of activations, 2^24
 * multiply-adds) loads under the defaults and is refused under lower ones */
static void
test_budget (void)
{
  const char *outer = "[{\"name\":\"col\",\"op\":\"Reshape\",\"inputs\":[\"features\"],"
                      "\"outputs\":[\"c\"],\"attrs\":{\"shape\":[4096,1]}},{\"name\":\"mm\","
                      "\"op\":\"MatMul\",\"inputs\":[\"c\",\"features\"],\"outputs\":[\"a\"]},"
                      "{\"name\":\"mean\",\"op\":\"ReduceMean\",\"inputs\":[\"a\"],"
                      "\"outputs\":[\"m\"]}]";
  GError *err = NULL;
  MmModel *m = load_graph_model ("[1,4096]", outer, "m", 1, &err);
  g_assert_no_error (err);
  g_assert_true (m != NULL);

  g_setenv ("MM_MAX_MEMORY", "48M", TRUE);
  m = load_graph_model ("[1,4096]", outer, "m", 1, &err);
  g_unsetenv ("MM_MAX_MEMORY");
  g_assert_null (m);
  g_assert_error (err, MM_ERROR, MM_ERROR_UNSUPPORTED);
  if (!strstr (err->message, "activations and scratch needs 64 MB of memory, over the limit of 48"))
    g_printerr ("%s\n", err->message);
  g_assert_nonnull (
      strstr (err->message, "activations and scratch needs 64 MB of memory, over the limit of 48"));
  g_clear_error (&err);

  g_setenv ("MM_MAX_WORK", "16M", TRUE);
  m = load_graph_model ("[1,4096]", outer, "m", 1, &err);
  g_unsetenv ("MM_MAX_WORK");
  g_assert_null (m);
  g_assert_error (err, MM_ERROR, MM_ERROR_UNSUPPORTED);
  if (!strstr (err->message, "GFLOP per item, over the limit"))
    g_printerr ("%s\n", err->message);
  g_assert_nonnull (strstr (err->message, "GFLOP per item, over the limit"));
  g_clear_error (&err);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/graph/ops", test_ops);
  g_test_add_func ("/graph/image-net", test_image_net);
  g_test_add_func ("/graph/text", test_text_net);
  g_test_add_func ("/graph/audio-waveform", test_audio_waveform);
  g_test_add_func ("/graph/audio-logmel", test_audio_logmel);
  g_test_add_func ("/graph/no-allocation", test_no_alloc);
  g_test_add_func ("/graph/channel-last-plan", test_channel_last_plan);
  g_test_add_func ("/graph/buffer-reuse", test_buffer_reuse);
  g_test_add_func ("/graph/hostile/too-many-nodes", test_too_many_nodes);
  g_test_add_func ("/graph/hostile/budget", test_budget);
  for (guint i = 0; i < G_N_ELEMENTS (hostile); i++) {
    char *name = g_strdup_printf ("/graph/hostile/%s", hostile[i].name);
    g_test_add_data_func (name, &hostile[i], test_hostile);
    g_free (name);
  }
  return g_test_run ();
}
