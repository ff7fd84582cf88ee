/* libmm: the BERT text encoder's interface to text-encoder.c.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#ifndef MM_TEXT_BERT_H
#define MM_TEXT_BERT_H

#include "mm-private.h"
#include "preprocess.h"

G_BEGIN_DECLS

typedef struct _MmBertWeights MmBertWeights;
typedef struct _MmBertContext MmBertContext;

/* Parses the "bert" config and binds every tensor (HF BertModel names). */
MmBertWeights *mm_bert_weights_load (const MmSafetensors *st, JsonObject *cfg, const char *label,
    const MmVocab *vocab, gboolean lowercase, guint dim, GError **error);
void mm_bert_weights_free (MmBertWeights *w);
/* Scratch for texts up to max_text_bytes, allocated once. */
MmBertContext *mm_bert_context_new (
    const MmBertWeights *w, gsize max_text_bytes, const char *label, GError **error);
void mm_bert_context_free (MmBertContext *ctx);
/* Runs the layers' linears of @ctx in bf16 from now on, packing the bf16
 * weights of the (shared) model first if no context did; FALSE with an
 * error naming @label when memory is short.  Call only where
 * mm_cpu_has_bf16 (). */
gboolean mm_bert_context_use_bf16 (MmBertContext *ctx, const char *label, GError **error);
/* Tokenise, forward, pool; never allocates. */
gboolean mm_bert_encode (MmBertContext *ctx, const char *utf8, gsize len, float *embedding,
    guint *n_content, GError **error);

G_END_DECLS
#endif
