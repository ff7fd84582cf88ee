/* mmdecode: fused embeddings to decisions
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_MM_DECODE_H
#define GST_MM_DECODE_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MM_DECODE (gst_mm_decode_get_type ())
G_DECLARE_FINAL_TYPE (GstMmDecode, gst_mm_decode, GST, MM_DECODE, GstElement);

GST_ELEMENT_REGISTER_DECLARE (mmdecode);

G_END_DECLS
#endif
