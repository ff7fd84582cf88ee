/* libmm against hostile model files (issue 14): JSON that would crash
 * json-glib, paths that are not files, and small files that ask for huge
 * resources.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * json-glib's parser recurses once per nesting level, so 100,000 '[' reaching
 * it overflow an 8 MB stack (SIGSEGV).  json-glib 1.6 also reads comments,
 * single-quoted strings and escapes that strict JSON does not have, which
 * hide brackets from a naive counter.  Each hiding trick is tried as the
 * safetensors header and as the "mm" document, and must be a GError.  Every
 * model in the repository must still load.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "mm.h"
#include "mm-private.h"

#define LEVELS 100000

static char *tmpdir;

static char *
write_file (const char *name, const GString *header, const guint8 *data, gsize data_len)
{
  char *path = g_build_filename (tmpdir, name, NULL);
  GByteArray *b = g_byte_array_new ();
  for (int i = 0; i < 8; i++) {
    guint8 c = (guint8)((guint64)header->len >> (8 * i));
    g_byte_array_append (b, &c, 1);
  }
  g_byte_array_append (b, (const guint8 *)header->str, header->len);
  if (data_len)
    g_byte_array_append (b, data, data_len);
  g_assert_true (g_file_set_contents (path, (const char *)b->data, b->len, NULL));
  g_byte_array_unref (b);
  return path;
}

/* prefix + LEVELS '[' + LEVELS ']' + suffix */
static GString *
deep (const char *prefix, const char *suffix)
{
  GString *s = g_string_new (prefix);
  for (int i = 0; i < LEVELS; i++)
    g_string_append_c (s, '[');
  for (int i = 0; i < LEVELS; i++)
    g_string_append_c (s, ']');
  g_string_append (s, suffix);
  return s;
}

/* JSON text -> the contents of a JSON string literal holding it. */
static GString *
json_escape (const char *s, gsize len)
{
  GString *e = g_string_sized_new (len + 16);
  for (gsize i = 0; i < len; i++) {
    char c = s[i];
    if (c == '"' || c == '\\')
      g_string_append_c (e, '\\');
    if (c == '\n')
      g_string_append (e, "\\n");
    else
      g_string_append_c (e, c);
  }
  return e;
}

/* {"__metadata__": {"mm": "<doc as a string>"}} */
static GString *
header_with_mm (const char *doc, gsize len)
{
  GString *esc = json_escape (doc, len);
  GString *h = g_string_new ("{\"__metadata__\":{\"mm\":\"");
  g_string_append_len (h, esc->str, esc->len);
  g_string_append (h, "\"}}");
  g_string_free (esc, TRUE);
  return h;
}

typedef struct
{
  const char *name;
  const char *prefix; /* JSON before the brackets */
  const char *suffix;
} HidingCase;

static const HidingCase hiding_cases[] = {
  /* no hiding at all */
  { "plain", "{\"a\": ", "}" },
  /* the 150 KB file: a slash-star comment holding a quote */
  { "comment-quote", "{\"a\": /* \" */ ", "}" },
  /* json-glib 1.6 reads '/' to the next '/' as a comment */
  { "slash-comment", "{\"a\": / \" / ", "}" },
  { "slash-slash-comment", "{\"a\": // \"\n ", "}" },
  /* single-quoted strings, no escapes inside */
  { "single-quote", "{'\"': ", "}" },
  { "single-quote-backslash", "{'\\': ", "}" },
  /* an escaped quote and an escaped backslash before the brackets */
  { "escaped-quote", "{\"a\\\"\": ", "}" },
  { "escaped-backslash", "{\"a\\\\\": ", "}" },
  /* json-glib 1.6 takes the two bytes after a high surrogate escape as the
   * start of its pair: the closing quote is swallowed, and the brackets that
   * strict JSON reads inside the next string are structure to json-glib */
  { "lone-surrogate", "[\"\\ud800\",\",", "\"]" },
  { "lone-low-surrogate", "[\"\\udc00\",\",", "\"]" },
  /* json-glib's octal escape */
  { "octal-escape", "[\"\\0\", ", "]" },
};

