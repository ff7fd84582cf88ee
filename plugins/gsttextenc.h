/* textenc: text cues to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_TEXT_ENC_H
#define GST_TEXT_ENC_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_TEXT_ENC (gst_text_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstTextEnc, gst_text_enc, GST, TEXT_ENC, GstElement);

GST_ELEMENT_REGISTER_DECLARE (textenc);

G_END_DECLS
#endif
