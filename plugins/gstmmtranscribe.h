/* mmtranscribe: speech to transcripts timed by the speech they come from
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef GST_MM_TRANSCRIBE_H
#define GST_MM_TRANSCRIBE_H

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_MM_TRANSCRIBE (gst_mm_transcribe_get_type ())
G_DECLARE_FINAL_TYPE (GstMmTranscribe, gst_mm_transcribe, GST, MM_TRANSCRIBE, GstElement);

GST_ELEMENT_REGISTER_DECLARE (mmtranscribe);

G_END_DECLS
#endif