static void
expect_refused (const GString *header, const char *must_contain)
{
  char *path = write_file ("hostile", header, NULL, 0);
  GError *err = NULL;
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
  g_test_message ("%s", err->message);
  if (must_contain && !strstr (err->message, must_contain))
    g_error ("unexpected error: %s", err->message);
  g_assert_nonnull (strstr (err->message, path));
  g_error_free (err);
  g_unlink (path);
  g_free (path);
}

static void
test_hidden_nesting (gconstpointer data)
{
  const HidingCase *c = data;
  GString *doc = deep (c->prefix, c->suffix);
  expect_refused (doc, "header is");
  GString *header = header_with_mm (doc->str, doc->len);
  expect_refused (header, "__metadata__ \"mm\" is");
  g_string_free (header, TRUE);
  g_string_free (doc, TRUE);
}

/* 64 levels pass, 65 do not, in both documents. */
static void
test_depth_limit (void)
{
  for (int levels = 63; levels <= 66; levels++) {
    GString *s = g_string_new (NULL);
    for (int i = 0; i < levels; i++)
      g_string_append_c (s, '[');
    for (int i = 0; i < levels; i++)
      g_string_append_c (s, ']');
    GError *err = NULL;
    gboolean ok = mm_json_check_depth (s->str, s->len, "t", "x", NULL, &err);
    g_assert_true (ok == (levels <= MM_JSON_MAX_DEPTH));
    if (!ok) {
      g_assert_nonnull (strstr (err->message, "nested more than 64 levels"));
      g_error_free (err);
    }
    g_string_free (s, TRUE);
  }
}

/* What strict JSON allows must pass, whatever it holds in its strings:
 * a real vocabulary has "[", "{", "/", quotes and backslashes as tokens. */
static void
test_strict_json_accepted (void)
{
  static const char *const ok[] = {
    "{}",
    "[]",
    " {\"a\" : [ 1 , -2.5e+3 , 0 , 0.125E-2 , true , false , null , \"\" ] } ",
    "{\"layer/0/conv\": \"/*\", \"b/\": \"//\", \"c\": \"'\"}",
    "{\"a\\\\\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
    "{\"a\": \"\\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}",
    "[\"\\ud83d\\ude00 \\u00e9 \\/ \\b\\f\\n\\r\\t\", \"caf\xc3\xa9\"]",
    "{\"a\": 1}\n\r\t  \0\0\0garbage after a NUL is never read",
  };
  for (guint i = 0; i < G_N_ELEMENTS (ok); i++) {
    GError *err = NULL;
    gsize len = strlen (ok[i]);
    if (i == G_N_ELEMENTS (ok) - 1)
      len += 3 + strlen (ok[i] + len + 3);
    if (!mm_json_check_depth (ok[i], len, "t", "x", NULL, &err))
      g_error ("case %u: %s", i, err->message);
  }
}

static void
test_not_strict_refused (void)
{
  static const char *const bad[] = {
    "{\"a\": 1,}",
    "[1,]",
    "{\"a\" 1}",
    "{a: 1}",
    "[01]",
    "[1.]",
    "[.5]",
    "[-]",
    "[1e]",
    "[0x10]",
    "[NaN]",
    "[Infinity]",
    "[tru]",
    "[\"\\x\"]",
    "[\"\\u12\"]",
    "[\"\\ud800\\u0041\"]",
    "[\"a\tb\"]",
    "[\"abc",
    "[1] [2]",
    "[1}",
    "{\"a\": 1]",
    "[1 /* c */]",
    "['a']",
    "",
    "   ",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    GError *err = NULL;
    if (mm_json_check_depth (bad[i], strlen (bad[i]), "t", "x", NULL, &err))
      g_error ("accepted: %s", bad[i]);
    g_assert_error (err, MM_ERROR, MM_ERROR_FORMAT);
    g_assert_nonnull (strstr (err->message, "not valid JSON"));
    g_error_free (err);
  }
}

static void
collect_models (const char *dir, GPtrArray *out)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (!d)
    return;
  const char *name;
  while ((name = g_dir_read_name (d))) {
    char *path = g_build_filename (dir, name, NULL);
    if (g_file_test (path, G_FILE_TEST_IS_DIR))
      collect_models (path, out);
    else if (g_str_has_suffix (name, ".safetensors"))
      g_ptr_array_add (out, g_strdup (path));
    g_free (path);
  }
  g_dir_close (d);
}

