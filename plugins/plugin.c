/* The mm plugin: registers the elements, nothing else.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gsttextenc.h"
#include "gstimageenc.h"
#include "gstaudioenc.h"
#include "gstmmdecode.h"
#include "gstnumericenc.h"
#ifdef HAVE_MMFUSE
#include "gstmmfuse.h"
#endif
#ifdef HAVE_POCKETSPHINX
#include "gstmmtranscribe.h"
#endif

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ret = FALSE;

  ret |= GST_ELEMENT_REGISTER (textenc, plugin);
  ret |= GST_ELEMENT_REGISTER (imageenc, plugin);
  ret |= GST_ELEMENT_REGISTER (audioenc, plugin);
#ifdef HAVE_MMFUSE
  ret |= GST_ELEMENT_REGISTER (mmfuse, plugin);
#endif
  ret |= GST_ELEMENT_REGISTER (mmdecode, plugin);
  ret |= GST_ELEMENT_REGISTER (numericenc, plugin);
#ifdef HAVE_POCKETSPHINX
  ret |= GST_ELEMENT_REGISTER (mmtranscribe, plugin);
#endif
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, mm,
    "Multimodal inference: text, image and audio encoders, fusion and "
    "classification with libmm models",
    plugin_init, PACKAGE_VERSION, "LGPL", PACKAGE_NAME, PACKAGE_ORIGIN)
