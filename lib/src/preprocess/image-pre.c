/* libmm: image preprocessing -- bilinear resize, RGB planes, normalisation.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The resize reproduces torch.nn.functional.interpolate (mode="bilinear",
 * align_corners=False, antialias=False) on the 8-bit image converted to
 * float, step for step and in single precision like PyTorch's CPU kernel:
 *   scale = in / out,  src = max (scale * (dst + 0.5) - 0.5, 0),
 *   i0 = min ((int) src, in - 1),  i1 = i0 + (i0 < in - 1),
 *   l1 = clamp (src - i0, 0, 1),  l0 = 1 - l1,
 *   v = (p[y0][x0] l0x + p[y0][x1] l1x) l0y + (p[y1][x0] l0x + p[y1][x1] l1x) l1y
 * then x = (v / 255 - mean) / std per channel.  Downscaling does not
 * anti-alias, exactly as that call.
 */
#include <math.h>

#include "preprocess.h"

#define MM_IMAGE_MAX_SIDE 16384

typedef struct
{
  guint bpp;    /* bytes per pixel */
  guint off[3]; /* byte offsets of R, G, B in a pixel */
} PixelLayout;

static gboolean
pixel_layout (MmPixelFormat fmt, PixelLayout *l)
{
  static const PixelLayout layouts[] = {
    [MM_PIXEL_RGB] = { 3, { 0, 1, 2 } },
    [MM_PIXEL_BGR] = { 3, { 2, 1, 0 } },
    [MM_PIXEL_RGBx] = { 4, { 0, 1, 2 } },
    [MM_PIXEL_BGRx] = { 4, { 2, 1, 0 } },
    [MM_PIXEL_xRGB] = { 4, { 1, 2, 3 } },
    [MM_PIXEL_xBGR] = { 4, { 3, 2, 1 } },
    [MM_PIXEL_RGBA] = { 4, { 0, 1, 2 } },
    [MM_PIXEL_BGRA] = { 4, { 2, 1, 0 } },
    [MM_PIXEL_ARGB] = { 4, { 1, 2, 3 } },
    [MM_PIXEL_ABGR] = { 4, { 3, 2, 1 } },
    [MM_PIXEL_GRAY8] = { 1, { 0, 0, 0 } },
  };
  if ((guint)fmt >= G_N_ELEMENTS (layouts))
    return FALSE;
  *l = layouts[fmt];
  return TRUE;
}

/* Source taps and weights of output index @dst (PyTorch's
 * compute_source_index_and_lambda, align_corners=False). */
static inline void
linear_taps (guint dst, guint in, float scale, guint *i0, guint *i1, float *l0, float *l1)
{
  float src = scale * ((float)dst + 0.5f) - 0.5f;
  if (src < 0.0f)
    src = 0.0f;
  guint i = (guint)src;
  if (i > in - 1)
    i = in - 1;
  *i0 = i;
  *i1 = i + (i < in - 1 ? 1 : 0);
  float w = src - (float)i;
  *l1 = w < 0.0f ? 0.0f : (w > 1.0f ? 1.0f : w);
  *l0 = 1.0f - *l1;
}

static gboolean
check_side (const char *what, guint v, GError **error)
{
  if (v == 0 || v > MM_IMAGE_MAX_SIDE) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: %s %u is outside 1..%u", what, v,
        MM_IMAGE_MAX_SIDE);
    return FALSE;
  }
  return TRUE;
}

/* out (3, h, w) = normalised pixels of an image that already has the
 * network's size.  The resize is then the identity (every source index is
 * the destination index with weights 1 and 0, so v is exactly the byte),
 * and the normalisation of each of the 256 byte values is computed once,
 * with the same float expression as the resizing path: bit-identical. */
