/* libmm: a subtitle cue's text as the text encoder takes it: pango markup
 * removed, blank cues recognised.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * textenc's text path (it used to live in the plugin): here it is a
 * library function that the unit tests and the fuzz-preprocess target
 * reach without GStreamer.  A hand-written pass, not pango_parse_markup ():
 * the plugin does not depend on Pango, and the malformed markup of real
 * subtitle files (an unclosed tag, a stray '&') still gives text instead
 * of an error.
 */
#include <string.h>

#include "mm.h"

/* Decodes the entity at @s (just after '&', @n bytes left) into @out.
 * Returns the bytes consumed after '&' (including ';'), or 0 if it is not
 * a known or well-formed entity. */
static gsize
decode_entity (const char *s, gsize n, GString *out)
{
  static const struct
  {
    const char *name;
    gunichar c;
  } named[] = {
    { "amp;", '&' },
    { "lt;", '<' },
    { "gt;", '>' },
    { "quot;", '"' },
    { "apos;", '\'' },
    { "nbsp;", 0xA0 },
  };

  if (n >= 2 && s[0] == '#') {
    gboolean hex = (s[1] == 'x' || s[1] == 'X');
    gsize k = hex ? 2 : 1;
    guint64 c = 0;
    gsize digits = 0;

    while (k < n && digits < 8 && (hex ? g_ascii_isxdigit (s[k]) : g_ascii_isdigit (s[k]))) {
      c = c * (hex ? 16 : 10) + (hex ? g_ascii_xdigit_value (s[k]) : g_ascii_digit_value (s[k]));
      k++;
      digits++;
    }
    if (digits == 0 || k >= n || s[k] != ';' || c == 0 || c > 0x10FFFF
        || !g_unichar_validate ((gunichar)c))
      return 0;
    g_string_append_unichar (out, (gunichar)c);
    return k + 1;
  }
  for (guint i = 0; i < G_N_ELEMENTS (named); i++) {
    gsize l = strlen (named[i].name);
    if (n >= l && memcmp (s, named[i].name, l) == 0) {
      g_string_append_unichar (out, named[i].c);
      return l;
    }
  }
  return 0;
}

gsize
mm_cue_length (const char *text, gsize len)
{
  /* a buffer without memory maps to (NULL, 0): memchr must not see NULL */
  const char *nul = len ? memchr (text, '\0', len) : NULL;
  return nul ? (gsize)(nul - text) : len;
}

void
mm_markup_strip (const char *text, gsize len, GString *out)
{
  gsize i = 0;

  g_string_truncate (out, 0);
  while (i < len) {
    gsize next = i;

    while (next < len && text[next] != '<' && text[next] != '&')
      next++;
    g_string_append_len (out, text + i, next - i);
    i = next;
    if (i == len)
      break;
    if (text[i] == '<') {
      const char *gt = memchr (text + i, '>', len - i);
      i = gt ? (gsize)(gt - text) + 1 : len;
    } else {
      gsize used = decode_entity (text + i + 1, len - i - 1, out);
      if (used == 0)
        g_string_append_c (out, '&');
      i += 1 + used;
    }
  }
}

gboolean
mm_text_is_blank (const char *text, gsize len)
{
  if (len == 0)
    return TRUE; /* text may then be NULL, and NULL + 0 is undefined */
  const char *p = text, *end = text + len;

  while (p < end) {
    gunichar c;

    if (g_ascii_isspace (*p)) {
      p++;
      continue;
    }
    if ((guchar)*p < 0x80)
      return FALSE;
    c = g_utf8_get_char_validated (p, end - p);
    if (c == (gunichar)-1 || c == (gunichar)-2 || !g_unichar_isspace (c))
      return FALSE;
    p = g_utf8_next_char (p);
  }
  return TRUE;
}
