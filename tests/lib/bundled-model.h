/* Tests that run the bundled model (models/scenes.safetensors).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef MM_TEST_BUNDLED_MODEL_H
#define MM_TEST_BUNDLED_MODEL_H

#include <glib.h>
#include "mm.h"

/* The bundled model, found from MM_FIXTURES (tests/fixtures); NULL, with
 * the test marked skipped, when the checkout has none. */
static inline MmModel *
bundled_model_open_or_skip (void)
{
  const char *dir = g_getenv ("MM_FIXTURES");
  char *path = g_build_filename (
      dir ? dir : "tests/fixtures", "..", "..", "models", "scenes.safetensors", NULL);
  MmModel *m = NULL;
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    g_test_skip ("no models/scenes.safetensors");
  } else {
    GError *err = NULL;
    m = mm_model_open (path, &err);
    g_assert_no_error (err);
  }
  g_free (path);
  return m;
}

#endif