/* Every model file in the repository (models/, tests/fixtures/): its header
 * passes the JSON check, and it loads within the default budget, but for
 * the fixtures made to fail (bad-*, corrupt*), which fail for another
 * reason than their JSON. */
static void
test_repository_models_pass (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  GPtrArray *paths = g_ptr_array_new_with_free_func (g_free);
  collect_models (fixtures, paths);
  char *models = g_build_filename (fixtures, "..", "..", "models", NULL);
  collect_models (models, paths);
  g_free (models);
  g_assert_cmpuint (paths->len, >, 10);
  guint loaded = 0;
  for (guint i = 0; i < paths->len; i++) {
    const char *path = paths->pdata[i];
    char *bytes = NULL;
    gsize len = 0;
    g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
    guint64 n = 0;
    for (int k = 7; len >= 8 && k >= 0; k--)
      n = (n << 8) | (guint8)bytes[k];
    GError *err = NULL;
    if (len >= 8 && n <= len - 8 && g_utf8_validate (bytes + 8, (gssize)n, NULL)) {
      if (!mm_json_check_depth (bytes + 8, n, path, "header", NULL, &err))
        g_error ("%s", err->message);
    }
    g_free (bytes);
    MmModel *m = mm_model_open (path, &err);
    if (m) {
      loaded++;
      mm_model_unref (m);
    } else {
      g_test_message ("%s: %s", path, err->message);
      /* only the fixtures made to fail may fail, and never for their JSON */
      char *base = g_path_get_basename (path);
      gboolean made_to_fail = g_str_has_prefix (base, "bad-") || g_str_has_prefix (base, "corrupt");
      g_free (base);
      if (!made_to_fail || strstr (err->message, "not valid JSON")
          || strstr (err->message, "nested more than"))
        g_error ("%s", err->message);
      g_error_free (err);
    }
  }
  g_test_message ("%u of %u model files load", loaded, paths->len);
  g_ptr_array_unref (paths);
}

/* ---- the model path must be a regular file ---- */

static void
on_alarm (int sig)
{
  (void)sig;
  static const char msg[] = "Bail out! opening a FIFO as a model blocked\n";
  if (write (1, msg, sizeof msg - 1) < 0)
    _exit (2);
  _exit (1);
}

