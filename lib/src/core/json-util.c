/* libmm: checked access to the model's JSON configuration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every getter validates type and range and names the component and key in
 * its error, so a bad model file says exactly what is wrong.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "mm-private.h"

/* clang-format off */
G_DEFINE_QUARK (mm-error-quark, mm_error);
/* clang-format on */

void
mm_set_error (GError **error, MmError code, const char *label, const char *fmt, ...)
{
  if (!error)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, MM_ERROR, code, "%s: %s", label, msg);
  g_free (msg);
}

static JsonNode *
member (JsonObject *o, const char *key)
{
  return o ? json_object_get_member (o, key) : NULL;
}

static gboolean
is_number (JsonNode *n)
{
  if (!n || !JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

gboolean
mm_json_uint (JsonObject *o, const char *label, const char *key, gboolean required, guint def,
    guint min, guint max, guint *out, GError **error)
{
  JsonNode *n = member (o, key);
  if (!n) {
    if (required) {
      mm_format_error (error, label, "required key '%s' is missing", key);
      return FALSE;
    }
    *out = def;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64) {
    mm_format_error (error, label, "'%s' must be an integer", key);
    return FALSE;
  }
  gint64 v = json_node_get_int (n);
  if (v < (gint64)min || v > (gint64)max) {
    mm_format_error (
        error, label, "'%s' = %" G_GINT64_FORMAT " is outside [%u, %u]", key, v, min, max);
    return FALSE;
  }
  *out = (guint)v;
  return TRUE;
}

gboolean
mm_json_double (JsonObject *o, const char *label, const char *key, gboolean required, double def,
    double *out, GError **error)
{
  JsonNode *n = member (o, key);
  if (!n) {
    if (required) {
      mm_format_error (error, label, "required key '%s' is missing", key);
      return FALSE;
    }
    *out = def;
    return TRUE;
  }
  if (!is_number (n)) {
    mm_format_error (error, label, "'%s' must be a number", key);
    return FALSE;
  }
  double v = json_node_get_double (n);
  if (!isfinite (v)) {
    mm_format_error (error, label, "'%s' must be finite", key);
    return FALSE;
  }
  *out = v;
  return TRUE;
}

gboolean
mm_json_bool (
    JsonObject *o, const char *label, const char *key, gboolean def, gboolean *out, GError **error)
{
  JsonNode *n = member (o, key);
  if (!n) {
    *out = def;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN) {
    mm_format_error (error, label, "'%s' must be true or false", key);
    return FALSE;
  }
  *out = json_node_get_boolean (n);
  return TRUE;
}

const char *
mm_json_string (JsonObject *o, const char *label, const char *key, gboolean required,
    const char *def, GError **error)
{
  JsonNode *n = member (o, key);
  if (!n) {
    if (required)
      mm_format_error (error, label, "required key '%s' is missing", key);
    return required ? NULL : def;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING) {
    mm_format_error (error, label, "'%s' must be a string", key);
    return NULL;
  }
  return json_node_get_string (n);
}

const char **
mm_json_string_array (JsonObject *o, const char *label, const char *key, guint min_len,
    guint max_len, guint *n_out, GError **error)
{
  JsonNode *n = member (o, key);
  if (!n || !JSON_NODE_HOLDS_ARRAY (n)) {
    mm_format_error (error, label, "'%s' must be an array of strings", key);
    return NULL;
  }
  JsonArray *a = json_node_get_array (n);
  guint len = json_array_get_length (a);
  if (len < min_len || len > max_len) {
    mm_format_error (
        error, label, "'%s' has %u entries, expected %u to %u", key, len, min_len, max_len);
    return NULL;
  }
  const char **v = g_new0 (const char *, len + 1);
  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e) || json_node_get_value_type (e) != G_TYPE_STRING) {
      mm_format_error (error, label, "'%s'[%u] is not a string", key, i);
      g_free (v);
      return NULL;
    }
    v[i] = json_node_get_string (e);
  }
  if (n_out)
    *n_out = len;
  return v;
}

gboolean
mm_json_float_array (
    JsonObject *o, const char *label, const char *key, guint len, float *out, GError **error)
{
  JsonNode *n = member (o, key);
  if (!n || !JSON_NODE_HOLDS_ARRAY (n) || json_array_get_length (json_node_get_array (n)) != len) {
    mm_format_error (error, label, "'%s' must be an array of %u numbers", key, len);
    return FALSE;
  }
  JsonArray *a = json_node_get_array (n);
  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!is_number (e) || !isfinite (json_node_get_double (e))) {
      mm_format_error (error, label, "'%s'[%u] is not a finite number", key, i);
      return FALSE;
    }
    out[i] = (float)json_node_get_double (e);
  }
  return TRUE;
}

