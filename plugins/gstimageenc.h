/* imageenc: video frames to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_IMAGE_ENC_H
#define GST_IMAGE_ENC_H

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_IMAGE_ENC (gst_image_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstImageEnc, gst_image_enc, GST, IMAGE_ENC, GstBaseTransform);

GST_ELEMENT_REGISTER_DECLARE (imageenc);

G_END_DECLS
#endif
