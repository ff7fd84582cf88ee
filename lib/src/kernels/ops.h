/* libmm layers: small pure functions, output first, inputs const.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Layout is PyTorch's: row-major, weights (out, in[, k...]), activations
 * (channels, spatial...) for one example.  The ops call BLAS only through
 * mm_sgemm (blas.c, the one file that talks to OpenBLAS);
 * mm_ops_set_reference (TRUE) switches every op to plain C loops so
 * tests can compare both paths.  None of these functions allocate.
 */
#ifndef MM_OPS_H
#define MM_OPS_H

#include <glib.h>

G_BEGIN_DECLS

/* Test hook: TRUE = plain C reference loops instead of BLAS.  Not thread-safe;
 * set it before running. */
void mm_ops_set_reference (gboolean reference);
gboolean mm_ops_get_reference (void);

/* Loads OpenBLAS (see blas.c), sets its thread count.  Idempotent,
 * thread-safe; called by every *_new(). */
void mm_blas_init (void);
void mm_blas_set_threads (int n);
int mm_blas_get_threads (void); /* OpenBLAS threads (MM_THREADS or the last set) */
/* AVX-512 (F, BW, DQ, VL, CD: the x86-64-v4 clones): 32 vector registers,
 * room for 8 x 32 register tiles (checked once, any thread) */
gboolean mm_cpu_has_avx512 (void);

/* C (m, n) = alpha op(A) op(B) + beta C, row-major; op = transpose when trans_*. */
void mm_sgemm (gboolean trans_a, gboolean trans_b, int m, int n, int k, float alpha, const float *a,
    int lda, const float *b, int ldb, float beta, float *c, int ldc);

/* y (n, d_out) = x (n, d_in) W^T + b;   W (d_out, d_in), b (d_out) or NULL */
void
mm_linear (float *y, const float *x, const float *w, const float *b, int n, int d_in, int d_out);

static inline int
mm_conv_out_size (int in, int kernel, int stride, int pad)
{
  return (in + 2 * pad - kernel) / stride + 1;
}

/* Scratch floats mm_conv2d needs (im2col), 0 when the conv is 1x1 stride 1 pad 0. */
gsize
mm_conv2d_scratch_size (int c_in, int h, int w, int kh, int kw, int stride, int pad, int groups);
/* y (c_out, h_out, w_out) = conv2d (x (c_in, h, w), W (c_out, c_in/groups, kh, kw)) + b */
void mm_conv2d (float *y, const float *x, const float *w, const float *b, int c_in, int h, int wd,
    int c_out, int kh, int kw, int stride, int pad, int groups, float *scratch);

gsize mm_conv1d_scratch_size (int c_in, int t, int k, int stride, int pad, int groups);
/* y (c_out, t_out) = conv1d (x (c_in, t), W (c_out, c_in/groups, k)) + b */
void mm_conv1d (float *y, const float *x, const float *w, const float *b, int c_in, int t,
    int c_out, int k, int stride, int pad, int groups, float *scratch);

/* Batch-norm at inference folded to per-channel scale/shift:
 * scale = g / sqrt (var + eps), shift = b - mean * scale.   (c) each */
void mm_batchnorm_fold (float *scale, float *shift, const float *gamma, const float *beta,
    const float *mean, const float *var, int c, float eps);
/* x (c, n) = x * scale[c] + shift[c], in place */
void mm_channel_affine (float *x, int c, int n, const float *scale, const float *shift);

/* y (c, h_out, w_out) = max/avg pool of x (c, h, w); avg counts padding like
 * PyTorch's default (count_include_pad=True); max ignores padding. */
void mm_maxpool2d (float *y, const float *x, int c, int h, int w, int k, int stride, int pad);
void mm_avgpool2d (float *y, const float *x, int c, int h, int w, int k, int stride, int pad);
/* y (c) = mean / max over n of x (c, n) */
void mm_global_avgpool (float *y, const float *x, int c, int n);
void mm_global_maxpool (float *y, const float *x, int c, int n);

/* y (n, d) = LayerNorm over d of x (n, d); y may equal x */
void mm_layernorm (
    float *y, const float *x, int n, int d, const float *gamma, const float *beta, float eps);

/* In place, over n values. */
void mm_relu (float *x, gsize n);
void mm_gelu (float *x, gsize n); /* exact: 0.5 x (1 + erf (x / sqrt 2)) */
void mm_silu (float *x, gsize n);
void mm_tanh (float *x, gsize n);
void mm_sigmoid (float *x, gsize n);
/* softmax over each row of x (n, d), in place, max-subtracted */
void mm_softmax (float *x, int n, int d);
/* y (n, d) += x (n, d) */
void mm_add (float *y, const float *x, gsize n);

/* y (n, d) = table[ids[i]] ; ids must be < rows (checked by the caller) */
void mm_embedding (float *y, const float *table, const gint32 *ids, int n, int d);

/* Scaled dot-product attention on already projected q, k, v:
 * y (n_q, d) = concat_h softmax (q_h k_h^T / sqrt (d/heads) + mask) v_h
 * key_valid (n_k) : nonzero = attend, NULL = all valid.  If no key is valid
 * for a query, its output is zeros.  scratch: n_q * n_k floats. */
void mm_attention (float *y, const float *q, const float *k, const float *v, int n_q, int n_k,
    int d, int heads, const guint8 *key_valid, float *scratch);

G_END_DECLS
#endif