/* ---- strict JSON before json-glib ----
 *
 * json-glib's parser recurses once per nesting level and has no limit, so a
 * document nested ~70,000 levels deep overflows an 8 MB stack.  Counting
 * brackets is not enough on its own: json-glib 1.6 also reads '/' to the next
 * '/' as a comment, 'single-quoted' strings, octal escapes, and a \u
 * surrogate escape that swallows the two bytes after it (a closing quote
 * included), so text a bracket counter takes for a string can be structure
 * to json-glib.  Instead, every JSON text from a file must be strict RFC 8259
 * JSON (no comments, no single quotes, only the standard escapes, every
 * surrogate escape paired) nested at most MM_JSON_MAX_DEPTH levels, checked
 * here without recursion.  On such text json-glib sees the same tokens as
 * this reader, so it never nests deeper.  A NUL byte ends the text, as it
 * ends json-glib's scan. */

typedef struct
{
  const guchar *t;
  gsize len, i;
  const char *why; /* set on failure */
} StrictReader;

static void
skip_ws (StrictReader *r)
{
  while (r->i < r->len
      && (r->t[r->i] == ' ' || r->t[r->i] == '\t' || r->t[r->i] == '\n' || r->t[r->i] == '\r'))
    r->i++;
}

/* Four hex digits at r->i; returns the value or -1. */
static gint
read_hex4 (StrictReader *r)
{
  if (r->len - r->i < 4)
    return -1;
  gint v = 0;
  for (int k = 0; k < 4; k++) {
    gint d = g_ascii_xdigit_value (r->t[r->i + k]);
    if (d < 0)
      return -1;
    v = (v << 4) | d;
  }
  r->i += 4;
  return v;
}

/* A string from its opening quote at r->i to just past its closing one. */
static gboolean
strict_string (StrictReader *r)
{
  for (r->i++; r->i < r->len; r->i++) {
    guchar c = r->t[r->i];
    if (c == '"') {
      r->i++;
      return TRUE;
    }
    if (c < 0x20) {
      r->why = "a control character inside a string (must be escaped)";
      return FALSE;
    }
    if (c != '\\')
      continue;
    if (++r->i >= r->len)
      break;
    c = r->t[r->i];
    if (strchr ("\"\\/bfnrt", c))
      continue;
    if (c != 'u') {
      r->why = "an escape other than \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX";
      return FALSE;
    }
    r->i++;
    gint u = read_hex4 (r);
    if (u < 0) {
      r->why = "a \\u escape without four hex digits";
      return FALSE;
    }
    if (u >= 0xd800 && u <= 0xdbff) {
      gint lo = -1;
      if (r->len - r->i >= 2 && r->t[r->i] == '\\' && r->t[r->i + 1] == 'u') {
        r->i += 2;
        lo = read_hex4 (r);
      }
      if (lo < 0xdc00 || lo > 0xdfff) {
        r->why = "an unpaired UTF-16 surrogate escape";
        return FALSE;
      }
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      r->why = "an unpaired UTF-16 surrogate escape";
      return FALSE;
    }
    r->i--; /* the loop steps past the last hex digit */
  }
  r->why = "an unterminated string";
  return FALSE;
}

