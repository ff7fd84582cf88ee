/* libmm: checked access to the model's JSON configuration.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every getter validates type and range and names the component and key in
 * its error, so a bad model file says exactly what is wrong.
 */
#include <math.h>
#include <stdarg.h>

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

gboolean
mm_json_check_depth (
    const char *text, gsize len, const char *label, const char *what, GError **error)
{
  guint depth = 0;
  gboolean in_string = FALSE;
  for (gsize i = 0; i < len; i++) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_string = FALSE;
    } else if (c == '"') {
      in_string = TRUE;
    } else if (c == '[' || c == '{') {
      if (++depth > MM_JSON_MAX_DEPTH) {
        mm_format_error (
            error, label, "%s is nested more than %d levels deep", what, MM_JSON_MAX_DEPTH);
        return FALSE;
      }
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return TRUE;
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

gboolean
mm_budget_check (const char *label, const char *what, guint64 bytes, guint64 flops, GError **error)
{
  guint64 max_bytes = mm_budget_max_memory (), max_flops = mm_budget_max_work ();
  if (bytes > max_bytes) {
    mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
        "%s needs %" G_GUINT64_FORMAT " MB of memory, over the limit of %" G_GUINT64_FORMAT
        " MB (raise it with MM_MAX_MEMORY=bytes, K/M/G suffixes allowed)",
        what, bytes >> 20, max_bytes >> 20);
    return FALSE;
  }
  if (flops > max_flops) {
    mm_set_error (error, MM_ERROR_UNSUPPORTED, label,
        "%s needs %.1f GFLOP per item, over the limit of %.1f GFLOP (raise it with "
        "MM_MAX_WORK=flops, K/M/G suffixes allowed)",
        what, flops / 1e9, max_flops / 1e9);
    return FALSE;
  }
  return TRUE;
}
