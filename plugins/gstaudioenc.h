/* audioenc: audio windows to embeddings
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_AUDIO_ENC_H
#define GST_AUDIO_ENC_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_AUDIO_ENC (gst_audio_enc_get_type ())
G_DECLARE_FINAL_TYPE (GstAudioEnc, gst_audio_enc, GST, AUDIO_ENC, GstElement);

GST_ELEMENT_REGISTER_DECLARE (audioenc);

G_END_DECLS
#endif