static gboolean
strict_digits (StrictReader *r)
{
  gsize start = r->i;
  while (r->i < r->len && g_ascii_isdigit (r->t[r->i]))
    r->i++;
  return r->i > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static gboolean
strict_number (StrictReader *r)
{
  if (r->t[r->i] == '-')
    r->i++;
  if (r->i < r->len && r->t[r->i] == '0')
    r->i++;
  else if (!strict_digits (r))
    goto bad;
  if (r->i < r->len && r->t[r->i] == '.') {
    r->i++;
    if (!strict_digits (r))
      goto bad;
  }
  if (r->i < r->len && (r->t[r->i] == 'e' || r->t[r->i] == 'E')) {
    r->i++;
    if (r->i < r->len && (r->t[r->i] == '+' || r->t[r->i] == '-'))
      r->i++;
    if (!strict_digits (r))
      goto bad;
  }
  return TRUE;
bad:
  r->why = "a malformed number";
  return FALSE;
}

static gboolean
strict_literal (StrictReader *r, const char *word)
{
  gsize n = strlen (word);
  if (r->len - r->i < n || memcmp (r->t + r->i, word, n) != 0) {
    r->why = "an unexpected word (only true, false and null are JSON)";
    return FALSE;
  }
  r->i += n;
  return TRUE;
}

/* A scalar, or the opening of a container (pushed on @stack). */
static gboolean
strict_value_start (StrictReader *r, char *stack, guint *depth)
{
  guchar c = r->t[r->i];
  switch (c) {
    case '{':
    case '[':
      if (*depth >= MM_JSON_MAX_DEPTH) {
        r->why = NULL; /* the caller names the depth */
        return FALSE;
      }
      stack[(*depth)++] = (char)c;
      r->i++;
      return TRUE;
    case '"':
      return strict_string (r);
    case 't':
      return strict_literal (r, "true");
    case 'f':
      return strict_literal (r, "false");
    case 'n':
      return strict_literal (r, "null");
    case '/':
      r->why = "a comment (model files never need one)";
      return FALSE;
    case '\'':
      r->why = "a single-quoted string";
      return FALSE;
    default:
      if (c == '-' || g_ascii_isdigit (c))
        return strict_number (r);
      r->why = "an unexpected character where a value should be";
      return FALSE;
  }
}

/* json-glib's tree, measured with 1.6.6 on x86-64: ~400 bytes per object
 * (its hash table and member list), ~210 per array and ~180 per scalar or
 * key, plus the strings.  Rounded up, so that the estimate is an upper
 * bound for the tree a text can make. */
#define TREE_BYTES_PER_CONTAINER 400
#define TREE_BYTES_PER_SCALAR 180

gboolean
mm_json_check_depth (const char *text, gsize len, const char *label, const char *what,
    guint64 *tree_bytes, GError **error)
{
  guint64 n_containers = 0, n_scalars = 0;
  StrictReader r = { (const guchar *)text, 0, 0, NULL };
  const char *nul = memchr (text, '\0', len);
  r.len = nul ? (gsize)(nul - text) : len;
  char stack[MM_JSON_MAX_DEPTH];
  guint depth = 0;
  /* expecting: a value; a key (or '}' right after '{'); a ':' ; a ',' or a closer */
  enum
  {
    VALUE,
    FIRST_KEY,
    KEY,
    COLON,
    NEXT
  } expect = VALUE;
  gboolean first_in_array = FALSE;

  for (;;) {
    skip_ws (&r);
    if (r.i >= r.len) {
      if (expect == NEXT && depth == 0) {
        if (tree_bytes)
          *tree_bytes =
              n_containers * TREE_BYTES_PER_CONTAINER + n_scalars * TREE_BYTES_PER_SCALAR + r.len;
        return TRUE;
      }
      r.why = "an unexpected end of the text";
      goto fail;
    }
    guchar c = r.t[r.i];
    if (c == '/') {
      r.why = "a comment (model files never need one)";
      goto fail;
    }
    switch (expect) {
      case VALUE:
        if (c == ']' && first_in_array) {
          depth--;
          r.i++;
          expect = NEXT;
          first_in_array = FALSE;
          break;
        }
        if (!strict_value_start (&r, stack, &depth))
          goto fail;
        if (c == '{' || c == '[')
          n_containers++;
        else
          n_scalars++;
        first_in_array = FALSE;
        if (c == '{')
          expect = FIRST_KEY;
        else if (c == '[') {
          expect = VALUE;
          first_in_array = TRUE;
        } else
          expect = NEXT;
        break;
      case FIRST_KEY:
      case KEY:
        if (c == '}' && expect == FIRST_KEY) {
          depth--;
          r.i++;
          expect = NEXT;
          break;
        }
        if (c != '"') {
          r.why = c == '\'' ? "a single-quoted string" : "an object key that is not a string";
          goto fail;
        }
        if (!strict_string (&r))
          goto fail;
        n_scalars++;
        expect = COLON;
        break;
      case COLON:
        if (c != ':') {
          r.why = "a missing ':' after an object key";
          goto fail;
        }
        r.i++;
        expect = VALUE;
        break;
      case NEXT:
        if (depth == 0) {
          r.why = "more text after the JSON value";
          goto fail;
        }
        if (c == ',') {
          r.i++;
          expect = stack[depth - 1] == '{' ? KEY : VALUE;
        } else if ((c == '}' && stack[depth - 1] == '{') || (c == ']' && stack[depth - 1] == '[')) {
          depth--;
          r.i++;
          expect = NEXT;
        } else {
          r.why = "an unexpected character after a value";
          goto fail;
        }
        break;
    }
  }

fail:
  if (!r.why)
    mm_format_error (error, label,
        "%s is nested more than %d levels deep (at byte %" G_GSIZE_FORMAT ")", what,
        MM_JSON_MAX_DEPTH, r.i);
  else
    mm_format_error (error, label,
        "%s is not valid JSON: %s at byte %" G_GSIZE_FORMAT
        " (libmm reads strict RFC 8259 JSON, see models/FORMAT.md)",
        what, r.why, r.i);
  return FALSE;
}

/* ---- resource budget ---- */

/* "1073741824", "1024M", "1G", "200G": a size or a count with an optional
 * binary (K, M, G, T) suffix; 0 on anything else. */
static guint64
parse_limit (const char *s)
{
  if (!s || !*s)
    return 0;
  char *end = NULL;
  guint64 v = g_ascii_strtoull (s, &end, 10);
  if (end == s)
    return 0;
  int shift = 0;
  switch (g_ascii_toupper (*end)) {
    case 'K':
      shift = 10;
      break;
    case 'M':
      shift = 20;
      break;
    case 'G':
      shift = 30;
      break;
    case 'T':
      shift = 40;
      break;
    case '\0':
      break;
    default:
      return 0;
  }
  if (shift && end[1] != '\0' && g_ascii_toupper (end[1]) != 'B')
    return 0;
  return v > (G_MAXUINT64 >> shift) ? G_MAXUINT64 : v << shift;
}

static guint64
limit_from_env (const char *var, guint64 def)
{
  guint64 v = parse_limit (g_getenv (var));
  return v ? v : def;
}

guint64
mm_budget_max_memory (void)
{
  return limit_from_env ("MM_MAX_MEMORY", MM_DEFAULT_MAX_MEMORY);
}

guint64
mm_budget_max_work (void)
{
  return limit_from_env ("MM_MAX_WORK", MM_DEFAULT_MAX_WORK);
}

/* "17448", "64", "5.88", "0.0867": whole numbers from 100 on, else three
 * significant digits, so that low limits (tests, small devices) stay
 * readable in MB and GFLOP */
static void
format_figure (char *buf, gsize size, double v)
{
  g_snprintf (buf, size, v >= 100.0 ? "%.0f" : "%.3g", v);
}

/* The model being loaded on this thread: what its parts counted so far. */
typedef struct
{
  guint depth;  /* mm_budget_load_begin () nesting */
  guint64 used; /* bytes */
  guint64 work; /* the largest FLOPs per item passed since the outer begin */
} BudgetLoad;

static GPrivate budget_load_key = G_PRIVATE_INIT (g_free);

static BudgetLoad *
budget_load (void)
{
  BudgetLoad *b = g_private_get (&budget_load_key);
  if (!b) {
    b = g_new0 (BudgetLoad, 1);
    g_private_set (&budget_load_key, b);
  }
  return b;
}

void
mm_budget_load_begin (void)
{
  BudgetLoad *b = budget_load ();
  if (b->depth++ == 0)
    b->used = b->work = 0;
}

void
mm_budget_load_end (void)
{
  BudgetLoad *b = budget_load ();
  if (b->depth > 0 && --b->depth == 0)
    b->used = 0;
}

void
mm_budget_release (guint64 bytes)
{
  BudgetLoad *b = budget_load ();
  if (b->depth > 0)
    b->used -= MIN (bytes, b->used);
}

gboolean
mm_budget_check (const char *label, const char *what, guint64 bytes, guint64 flops, GError **error)
{
  guint64 max_bytes = mm_budget_max_memory (), max_flops = mm_budget_max_work ();
  BudgetLoad *load = budget_load ();
  guint64 before = load->depth > 0 ? load->used : 0;
  char need[32], limit[32], total[32];
  if (bytes > max_bytes || before + bytes > max_bytes || before + bytes < before) {
    format_figure (need, sizeof need, bytes / 1048576.0);
    format_figure (limit, sizeof limit, max_bytes / 1048576.0);
    if (bytes <= max_bytes) {
      format_figure (total, sizeof total, (before + bytes) / 1048576.0);
      mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
          "%s needs %s MB of memory, %s MB with the rest of the model, over the limit of %s MB "
          "(raise it with MM_MAX_MEMORY=bytes, K/M/G/T suffixes allowed)",
          what, need, total, limit);
      return FALSE;
    }
    mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
        "%s needs %s MB of memory, over the limit of %s MB (raise it with MM_MAX_MEMORY=bytes, "
        "K/M/G/T suffixes allowed)",
        what, need, limit);
    return FALSE;
  }
  if (flops > max_flops) {
    format_figure (need, sizeof need, flops / 1e9);
    format_figure (limit, sizeof limit, max_flops / 1e9);
    mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
        "%s needs %s GFLOP per item, over the limit of %s GFLOP (raise it with MM_MAX_WORK=flops, "
        "K/M/G/T suffixes allowed)",
        what, need, limit);
    return FALSE;
  }
  if (load->depth > 0) {
    load->used += bytes;
    load->work = MAX (load->work, flops);
  }
  return TRUE;
}

guint64
mm_budget_load_work (void)
{
  return budget_load ()->work;
}
