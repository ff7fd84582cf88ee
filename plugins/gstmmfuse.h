/* mmfuse: timestamp-synchronised fusion of embedding streams
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_MM_FUSE_H
#define GST_MM_FUSE_H

#include <gst/gst.h>
#include <gst/base/gstaggregator.h>

G_BEGIN_DECLS

#define GST_TYPE_MM_FUSE (gst_mm_fuse_get_type ())
G_DECLARE_FINAL_TYPE (GstMmFuse, gst_mm_fuse, GST, MM_FUSE, GstAggregator)

#define GST_TYPE_MM_FUSE_PAD (gst_mm_fuse_pad_get_type ())
G_DECLARE_FINAL_TYPE (GstMmFusePad, gst_mm_fuse_pad, GST, MM_FUSE_PAD, GstAggregatorPad)

GST_ELEMENT_REGISTER_DECLARE (mmfuse);

G_END_DECLS
#endif