static void
test_not_regular_file (void)
{
  char *fifo = g_build_filename (tmpdir, "model.fifo", NULL);
  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  /* without the check, open() waits for a writer forever */
  signal (SIGALRM, on_alarm);
  alarm (10);
  const char *paths[] = { fifo, "/dev/null", tmpdir };
  for (guint i = 0; i < G_N_ELEMENTS (paths); i++) {
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time ();
    g_assert_null (mm_model_open (paths[i], &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_IO);
    g_test_message ("%s", err->message);
    g_assert_nonnull (strstr (err->message, "not a regular file"));
    g_clear_error (&err);
    g_assert_cmpint (g_get_monotonic_time () - t0, <, G_USEC_PER_SEC);
    /* the loader below mm_model_open checks what it opened, too (the path
     * may have been replaced by a FIFO after the first check) */
    g_assert_null (mm_safetensors_open (paths[i], &err));
    g_assert_error (err, MM_ERROR, MM_ERROR_IO);
    g_assert_nonnull (strstr (err->message, "not a regular file"));
    g_error_free (err);
  }
  alarm (0);
  g_unlink (fifo);
  g_free (fifo);
}

/* ---- resource bombs: small files that ask for huge resources ----
 *
 * Each is refused at load, before anything big is allocated, with an error
 * naming the file and the environment variable that raises the budget.
 * Each runs in a subprocess of its own, so that its peak RSS (getrusage)
 * is its own. */

typedef struct
{
  const char *name;
  guint ndim;
  gint64 shape[4];
  const char *dtype; /* NULL = F32 */
} TensorSpec;

/* A model file: @mm (the "mm" document) and zero-filled tensors, written
 * sparse (ftruncate), so a 600 MB tensor costs no disk and no memory
 * unless the loader reads it. */
static char *
write_model (const char *name, const char *mm, const TensorSpec *tensors, guint n_tensors)
{
  GString *h = g_string_new ("{");
  guint64 offset = 0;
  for (guint i = 0; i < n_tensors; i++) {
    const TensorSpec *t = &tensors[i];
    const char *dtype = t->dtype ? t->dtype : "F32";
    guint64 count = 1;
    g_string_append_printf (h, "\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, dtype);
    for (guint d = 0; d < t->ndim; d++) {
      g_string_append_printf (h, "%s%" G_GINT64_FORMAT, d ? "," : "", t->shape[d]);
      count *= (guint64)t->shape[d];
    }
    guint64 bytes = count * (g_str_equal (dtype, "F32") ? 4 : 2);
    g_string_append_printf (h, "],\"data_offsets\":[%" G_GUINT64_FORMAT ",%" G_GUINT64_FORMAT "]},",
        offset, offset + bytes);
    offset += bytes;
  }
  GString *esc = json_escape (mm, strlen (mm));
  g_string_append_printf (h, "\"__metadata__\":{\"mm\":\"%s\"}}", esc->str);
  g_string_free (esc, TRUE);
  char *path = write_file (name, h, NULL, 0);
  g_assert_cmpint (truncate (path, (off_t)(8 + h->len + offset)), ==, 0);
  g_string_free (h, TRUE);
  return path;
}

static glong
peak_rss_kb (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

#define BOMB_MAX_RSS_MB 200
#define BOMB_MAX_SECONDS 10

/* In the subprocess: open @path, expect a refusal naming @env_var. */
static void
expect_budget_refusal (const char *path, const char *env_var)
{
  glong rss0 = peak_rss_kb ();
  gint64 t0 = g_get_monotonic_time ();
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  double seconds = (g_get_monotonic_time () - t0) / 1e6;
  glong rss_mb = (peak_rss_kb () - rss0) / 1024;
  if (m)
    g_error ("%s loaded: the budget did not refuse it", path);
  /* stderr: the parent, not the subprocess, speaks TAP */
  g_printerr ("# %s (%.2f s, peak RSS +%ld MB)\n", err->message, seconds, rss_mb);
  g_assert_error (err, MM_ERROR, MM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (err->message, path));
  if (!strstr (err->message, env_var))
    g_error ("the error does not name %s: %s", env_var, err->message);
  g_error_free (err);
  g_assert_cmpfloat (seconds, <, BOMB_MAX_SECONDS);
  g_assert_cmpint (rss_mb, <, BOMB_MAX_RSS_MB);
}

typedef struct
{
  const char *name;
  const char *env_var; /* the budget that refuses it */
  const char *mm;
  TensorSpec tensors[8];
} BombCase;

#define FOLDED_CONV(n, o, i, k)                                                                    \
  { n ".weight", 4, { o, i, k, k }, NULL },                                                        \
  {                                                                                                \
    n ".bias", 1, { o }, NULL                                                                      \
  }

static const BombCase bomb_cases[] = {
  /* issue 14: a 968-byte file, a 9400x9400 input: 2.2 GB, 17 s a frame */
  { "image-9400", "MM_MAX_MEMORY",
      "{\"version\":1,\"components\":{\"image\":{\"type\":\"resnet\",\"width\":9400,"
      "\"height\":9400,\"mean\":[0,0,0],\"std\":[1,1,1],\"stem_kernel\":7,\"stem_stride\":2,"
      "\"stem_maxpool\":true,\"widths\":[1],\"blocks\":[1],\"dim\":1}}}",
      { FOLDED_CONV ("image.conv1", 1, 3, 7), FOLDED_CONV ("image.layer1.0.conv1", 1, 1, 3),
          FOLDED_CONV ("image.layer1.0.conv2", 1, 1, 3) } },
  /* an audio window of 2^24 samples, one frame per sample */
  { "audio-window", "MM_MAX_MEMORY",
      "{\"version\":1,\"components\":{\"audio\":{\"type\":\"cnn1d\",\"sample_rate\":16000,"
      "\"n_fft\":512,\"hop_length\":1,\"n_mels\":20,\"window\":16777216,\"dim\":4,"
      "\"convs\":[{\"out\":4,\"kernel\":3}]}}}",
      { { "audio.convs.0.weight", 3, { 4, 20, 3 }, NULL }, { "audio.convs.0.bias", 1, { 4 }, NULL },
          { "audio.fc.weight", 2, { 4, 4 }, NULL }, { "audio.fc.bias", 1, { 4 }, NULL } } },
  /* a 16 MB depthwise conv (2048 channels, kernel 2048) over 10 s at hop 16:
   * ~700 GFLOP a window as packed (8 columns per group) */
  { "audio-depthwise", "MM_MAX_WORK",
      "{\"version\":1,\"components\":{\"audio\":{\"type\":\"cnn1d\",\"sample_rate\":16000,"
      "\"n_fft\":4096,\"hop_length\":16,\"n_mels\":2048,\"window\":160000,\"dim\":4,"
      "\"convs\":[{\"out\":2048,\"kernel\":2048,\"groups\":2048,\"padding\":1024}]}}}",
      { { "audio.convs.0.weight", 3, { 2048, 1, 2048 }, NULL },
          { "audio.convs.0.bias", 1, { 2048 }, NULL }, { "audio.fc.weight", 2, { 4, 2048 }, NULL },
          { "audio.fc.bias", 1, { 4 }, NULL } } },
  /* issue 14: BERT with intermediate 65536 and max_len 8192: 2.3 GB */
  { "bert-intermediate", "MM_MAX_MEMORY",
      "{\"version\":1,\"components\":{\"text\":{\"type\":\"bert\",\"vocab\":[\"[PAD]\",\"[UNK]\","
      "\"[CLS]\",\"[SEP]\",\"a\"],\"hidden\":8,\"layers\":1,\"heads\":2,\"intermediate\":65536,"
      "\"max_len\":8192,\"dim\":8}}}",
      { { NULL } } },
  /* 64 layers of 4096 tokens at hidden 512: little memory, ~4 TFLOP a cue */
  { "bert-work", "MM_MAX_WORK",
      "{\"version\":1,\"components\":{\"text\":{\"type\":\"bert\",\"vocab\":[\"[PAD]\",\"[UNK]\","
      "\"[CLS]\",\"[SEP]\",\"a\"],\"hidden\":256,\"layers\":64,\"heads\":4,\"intermediate\":1024,"
      "\"max_len\":4096,\"dim\":256}}}",
      { { NULL } } },
  /* a 600 MB F16 tensor (sparse): 1.2 GB once converted to float */
  { "f16-convert", "MM_MAX_MEMORY", "{\"version\":1,\"components\":{}}",
      { { "big", 1, { 300000000 }, "F16" } } },
};

/* The parent writes the file, a fresh subprocess opens it (its peak RSS
 * is then the loader's alone, not the writing's). */
static void
run_bomb (const char *path, const char *env_var)
{
  if (g_test_subprocess ()) {
    expect_budget_refusal (g_getenv ("MM_HOSTILE_BOMB"), g_getenv ("MM_HOSTILE_BUDGET"));
    return;
  }
  g_setenv ("MM_HOSTILE_BOMB", path, TRUE);
  g_setenv ("MM_HOSTILE_BUDGET", env_var, TRUE);
  g_test_trap_subprocess (NULL, 60 * G_USEC_PER_SEC, G_TEST_SUBPROCESS_INHERIT_STDERR);
  g_unsetenv ("MM_HOSTILE_BOMB");
  g_unsetenv ("MM_HOSTILE_BUDGET");
  g_unlink (path);
  g_test_trap_assert_passed ();
}

static void
test_bomb (gconstpointer data)
{
  const BombCase *c = data;
  char *path = NULL;
  if (!g_test_subprocess ()) {
    guint n = 0;
    while (n < G_N_ELEMENTS (c->tensors) && c->tensors[n].name)
      n++;
    path = write_model (c->name, c->mm, c->tensors, n);
  }
  run_bomb (path, c->env_var);
  g_free (path);
}

/* issue 14: 1.78 M empty tensors in a 104 MB header took 3.1 GB in
 * json-glib's tree; here 600,000 of them (37 MB) */
static void
test_bomb_empty_tensors (void)
{
  char *path = NULL;
  if (!g_test_subprocess ()) {
    GString *h = g_string_new ("{");
    for (int i = 0; i < 600000; i++)
      g_string_append_printf (
          h, "\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},", i);
    g_string_append (h, "\"__metadata__\":{\"mm\":\"{\\\"version\\\":1,\\\"components\\\":{}}\"}}");
    path = write_file ("empty-tensors", h, NULL, 0);
    g_string_free (h, TRUE);
  }
  run_bomb (path, "MM_MAX_MEMORY");
  g_free (path);
}

/* A graph whose conv packing multiplies its weights: 4.7 MB of grouped conv
 * weights (one output channel per group, which conv-cl pads to 8: 8x) used
 * by 32 Conv nodes, each packed on its own: 1.2 GB of packed weights from a
 * 9 MB file.  It loaded (+1.2 GB RSS) before the graph's budget counted the
 * packing; the conv's input is a tensor of the file. */
#define PACKING_CONVS 32

static void
test_bomb_graph_packing (void)
{
  char *path = NULL;
  if (!g_test_subprocess ()) {
    GString *nodes = g_string_new (NULL);
    for (int i = 0; i < PACKING_CONVS; i++)
      g_string_append_printf (nodes,
          "{\"op\":\"Conv\",\"inputs\":[\"x\",\"w\"],\"outputs\":[\"a%d\"],"
          "\"attrs\":{\"kernel_shape\":[12,12],\"group\":4096}},",
          i);
    for (int i = 1; i < PACKING_CONVS; i++)
      g_string_append_printf (nodes,
          "{\"op\":\"Add\",\"inputs\":[\"%s%d\",\"a%d\"],\"outputs\":[\"s%d\"]},",
          i == 1 ? "a" : "s", i - 1, i, i);
    char *mm = g_strdup_printf (
        "{\"version\":1,\"components\":{\"head\":{\"type\":\"graph\",\"kind\":"
        "\"regression\",\"dim\":1,\"labels\":[\"o0\"],\"inputs\":[{\"name\":\"features\","
        "\"kind\":\"features\",\"shape\":[1,1]}],\"output\":\"y\",\"nodes\":[%s"
        "{\"op\":\"ReduceMean\",\"inputs\":[\"s%d\"],\"outputs\":[\"m\"]},"
        "{\"op\":\"Add\",\"inputs\":[\"m\",\"features\"],\"outputs\":[\"y\"]}]}}}",
        nodes->str, PACKING_CONVS - 1);
    const TensorSpec tensors[] = { { "head.x", 4, { 1, 8192, 12, 12 }, NULL },
      { "head.w", 4, { 4096, 2, 12, 12 }, NULL } };
    path = write_model ("graph-packing", mm, tensors, G_N_ELEMENTS (tensors));
    g_free (mm);
    g_string_free (nodes, TRUE);
  }
  run_bomb (path, "MM_MAX_MEMORY");
  g_free (path);
}

/* The budget is the environment's: a limit below a fixture refuses it, and
 * raising the limit lets it load. */
static void
test_budget_env (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  char *path = g_build_filename (fixtures, "encoders", "resnet-small.safetensors", NULL);
  GError *err = NULL;
  g_setenv ("MM_MAX_MEMORY", "16K", TRUE);
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (err->message, "MM_MAX_MEMORY"));
  g_clear_error (&err);
  g_setenv ("MM_MAX_MEMORY", "1G", TRUE);
  g_setenv ("MM_MAX_WORK", "1K", TRUE);
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_UNSUPPORTED);
  g_assert_nonnull (strstr (err->message, "MM_MAX_WORK"));
  g_clear_error (&err);
  g_unsetenv ("MM_MAX_MEMORY");
  g_unsetenv ("MM_MAX_WORK");
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  mm_model_unref (m);
  g_free (path);
}

/* mm_budget_load_work is the figure the work limit was checked against:
 * a limit of exactly that loads the model, one FLOP less refuses it. */
static void
test_budget_load_work (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  char *path = g_build_filename (fixtures, "encoders", "resnet-small.safetensors", NULL);
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  mm_model_unref (m);
  guint64 work = mm_budget_load_work ();
  g_test_message ("resnet-small: %" G_GUINT64_FORMAT " FLOP per frame", work);
  g_assert_cmpuint (work, >, 1024);
  char limit[32];
  g_snprintf (limit, sizeof limit, "%" G_GUINT64_FORMAT, work);
  g_setenv ("MM_MAX_WORK", limit, TRUE);
  m = mm_model_open (path, &err);
  g_assert_no_error (err);
  mm_model_unref (m);
  g_assert_cmpuint (mm_budget_load_work (), ==, work);
  g_snprintf (limit, sizeof limit, "%" G_GUINT64_FORMAT, work - 1);
  g_setenv ("MM_MAX_WORK", limit, TRUE);
  g_assert_null (mm_model_open (path, &err));
  g_assert_error (err, MM_ERROR, MM_ERROR_UNSUPPORTED);
  g_clear_error (&err);
  g_unsetenv ("MM_MAX_WORK");
  g_free (path);
}

/* A model's parts are held to the budget together: at some limit each part
 * of the bundled model fits but the whole does not. */
static void
test_budget_whole_model (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  char *path = g_build_filename (
      fixtures ? fixtures : "tests/fixtures", "..", "..", "models", "scenes.safetensors", NULL);
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_test_skip ("no models/scenes.safetensors");
    g_free (path);
    return;
  }
  gboolean summed = FALSE;
  for (int mb = 1; mb <= 256 && !summed; mb *= 2) {
    char limit[16];
    g_snprintf (limit, sizeof limit, "%dM", mb);
    g_setenv ("MM_MAX_MEMORY", limit, TRUE);
    GError *err = NULL;
    MmModel *m = mm_model_open (path, &err);
    if (m) {
      mm_model_unref (m);
      break;
    }
    g_test_message ("MM_MAX_MEMORY=%s: %s", limit, err->message);
    g_assert_nonnull (strstr (err->message, "MM_MAX_MEMORY"));
    summed = strstr (err->message, "with the rest of the model") != NULL;
    g_error_free (err);
  }
  g_unsetenv ("MM_MAX_MEMORY");
  g_assert_true (summed);
  GError *err = NULL;
  MmModel *m = mm_model_open (path, &err);
  g_assert_no_error (err);
  mm_model_unref (m);
  g_free (path);
}