static void
normalise_same_size (float *out, const float mean[3], const float std[3], const PixelLayout *lay,
    const guint8 *pixels, guint w, guint h, gsize stride)
{
  float lut[3][256];
  gsize plane = (gsize)w * h;
  for (int c = 0; c < 3; c++)
    for (int v = 0; v < 256; v++)
      lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
  for (guint y = 0; y < h; y++) {
    const guint8 *row = pixels + (gsize)y * stride;
    float *o = out + (gsize)y * w;
    for (int c = 0; c < 3; c++) {
      const guint8 *p = row + lay->off[c];
      const float *l = lut[c];
      float *oc = o + c * plane;
      for (guint x = 0; x < w; x++)
        oc[x] = l[p[(gsize)x * lay->bpp]];
    }
  }
}

gboolean
mm_image_preprocess (float *out, guint out_w, guint out_h, const float mean[3], const float std[3],
    MmPixelFormat fmt, const guint8 *pixels, guint width, guint height, gsize stride,
    GError **error)
{
  PixelLayout lay;
  if (!out || !pixels || !mean || !std) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: NULL %s",
        !out          ? "output"
            : !pixels ? "pixels"
                      : "mean/std");
    return FALSE;
  }
  if (!pixel_layout (fmt, &lay)) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: unknown pixel format %d", fmt);
    return FALSE;
  }
  if (!check_side ("width", width, error) || !check_side ("height", height, error)
      || !check_side ("output width", out_w, error) || !check_side ("output height", out_h, error))
    return FALSE;
  if (stride < (gsize)width * lay.bpp) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
        "image: stride %" G_GSIZE_FORMAT " is shorter than a row of %u pixels (%" G_GSIZE_FORMAT
        " bytes)",
        stride, width, (gsize)width * lay.bpp);
    return FALSE;
  }
  for (int c = 0; c < 3; c++)
    if (!isfinite (mean[c]) || !isfinite (std[c]) || std[c] == 0.0f) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
          "image: channel %d has mean %g, std %g (std must be finite and non-zero)", c, mean[c],
          std[c]);
      return FALSE;
    }

  if (width == out_w && height == out_h) {
    normalise_same_size (out, mean, std, &lay, pixels, width, height, stride);
    return TRUE;
  }

  float scale_x = (float)width / (float)out_w;
  float scale_y = (float)height / (float)out_h;
  gsize plane = (gsize)out_w * out_h;
  /* out (3, out_h, out_w) */
  for (guint y = 0; y < out_h; y++) {
    guint y0, y1;
    float wy0, wy1;
    linear_taps (y, height, scale_y, &y0, &y1, &wy0, &wy1);
    const guint8 *r0 = pixels + (gsize)y0 * stride;
    const guint8 *r1 = pixels + (gsize)y1 * stride;
    float *o = out + (gsize)y * out_w;
    for (guint x = 0; x < out_w; x++) {
      guint x0, x1;
      float wx0, wx1;
      linear_taps (x, width, scale_x, &x0, &x1, &wx0, &wx1);
      const guint8 *p00 = r0 + (gsize)x0 * lay.bpp, *p01 = r0 + (gsize)x1 * lay.bpp;
      const guint8 *p10 = r1 + (gsize)x0 * lay.bpp, *p11 = r1 + (gsize)x1 * lay.bpp;
      for (int c = 0; c < 3; c++) {
        guint k = lay.off[c];
        float top = (float)p00[k] * wx0 + (float)p01[k] * wx1;
        float bottom = (float)p10[k] * wx0 + (float)p11[k] * wx1;
        float v = top * wy0 + bottom * wy1;
        o[c * plane + x] = (v / 255.0f - mean[c]) / std[c];
      }
    }
  }
  return TRUE;
}

/* ---- YUV ----
 * R = Y' + 2 (1 - Kr) Cr,  B = Y' + 2 (1 - Kb) Cb,
 * G = Y' - (2 Kr (1 - Kr) Cr + 2 Kb (1 - Kb) Cb) / Kg,
 * with Y' = (Y - 16) 255/219 and C = (C - 128) 255/224 in limited range,
 * Y' = Y and C = C - 128 in full range; clamped to 0..255, not rounded.
 * videoconvert computes the same in 8-bit fixed point and truncates, so it
 * lands up to a few levels below this (tests/check/yuv-videoconvert.c measures the
 * bound against it). */
