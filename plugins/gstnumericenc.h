/* numericenc: numeric samples (sensor values) to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_NUMERIC_ENC_H
#define GST_NUMERIC_ENC_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_NUMERIC_ENC (gst_numeric_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstNumericEnc, gst_numeric_enc, GST, NUMERIC_ENC, GstElement);

GST_ELEMENT_REGISTER_DECLARE (numericenc);

G_END_DECLS
#endif