/* ---- concurrency: the model table's lock is not held while parsing ---- */

typedef struct
{
  const char *path;
  gint64 done; /* monotonic time the open returned */
  gboolean ok;
} OpenJob;

static gpointer
open_job (gpointer data)
{
  OpenJob *j = data;
  GError *err = NULL;
  MmModel *m = mm_model_open (j->path, &err);
  j->done = g_get_monotonic_time ();
  j->ok = m != NULL;
  if (!m) {
    g_printerr ("# %s\n", err->message);
    g_error_free (err);
  }
  mm_model_unref (m);
  return NULL;
}

/* A model with a large header (150,000 tensors, about a second of json-glib)
 * is opened; a small one opened meanwhile in another thread must not wait
 * for it (it did: the whole load ran under the model-table lock). */
static void
test_parse_outside_lock (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  GString *h = g_string_new ("{");
  for (int i = 0; i < 150000; i++)
    g_string_append_printf (
        h, "\"t%d\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},", i);
  g_string_append (h, "\"__metadata__\":{\"mm\":\"{\\\"version\\\":1,\\\"components\\\":{}}\"}}");
  char *big = write_file ("big-header", h, NULL, 0);
  g_string_free (h, TRUE);
  char *small = g_build_filename (fixtures, "tiny.safetensors", NULL);

  OpenJob a = { big, 0, FALSE }, b = { small, 0, FALSE };
  gint64 t0 = g_get_monotonic_time ();
  GThread *ta = g_thread_new ("big", open_job, &a);
  g_usleep (20000); /* the big one is parsing */
  gint64 t1 = g_get_monotonic_time ();
  GThread *tb = g_thread_new ("small", open_job, &b);
  g_thread_join (tb);
  g_thread_join (ta);
  g_test_message ("big header: %.3f s; small model, opened 20 ms later: %.3f s",
      (a.done - t0) / 1e6, (b.done - t1) / 1e6);
  g_assert_true (a.ok && b.ok);
  if (a.done - t0 < 200000) {
    g_test_skip ("the big header parsed in under 0.2 s: nothing to compare");
  } else {
    g_assert_cmpint (b.done, <, a.done);
  }
  g_unlink (big);
  g_free (big);
  g_free (small);
}