typedef struct
{
  float ys, yo;         /* Y' = Y * ys + yo */
  float cs;             /* chroma scale around 128 */
  float rv, gu, gv, bu; /* R += rv Cr, G += gu Cb + gv Cr, B += bu Cb */
} YuvCoef;

static void
yuv_coef (YuvCoef *k, MmYuvMatrix matrix, gboolean full_range)
{
  double kr = 0.299, kb = 0.114;
  if (matrix == MM_YUV_BT709)
    kr = 0.2126, kb = 0.0722;
  else if (matrix == MM_YUV_BT2020)
    kr = 0.2627, kb = 0.0593;
  double kg = 1.0 - kr - kb;
  double ys = full_range ? 1.0 : 255.0 / 219.0;
  double cs = full_range ? 1.0 : 255.0 / 224.0;
  k->ys = (float)ys;
  k->yo = (float)(full_range ? 0.0 : -16.0 * ys);
  k->cs = (float)cs;
  k->rv = (float)(2.0 * (1.0 - kr));
  k->bu = (float)(2.0 * (1.0 - kb));
  k->gu = (float)(-2.0 * kb * (1.0 - kb) / kg);
  k->gv = (float)(-2.0 * kr * (1.0 - kr) / kg);
}

static inline float
clamp255 (float v)
{
  return v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
}

/* rgb[3] of pixel (x, y) of a YUV image; @fmt is a constant at each call
 * site so the switch folds away. */
static inline __attribute__ ((always_inline)) void
yuv_pixel (float rgb[3], const MmImage *im, MmPixelFormat fmt, const YuvCoef *k, guint x, guint y)
{
  guint yv, u, v;
  if (fmt == MM_PIXEL_I420) {
    yv = im->planes[0][(gsize)y * im->strides[0] + x];
    u = im->planes[1][(gsize)(y >> 1) * im->strides[1] + (x >> 1)];
    v = im->planes[2][(gsize)(y >> 1) * im->strides[2] + (x >> 1)];
  } else if (fmt == MM_PIXEL_NV12) {
    yv = im->planes[0][(gsize)y * im->strides[0] + x];
    const guint8 *uv = im->planes[1] + (gsize)(y >> 1) * im->strides[1] + (x & ~1u);
    u = uv[0];
    v = uv[1];
  } else { /* YUY2 */
    const guint8 *mp = im->planes[0] + (gsize)y * im->strides[0] + (gsize)(x >> 1) * 4;
    yv = mp[(x & 1) * 2];
    u = mp[1];
    v = mp[3];
  }
  float yy = (float)yv * k->ys + k->yo;
  float cb = ((float)u - 128.0f) * k->cs, cr = ((float)v - 128.0f) * k->cs;
  rgb[0] = clamp255 (yy + k->rv * cr);
  rgb[1] = clamp255 (yy + k->gu * cb + k->gv * cr);
  rgb[2] = clamp255 (yy + k->bu * cb);
}

