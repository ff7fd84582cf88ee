/* mmpublish: decisions as JSON lines to a file or an MQTT broker
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_MM_PUBLISH_H
#define GST_MM_PUBLISH_H

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_MM_PUBLISH (gst_mm_publish_get_type ())
G_DECLARE_FINAL_TYPE (GstMmPublish, gst_mm_publish, GST, MM_PUBLISH, GstBaseTransform);

GST_ELEMENT_REGISTER_DECLARE (mmpublish);

G_END_DECLS
#endif