/* 8 threads open and release the same and different models at once: every
 * open succeeds, and the same file is one model while it is open. */
#define N_THREADS 8
#define N_ROUNDS 20

static const char *const shared_fixtures[] = {
  "tiny.safetensors",
  "tiny-attn.safetensors",
  "encoders/resnet-small.safetensors",
  "encoders/audio.safetensors",
  "text/bert-tiny.safetensors",
  "text/wordvec.safetensors",
};

static MmModel *held[G_N_ELEMENTS (shared_fixtures)];

static gpointer
open_many (gpointer data)
{
  const char *fixtures = data;
  for (int r = 0; r < N_ROUNDS; r++) {
    for (guint i = 0; i < G_N_ELEMENTS (shared_fixtures); i++) {
      char *path = g_build_filename (fixtures, shared_fixtures[i], NULL);
      GError *err = NULL;
      MmModel *m = mm_model_open (path, &err);
      if (!m)
        g_error ("%s", err->message);
      /* held[i] stays open all along: the same file is the same model */
      g_assert_true (m == held[i]);
      mm_model_unref (m);
      g_free (path);
    }
  }
  return NULL;
}

static gpointer
open_release (gpointer data)
{
  const char *fixtures = data;
  for (int r = 0; r < N_ROUNDS; r++) {
    for (guint i = 0; i < G_N_ELEMENTS (shared_fixtures); i++) {
      char *path = g_build_filename (fixtures, shared_fixtures[i], NULL);
      GError *err = NULL;
      MmModel *m = mm_model_open (path, &err);
      if (!m)
        g_error ("%s", err->message);
      mm_model_unref (m);
      g_free (path);
    }
  }
  return NULL;
}