static inline __attribute__ ((always_inline)) void
resize_yuv (float *out, guint out_w, guint out_h, const float mean[3], const float std[3],
    const MmImage *im, MmPixelFormat fmt, const YuvCoef *k)
{
  float scale_x = (float)im->width / (float)out_w;
  float scale_y = (float)im->height / (float)out_h;
  gsize plane = (gsize)out_w * out_h;
  for (guint y = 0; y < out_h; y++) {
    guint y0, y1;
    float wy0, wy1;
    linear_taps (y, im->height, scale_y, &y0, &y1, &wy0, &wy1);
    float *o = out + (gsize)y * out_w;
    for (guint x = 0; x < out_w; x++) {
      guint x0, x1;
      float wx0, wx1;
      linear_taps (x, im->width, scale_x, &x0, &x1, &wx0, &wx1);
      float p00[3], p01[3], p10[3], p11[3];
      yuv_pixel (p00, im, fmt, k, x0, y0);
      yuv_pixel (p01, im, fmt, k, x1, y0);
      yuv_pixel (p10, im, fmt, k, x0, y1);
      yuv_pixel (p11, im, fmt, k, x1, y1);
      for (int c = 0; c < 3; c++) {
        float top = p00[c] * wx0 + p01[c] * wx1;
        float bottom = p10[c] * wx0 + p11[c] * wx1;
        float v = top * wy0 + bottom * wy1;
        o[c * plane + x] = (v / 255.0f - mean[c]) / std[c];
      }
    }
  }
}

static gboolean
check_plane (const MmImage *im, guint i, gsize row_bytes, GError **error)
{
  if (!im->planes[i]) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: plane %u is missing", i);
    return FALSE;
  }
  if (im->strides[i] < row_bytes) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
        "image: plane %u stride %" G_GSIZE_FORMAT " is shorter than its row (%" G_GSIZE_FORMAT
        " bytes for width %u)",
        i, im->strides[i], row_bytes, im->width);
    return FALSE;
  }
  return TRUE;
}

gboolean
mm_image_preprocess_image (float *out, guint out_w, guint out_h, const float mean[3],
    const float std[3], const MmImage *im, GError **error)
{
  if (!im) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: NULL image");
    return FALSE;
  }
  if (im->format < MM_PIXEL_I420)
    return mm_image_preprocess (out, out_w, out_h, mean, std, im->format, im->planes[0], im->width,
        im->height, im->strides[0], error);
  if (im->format > MM_PIXEL_YUY2) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: unknown pixel format %d", im->format);
    return FALSE;
  }
  if (!out || !mean || !std) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: NULL %s", !out ? "output" : "mean/std");
    return FALSE;
  }
  if (!check_side ("width", im->width, error) || !check_side ("height", im->height, error)
      || !check_side ("output width", out_w, error) || !check_side ("output height", out_h, error))
    return FALSE;
  if ((guint)im->matrix > MM_YUV_BT2020) {
    g_set_error (error, MM_ERROR, MM_ERROR_INPUT, "image: unknown YUV matrix %d", im->matrix);
    return FALSE;
  }
  gsize half = (im->width + 1) / 2;
  gboolean ok;
  switch (im->format) {
    case MM_PIXEL_I420:
      ok = check_plane (im, 0, im->width, error) && check_plane (im, 1, half, error)
          && check_plane (im, 2, half, error);
      break;
    case MM_PIXEL_NV12:
      ok = check_plane (im, 0, im->width, error) && check_plane (im, 1, 2 * half, error);
      break;
    default:
      ok = check_plane (im, 0, 4 * half, error);
      break;
  }
  if (!ok)
    return FALSE;
  for (int c = 0; c < 3; c++)
    if (!isfinite (mean[c]) || !isfinite (std[c]) || std[c] == 0.0f) {
      g_set_error (error, MM_ERROR, MM_ERROR_INPUT,
          "image: channel %d has mean %g, std %g (std must be finite and non-zero)", c, mean[c],
          std[c]);
      return FALSE;
    }

  YuvCoef k;
  yuv_coef (&k, im->matrix, im->full_range);
  if (im->format == MM_PIXEL_I420)
    resize_yuv (out, out_w, out_h, mean, std, im, MM_PIXEL_I420, &k);
  else if (im->format == MM_PIXEL_NV12)
    resize_yuv (out, out_w, out_h, mean, std, im, MM_PIXEL_NV12, &k);
  else
    resize_yuv (out, out_w, out_h, mean, std, im, MM_PIXEL_YUY2, &k);
  return TRUE;
}