static void
test_open_from_threads (void)
{
  const char *fixtures = g_getenv ("MM_FIXTURES");
  if (!fixtures) {
    g_test_skip ("MM_FIXTURES not set");
    return;
  }
  /* first opens race with each other (nothing held yet) */
  GThread *t[N_THREADS];
  for (int i = 0; i < N_THREADS; i++)
    t[i] = g_thread_new ("open-release", open_release, (gpointer)fixtures);
  for (int i = 0; i < N_THREADS; i++)
    g_thread_join (t[i]);
  /* then with every model held open */
  for (guint i = 0; i < G_N_ELEMENTS (shared_fixtures); i++) {
    char *path = g_build_filename (fixtures, shared_fixtures[i], NULL);
    GError *err = NULL;
    held[i] = mm_model_open (path, &err);
    g_assert_no_error (err);
    g_free (path);
  }
  for (int i = 0; i < N_THREADS; i++)
    t[i] = g_thread_new ("open-many", open_many, (gpointer)fixtures);
  for (int i = 0; i < N_THREADS; i++)
    g_thread_join (t[i]);
  for (guint i = 0; i < G_N_ELEMENTS (shared_fixtures); i++)
    mm_model_unref (held[i]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("mm-hostile-XXXXXX", NULL);
  for (guint i = 0; i < G_N_ELEMENTS (hiding_cases); i++) {
    char *name = g_strdup_printf ("/hostile/json/%s", hiding_cases[i].name);
    g_test_add_data_func (name, &hiding_cases[i], test_hidden_nesting);
    g_free (name);
  }
  g_test_add_func ("/hostile/json/depth-limit", test_depth_limit);
  g_test_add_func ("/hostile/json/strict-accepted", test_strict_json_accepted);
  g_test_add_func ("/hostile/json/not-strict-refused", test_not_strict_refused);
  g_test_add_func ("/hostile/json/repository-models", test_repository_models_pass);
  g_test_add_func ("/hostile/path/not-regular-file", test_not_regular_file);
  for (guint i = 0; i < G_N_ELEMENTS (bomb_cases); i++) {
    char *name = g_strdup_printf ("/hostile/bomb/%s", bomb_cases[i].name);
    g_test_add_data_func (name, &bomb_cases[i], test_bomb);
    g_free (name);
  }
  g_test_add_func ("/hostile/bomb/empty-tensors", test_bomb_empty_tensors);
  g_test_add_func ("/hostile/bomb/graph-conv-packing", test_bomb_graph_packing);
  g_test_add_func ("/hostile/budget/env", test_budget_env);
  g_test_add_func ("/hostile/budget/whole-model", test_budget_whole_model);
  g_test_add_func ("/hostile/budget/load-work", test_budget_load_work);
  g_test_add_func ("/hostile/threads/parse-outside-lock", test_parse_outside_lock);
  g_test_add_func ("/hostile/threads/open-from-8-threads", test_open_from_threads);
  int ret = g_test_run ();
  g_rmdir (tmpdir);
  g_free (tmpdir);
  return ret;
}
