// Fused CBAM (channel then spatial attention; paper Eq. 5-11, canonical Woo et al. 2018)
// for channels_last (B, H, W, C) CPU tensors, float32 or bfloat16, forward and backward.
//
// Why: at 16-128 channels a 3x3 convolution does little arithmetic per byte, and CBAM run
// as separate framework ops (pooling, MLP, product, channel mean/max, 7x7 conv, product)
// passes over its feature map 6-8 times; here one call reads the map three times (global
// pooling, then per band of rows the channel statistics and the output, which finds the
// band still in cache) and writes it once. Numbers equal the framework ops to float
// rounding (tests/models/test_cbam_fused.py). Built at first use by
// slidemap/models/native/__init__.py with the machine's C++ compiler; without one,
// slidemap runs the same maths as framework ops.
//
// Layout: x, out, gy, gx are (B, H, W, C) contiguous (torch's channels_last); every other
// buffer is float32: pooled (B, 2C) = [avg | max], argmax (B, C) int64 (pixel index of the
// max, first in raster order), cm (B, C) channel map, sm (B, H, W) spatial map.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(_OPENMP)
#include <omp.h>
#else
inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_threads() { return 1; }
#endif
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {

struct bf16 { uint16_t bits; };

inline float load1(float v) { return v; }
inline float load1(bf16 v) { uint32_t u = (uint32_t)v.bits << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline void store1(float *p, float v) { *p = v; }
inline void store1(bf16 *p, float v) {
    uint32_t u; std::memcpy(&u, &v, 4);
    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) { p->bits = (uint16_t)((u >> 16) | 0x40u); return; }
    u += 0x7FFFu + ((u >> 16) & 1u);  // round to nearest even
    p->bits = (uint16_t)(u >> 16);
}
inline float sigmoid1(float v) { return 1.0f / (1.0f + std::exp(-v)); }

#if defined(__AVX512F__)
constexpr bool kVector = true;
inline __m512 load16(const float *p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const bf16 *p) {
    __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
inline void store16(float *p, __m512 v) { _mm512_storeu_ps(p, v); }
inline void store16(bf16 *p, __m512 v) {
#if defined(__AVX512BF16__)
    __m256bh packed = _mm512_cvtneps_pbh(v);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), reinterpret_cast<__m256i &>(packed));
#else
    alignas(64) float tmp[16];
    _mm512_store_ps(tmp, v);
    for (int i = 0; i < 16; i++) store1(p + i, tmp[i]);
#endif
}

// exp(x) to ~1 ulp (Cephes polynomial, Cody-Waite reduction, scalef for 2^n)
inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}
inline __m512 sigmoid16(__m512 v) {
    __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
}

// Index tables that fold 16 vectors (one pixel each, 16 partials) into one vector of 16
// pixels: each level halves the partials per pixel and doubles the pixels per vector,
// keeping pixel order (a's pixels, then b's).
struct Fold {
    __m512i lo[4], hi[4];
    Fold() {
        for (int level = 0; level < 4; level++) {
            const int w = 16 >> level, n = 16 / w, half = w / 2;
            alignas(64) int32_t l[16], h[16];
            for (int s = 0; s < 16; s++) {
                const int q = s / half, j = s % half;
                const int src = q < n ? 0 : 16, qq = q < n ? q : q - n;
                l[s] = src + qq * w + j;
                h[s] = src + qq * w + half + j;
            }
            lo[level] = _mm512_load_si512(l);
            hi[level] = _mm512_load_si512(h);
        }
    }
};
const Fold &fold() { static const Fold f; return f; }

// v[0..15]: pixel i's partials -> one vector, lane i = sum (or max) of v[i]
template <bool Max>
inline __m512 fold16(__m512 *v) {
    const Fold &f = fold();
    for (int level = 0, count = 16; level < 4; level++, count /= 2)
        for (int i = 0; i < count / 2; i++) {
            __m512 a = _mm512_permutex2var_ps(v[2 * i], f.lo[level], v[2 * i + 1]);
            __m512 b = _mm512_permutex2var_ps(v[2 * i], f.hi[level], v[2 * i + 1]);
            v[i] = Max ? _mm512_max_ps(a, b) : _mm512_add_ps(a, b);
        }
    return v[0];
}
#else
constexpr bool kVector = false;
#endif

struct Task { int b, y0, y1; };

// ---------------------------------------------------------------------------- pass 1
// Running sum and max over rows [y0, y1) of one (H, W, C) image, per channel; with
// `argmax`, the first pixel (raster order) holding the max. s, m, a: (C,) accumulators.
template <typename T>
void pool_rows(const T *img, int y0, int y1, int W, int C, float *s, float *m, int64_t *a) {
    for (int y = y0; y < y1; y++) {
        const T *row = img + (long)y * W * C;
        if (a) {
            const int64_t base = (int64_t)y * W;
            for (int w = 0; w < W; w++)
                for (int c = 0; c < C; c++) {
                    const float v = load1(row[(long)w * C + c]);
                    s[c] += v;
                    if (v > m[c] || a[c] < 0) { m[c] = v; a[c] = base + w; }
                }
            continue;
        }
#if defined(__AVX512F__)
        if (C % 16 == 0) {
            for (int c0 = 0; c0 < C; c0 += 128) {
                const int nb = std::min(8, (C - c0) / 16);
                __m512 vs[8], vm[8];
                for (int j = 0; j < nb; j++) { vs[j] = _mm512_loadu_ps(s + c0 + 16 * j); vm[j] = _mm512_loadu_ps(m + c0 + 16 * j); }
                for (int w = 0; w < W; w++) {
                    const T *p = row + (long)w * C + c0;
                    for (int j = 0; j < nb; j++) {
                        const __m512 v = load16(p + 16 * j);
                        vs[j] = _mm512_add_ps(vs[j], v);
                        vm[j] = _mm512_max_ps(vm[j], v);
                    }
                }
                for (int j = 0; j < nb; j++) { _mm512_storeu_ps(s + c0 + 16 * j, vs[j]); _mm512_storeu_ps(m + c0 + 16 * j, vm[j]); }
            }
            continue;
        }
#endif
        for (int w = 0; w < W; w++) {
            const T *p = row + (long)w * C;
            for (int c = 0; c < C; c++) { const float v = load1(p[c]); s[c] += v; m[c] = std::max(m[c], v); }
        }
    }
}

// Fold a later row range's partials (s2, m2, a2) into (s, m, a): ties keep the earlier pixel.
void merge_pool(int C, float *s, float *m, int64_t *a, const float *s2, const float *m2, const int64_t *a2) {
    for (int c = 0; c < C; c++) {
        s[c] += s2[c];
        const bool take = a ? (a2[c] >= 0 && (a[c] < 0 || m2[c] > m[c])) : m2[c] > m[c];
        if (take) { m[c] = m2[c]; if (a) a[c] = a2[c]; }
    }
}

// Channel attention (Eq. 5-6, canonical shared MLP): pooled (B, 2C) avg|max -> cm (B, C).
void channel_map(int C, const float *pooled, const float *w0, const float *b0, int hid,
                 const float *w1, const float *b1, float *cm) {
    std::vector<float> h((size_t)2 * hid);
    {
        const float *avg = pooled, *mx = avg + C;
        for (int j = 0; j < hid; j++) {
            float ha = b0[j], hm = b0[j];
            for (int c = 0; c < C; c++) { ha += w0[(long)j * C + c] * avg[c]; hm += w0[(long)j * C + c] * mx[c]; }
            h[j] = ha > 0 ? ha : 0.0f;
            h[hid + j] = hm > 0 ? hm : 0.0f;
        }
        for (int c = 0; c < C; c++) {
            float a = b1[c], am = b1[c];
            for (int j = 0; j < hid; j++) { a += w1[(long)c * hid + j] * h[j]; am += w1[(long)c * hid + j] * h[hid + j]; }
            cm[c] = sigmoid1(a + am);
        }
    }
}

// Channel mean and max of x * cm over one row (Eq. 8): (W, C) -> mean[W], peak[W]. With
// ``Backward`` also, per pixel, gz (the gradient at the spatial logits, Eq. 9) from
// g_sm = sum_c gy * x * cm, and the channel holding the max (the first, as torch.max).
template <typename T, bool Backward>
void stats_row(const T *row, const float *cmb, int W, int C, float *mean, float *peak, const T *gyr = nullptr,
               const float *smr = nullptr, float *gz = nullptr, int32_t *arg = nullptr) {
    const float inv_c = 1.0f / C;
    int w = 0;
#if defined(__AVX512F__)
    if (C % 16 == 0) {
        const int nb = C / 16;
        for (; w + 16 <= W; w += 16) {
            __m512 vs[16], vm[16], vg[16];
            for (int i = 0; i < 16; i++) {
                const T *p = row + (long)(w + i) * C;
                __m512 sum = _mm512_setzero_ps(), top = _mm512_set1_ps(-INFINITY), dot = _mm512_setzero_ps();
                for (int j = 0; j < nb; j++) {
                    const __m512 v = _mm512_mul_ps(load16(p + 16 * j), _mm512_loadu_ps(cmb + 16 * j));
                    sum = _mm512_add_ps(sum, v);
                    top = _mm512_max_ps(top, v);
                    if (Backward) dot = _mm512_fmadd_ps(load16(gyr + (long)(w + i) * C + 16 * j), v, dot);
                }
                vs[i] = sum; vm[i] = top; vg[i] = dot;
            }
            _mm512_storeu_ps(mean + w, _mm512_mul_ps(fold16<false>(vs), _mm512_set1_ps(inv_c)));
            const __m512 mx = fold16<true>(vm);
            _mm512_storeu_ps(peak + w, mx);
            if (!Backward) continue;
            const __m512 gsm = fold16<false>(vg), sm16 = _mm512_loadu_ps(smr + w);
            _mm512_storeu_ps(gz + w, _mm512_mul_ps(gsm, _mm512_mul_ps(sm16, _mm512_sub_ps(_mm512_set1_ps(1.0f), sm16))));
            alignas(64) float mxs[16];
            _mm512_store_ps(mxs, mx);
            for (int i = 0; i < 16; i++) {  // the first channel equal to the max
                const T *p = row + (long)(w + i) * C;
                const __m512 target = _mm512_set1_ps(mxs[i]);
                int found = 0;
                for (int j = 0; j < nb; j++) {
                    const __mmask16 hit = _mm512_cmp_ps_mask(
                        _mm512_mul_ps(load16(p + 16 * j), _mm512_loadu_ps(cmb + 16 * j)), target, _CMP_EQ_OQ);
                    if (hit) { found = 16 * j + __builtin_ctz((unsigned)hit); break; }
                }
                arg[w + i] = found;
            }
        }
    }
#endif
    for (; w < W; w++) {
        const T *p = row + (long)w * C;
        float sum = 0.0f, top = -INFINITY, dot = 0.0f;
        int best = 0;
        for (int c = 0; c < C; c++) {
            const float v = load1(p[c]) * cmb[c];
            sum += v;
            if (v > top) { top = v; best = c; }
            if (Backward) dot += load1(gyr[(long)w * C + c]) * v;
        }
        mean[w] = sum * inv_c;
        peak[w] = top;
        if (Backward) {
            gz[w] = dot * smr[w] * (1.0f - smr[w]);
            arg[w] = best;
        }
    }
}

// One output row of a k x k correlation summed over `n` zero-padded input planes:
// out[w] = init + sum_i sum_{ky,kx} kern[i][ky*k + kx] * in[i][ky*stride + w + kx]
// (in[i] points at the first of the k input rows, padded by k/2 columns on the left).
void correlate_row(const float *const *in, const float *const *kern, int n, long stride, int W, int k,
                   float init, float *out) {
    int w = 0;
#if defined(__AVX512F__)
    for (; w + 64 <= W; w += 64) {
        __m512 acc[4];
        for (int i = 0; i < 4; i++) acc[i] = _mm512_set1_ps(init);
        for (int p = 0; p < n; p++)
            for (int ky = 0; ky < k; ky++) {
                const float *s = in[p] + ky * stride + w;
                for (int kx = 0; kx < k; kx++) {
                    const __m512 wv = _mm512_set1_ps(kern[p][ky * k + kx]);
                    for (int i = 0; i < 4; i++) acc[i] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(s + kx + 16 * i), acc[i]);
                }
            }
        for (int i = 0; i < 4; i++) _mm512_storeu_ps(out + w + 16 * i, acc[i]);
    }
    for (; w + 16 <= W; w += 16) {
        __m512 acc = _mm512_set1_ps(init);
        for (int p = 0; p < n; p++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(kern[p][ky * k + kx]), _mm512_loadu_ps(in[p] + ky * stride + w + kx), acc);
        _mm512_storeu_ps(out + w, acc);
    }
#endif
    for (; w < W; w++) {
        float a = init;
        for (int p = 0; p < n; p++)
            for (int ky = 0; ky < k; ky++)
                for (int kx = 0; kx < k; kx++) a += kern[p][ky * k + kx] * in[p][ky * stride + w + kx];
        out[w] = a;
    }
}

// Spatial attention of one row (Eq. 9): sigmoid of the k x k convolution of the stats planes.
void spatial_row(const float *plane0, const float *plane1, long stride, int W, int k, const float *wsp, float bsp,
                 float *sm) {
    const float *in[2] = {plane0, plane1};
    const float *kern[2] = {wsp, wsp + k * k};
    correlate_row(in, kern, 2, stride, W, k, bsp, sm);
    int w = 0;
#if defined(__AVX512F__)
    for (; w + 16 <= W; w += 16) _mm512_storeu_ps(sm + w, sigmoid16(_mm512_loadu_ps(sm + w)));
#endif
    for (; w < W; w++) sm[w] = sigmoid1(sm[w]);
}

// out = x * cm * sm over one row (Eq. 7 and 10)
template <typename T>
void output_row(const T *row, const float *cmb, const float *smr, int W, int C, T *orow) {
#if defined(__AVX512F__)
    if (C % 16 == 0) {
        for (int w = 0; w < W; w++) {
            const __m512 g = _mm512_set1_ps(smr[w]);
            const T *p = row + (long)w * C;
            T *o = orow + (long)w * C;
            for (int c = 0; c < C; c += 16)
                store16(o + c, _mm512_mul_ps(load16(p + c), _mm512_mul_ps(_mm512_loadu_ps(cmb + c), g)));
        }
        return;
    }
#endif
    for (int w = 0; w < W; w++) {
        const float g = smr[w];
        for (int c = 0; c < C; c++) store1(orow + (long)w * C + c, load1(row[(long)w * C + c]) * (cmb[c] * g));
    }
}

std::vector<Task> row_tasks(int B, int H, int nthreads) {
    int chunks = std::max(1, (nthreads + B - 1) / B);
    chunks = std::min(chunks, H);
    std::vector<Task> tasks;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < chunks; i++)
            tasks.push_back({b, (int)((long)H * i / chunks), (int)((long)H * (i + 1) / chunks)});
    return tasks;
}

inline int band_rows(int W, int C, int elem) {
    const long row_bytes = (long)W * C * elem;
    return (int)std::max(4L, std::min(64L, (512L * 1024) / std::max(1L, row_bytes)));
}

// Rows [y0, y1) of image b: Eq. 8-10, written to out (which may be x). Bands of rows are
// taken bottom-up (the pooling pass read the image top-down, so its last rows are still
// cached); a band's stats rows are computed from x before any row of the band is written.
// planes: 2 zeroed planes of (y1 - y0 + 2*half) rows x stride, halo rows already filled.
template <typename T>
void sweep(const T *xb, T *ob, int y0, int y1, int H, int W, int C, const float *cmb, const float *wsp,
           float bsp, int k, float *smb, float *planes, long stride) {
    const int half = k / 2, rows = y1 - y0 + 2 * half;
    float *mean0 = planes + half, *peak0 = planes + (size_t)rows * stride + half;
    const int band = band_rows(W, C, (int)sizeof(T));
    int lowest = y1;  // stats rows [lowest, y1) are done
    for (int ye = y1; ye > y0;) {
        const int y = std::max(y0, ye - band);
        for (const int need = std::max(y0, y - half); lowest > need;) {
            lowest--;
            const long r = lowest - y0 + half;
            stats_row<T, false>(xb + (long)lowest * W * C, cmb, W, C, mean0 + r * stride, peak0 + r * stride);
        }
        for (int yy = y; yy < ye; yy++) {
            const long r = yy - y0;
            spatial_row(planes + r * stride, planes + ((size_t)rows + r) * stride, stride, W, k, wsp, bsp, smb + (long)yy * W);
            output_row(xb + (long)yy * W * C, cmb, smb + (long)yy * W, W, C, ob + (long)yy * W * C);
        }
        ye = y;
    }
    (void)H;
}

template <typename T>
void forward(const T *x, T *out, int B, int H, int W, int C, const float *w0, const float *b0, int hid,
             const float *w1, const float *b1, const float *wsp, float bsp, int k, float *pooled,
             int64_t *argmax, float *cm, float *sm, int nthreads) {
    const int half = k / 2;
    const long stride = ((W + 2 * half + 15) / 16) * 16 + 64;  // slack for 64-wide loads
    const long HWC = (long)H * W * C;
    const float inv_hw = 1.0f / ((float)H * (float)W);
    auto finish_pool = [&](int b, float *s, const float *m) {
        float *p = pooled + (long)b * 2 * C;
        for (int c = 0; c < C; c++) { p[c] = s[c] * inv_hw; p[C + c] = m[c]; }
        channel_map(C, p, w0, b0, hid, w1, b1, cm + (long)b * C);
    };
    const std::vector<Task> tasks = row_tasks(B, H, nthreads);
    if ((int)tasks.size() == B) {
        // one task per image: pool, channel map and sweep while the image is cached
        #pragma omp parallel num_threads(nthreads)
        {
            std::vector<float> s(C), m(C), planes;
            #pragma omp for schedule(static)
            for (int b = 0; b < B; b++) {
                std::fill(s.begin(), s.end(), 0.0f);
                std::fill(m.begin(), m.end(), -INFINITY);
                int64_t *a = argmax ? argmax + (long)b * C : nullptr;
                if (a) std::fill(a, a + C, (int64_t)-1);
                pool_rows(x + b * HWC, 0, H, W, C, s.data(), m.data(), a);
                finish_pool(b, s.data(), m.data());
                planes.assign((size_t)2 * (H + 2 * half) * stride, 0.0f);
                sweep(x + b * HWC, out + b * HWC, 0, H, H, W, C, cm + (long)b * C, wsp, bsp, k, sm + (long)b * H * W,
                      planes.data(), stride);
            }
        }
        return;
    }
    // several tasks per image (fewer images than threads): pool row chunks in parallel,
    // merge in row order, then sweep the chunks; each chunk's halo rows are taken first
    // because the neighbouring chunk may overwrite them (out == x).
    const size_t n = tasks.size();
    std::vector<float> ps(n * C, 0.0f), pm(n * C, -INFINITY);
    std::vector<int64_t> pa(argmax ? n * C : 0, -1);
    std::vector<std::vector<float>> planes(n);
    auto stats_rows = [&](size_t t, int from, int to) {
        const Task &task = tasks[t];
        const int rows = task.y1 - task.y0 + 2 * half;
        float *mean0 = planes[t].data() + half, *peak0 = planes[t].data() + (size_t)rows * stride + half;
        for (int y = from; y < to; y++) {
            const long r = y - task.y0 + half;
            stats_row<T, false>(x + task.b * HWC + (long)y * W * C, cm + (long)task.b * C, W, C, mean0 + r * stride,
                                peak0 + r * stride);
        }
    };
    #pragma omp parallel num_threads(nthreads)
    {
        #pragma omp for schedule(static)
        for (size_t t = 0; t < n; t++)
            pool_rows(x + tasks[t].b * HWC, tasks[t].y0, tasks[t].y1, W, C, ps.data() + t * C, pm.data() + t * C,
                      argmax ? pa.data() + t * C : nullptr);
        #pragma omp single
        {
            size_t t = 0;
            for (int b = 0; b < B; b++) {
                const size_t first = t;
                for (t++; t < n && tasks[t].b == b; t++)
                    merge_pool(C, ps.data() + first * C, pm.data() + first * C, argmax ? pa.data() + first * C : nullptr,
                               ps.data() + t * C, pm.data() + t * C, argmax ? pa.data() + t * C : nullptr);
                if (argmax) std::copy(pa.data() + first * C, pa.data() + (first + 1) * C, argmax + (long)b * C);
                finish_pool(b, ps.data() + first * C, pm.data() + first * C);
            }
        }
        #pragma omp for schedule(static)
        for (size_t t = 0; t < n; t++) {
            planes[t].assign((size_t)2 * (tasks[t].y1 - tasks[t].y0 + 2 * half) * stride, 0.0f);
            stats_rows(t, std::max(0, tasks[t].y0 - half), tasks[t].y0);
            stats_rows(t, tasks[t].y1, std::min(H, tasks[t].y1 + half));
        }
        #pragma omp for schedule(static)
        for (size_t t = 0; t < n; t++) {
            const Task &task = tasks[t];
            sweep(x + task.b * HWC, out + task.b * HWC, task.y0, task.y1, H, W, C, cm + (long)task.b * C, wsp, bsp, k,
                  sm + (long)task.b * H * W, planes[t].data(), stride);
        }
    }
}

// ============================================================================ backward
// Gradient at the refined map r = x * cm of one pixel, channel by channel, handed to
// `block(c, gr16)` for each 16 channels (AVX-512) and `one(c, gr)` for the rest:
// g_r = gy * sm + g_mean / C (the channel holding the max adds g_max; callers do that).
#if defined(__AVX512F__)
template <typename T, typename Block, typename One>
inline void refined_gradient(const T *g, float s, float a, int C, Block block, One one) {
    int c = 0;
    const __m512 vs = _mm512_set1_ps(s), va = _mm512_set1_ps(a);
    for (; c + 16 <= C; c += 16) block(c, _mm512_fmadd_ps(load16(g + c), vs, va));
    for (; c < C; c++) one(c, load1(g[c]) * s + a);
}
#define SLIDEMAP_BLOCK(body) [&](int c, __m512 gr) { body; }
#else
template <typename T, typename Block, typename One>
inline void refined_gradient(const T *g, float s, float a, int C, Block, One one) {
    for (int c = 0; c < C; c++) one(c, load1(g[c]) * s + a);
}
#define SLIDEMAP_BLOCK(body) [&](int, float) {}
#endif

// Pass B accumulates g_cm += g_r * x over a row; pass C writes gx = g_r * cm + g_avg / HW
// (the max-pool term is added afterwards).
template <typename T, bool WriteGx>
void backward_row_bc(const T *gyr, const T *xr, const float *cmb, const float *smr, const float *gmean,
                     const float *gmax, const int32_t *arg, int W, int C, float *gcm, const float *gavg_hw, T *gxr) {
    const float inv_c = 1.0f / C;
    for (int w = 0; w < W; w++) {
        const T *g = gyr + (long)w * C, *p = xr + (long)w * C;
        const float s = smr[w], a = gmean[w] * inv_c;
        const int star = arg[w];
        if (WriteGx) {
            T *o = gxr + (long)w * C;
            refined_gradient(g, s, a, C,
                SLIDEMAP_BLOCK(store16(o + c, _mm512_fmadd_ps(gr, _mm512_loadu_ps(cmb + c), _mm512_loadu_ps(gavg_hw + c)))),
                [&](int c, float gr) { store1(o + c, gr * cmb[c] + gavg_hw[c]); });
            store1(o + star, (load1(g[star]) * s + a + gmax[w]) * cmb[star] + gavg_hw[star]);
        } else {
            refined_gradient(g, s, a, C,
                SLIDEMAP_BLOCK(_mm512_storeu_ps(gcm + c, _mm512_fmadd_ps(gr, load16(p + c), _mm512_loadu_ps(gcm + c)))),
                [&](int c, float gr) { gcm[c] += gr * load1(p[c]); });
            gcm[star] += gmax[w] * load1(p[star]);
        }
    }
}
#undef SLIDEMAP_BLOCK

// Backward of the shared MLP and the sigmoid of one image (Eq. 5-6): from g_cm (C,) to the
// gradients at the pooled vectors (g_avg, g_max: (C,)), accumulating the weight gradients.
void channel_map_backward(int C, const float *pooled, const float *cmb, const float *gcm, const float *w0,
                          const float *b0, int hid, const float *w1, float *gw0, float *gb0, float *gw1, float *gb1,
                          float *gavg, float *gmax) {
    const float *avg = pooled, *mx = pooled + C;
    std::vector<float> ha(hid), hm(hid), ga(C), gh(hid);
    for (int j = 0; j < hid; j++) {
        float a = b0[j], m = b0[j];
        for (int c = 0; c < C; c++) { a += w0[(long)j * C + c] * avg[c]; m += w0[(long)j * C + c] * mx[c]; }
        ha[j] = a; hm[j] = m;
    }
    for (int c = 0; c < C; c++) ga[c] = gcm[c] * cmb[c] * (1.0f - cmb[c]);
    for (int c = 0; c < C; c++) {
        gb1[c] += 2.0f * ga[c];  // W1's bias enters once per pooled vector
        for (int j = 0; j < hid; j++) gw1[(long)c * hid + j] += ga[c] * ((ha[j] > 0 ? ha[j] : 0.0f) + (hm[j] > 0 ? hm[j] : 0.0f));
    }
    for (int j = 0; j < hid; j++) {
        float g = 0.0f;
        for (int c = 0; c < C; c++) g += w1[(long)c * hid + j] * ga[c];
        gh[j] = g;
    }
    for (int c = 0; c < C; c++) { gavg[c] = 0.0f; gmax[c] = 0.0f; }
    for (int j = 0; j < hid; j++) {
        const float gja = ha[j] > 0 ? gh[j] : 0.0f, gjm = hm[j] > 0 ? gh[j] : 0.0f;
        gb0[j] += gja + gjm;
        for (int c = 0; c < C; c++) {
            gw0[(long)j * C + c] += gja * avg[c] + gjm * mx[c];
            gavg[c] += w0[(long)j * C + c] * gja;
            gmax[c] += w0[(long)j * C + c] * gjm;
        }
    }
}

template <typename T>
void backward(const T *gy, const T *x, T *gx, int B, int H, int W, int C, const float *w0, const float *b0, int hid,
              const float *w1, const float *wsp, int k, const float *pooled, const int64_t *argmax, const float *cm,
              const float *sm, float *gw0, float *gb0, float *gw1, float *gb1, float *gwsp, float *gbsp,
              int nthreads) {
    const int half = k / 2;
    const long stride = ((W + 2 * half + 15) / 16) * 16 + 64;
    const long prows = H + 2 * half, plane = prows * stride;  // one zero-padded (H, W) plane
    const long HW = (long)H * W, HWC = HW * C, rows = (long)B * H;
    // padded planes per image: gz, mean, max; unpadded: gS_mean, gS_max, argmax channel
    std::vector<float> gz((size_t)B * plane, 0.0f), mean((size_t)B * plane, 0.0f), peak((size_t)B * plane, 0.0f);
    std::vector<float> gmean((size_t)B * HW), gmax((size_t)B * HW);
    std::vector<int32_t> arg((size_t)B * HW);
    auto at = [&](std::vector<float> &p, int b, int y) { return p.data() + b * plane + (y + half) * stride + half; };
    const int kk = k * k;
    std::vector<float> wflip((size_t)2 * kk);  // the spatial kernel rotated by 180 degrees
    for (int ch = 0; ch < 2; ch++)
        for (int i = 0; i < kk; i++) wflip[ch * kk + i] = wsp[ch * kk + (kk - 1 - i)];
    std::vector<std::vector<float>> part_w(nthreads), part_cm(nthreads);
    std::vector<float> gavg((size_t)B * C), gpmax((size_t)B * C), gavg_hw((size_t)B * C);
    #pragma omp parallel num_threads(nthreads)
    {
        const int t = omp_get_thread_num();
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const int b = (int)(r / H), y = (int)(r % H);
            stats_row<T, true>(x + r * W * C, cm + (long)b * C, W, C, at(mean, b, y), at(peak, b, y), gy + r * W * C,
                               sm + r * W, at(gz, b, y), arg.data() + r * W);
        }
        // spatial convolution backward: weight and bias gradients, and the gradients at the
        // stats maps (the correlation of gz with the rotated kernel)
        std::vector<float> &pw = part_w[t];
        pw.assign((size_t)2 * kk + 1, 0.0f);
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const int b = (int)(r / H), y = (int)(r % H);
            const float *g = at(gz, b, y);
            float bias = 0.0f;
            #pragma omp simd reduction(+:bias)
            for (int w = 0; w < W; w++) bias += g[w];
            pw[2 * kk] += bias;
            for (int ch = 0; ch < 2; ch++) {
                std::vector<float> &src = ch ? peak : mean;
                for (int ky = 0; ky < k; ky++) {
                    const float *s = at(src, b, y + ky - half) - half;
                    for (int kx = 0; kx < k; kx++) {
                        float acc = 0.0f;
                        #pragma omp simd reduction(+:acc)
                        for (int w = 0; w < W; w++) acc += g[w] * s[w + kx];
                        pw[ch * kk + ky * k + kx] += acc;
                    }
                }
            }
            const float *in[1] = {at(gz, b, y - half) - half};
            const float *km[1] = {wflip.data()};
            correlate_row(in, km, 1, stride, W, k, 0.0f, gmean.data() + r * W);
            km[0] = wflip.data() + kk;
            correlate_row(in, km, 1, stride, W, k, 0.0f, gmax.data() + r * W);
        }
        // pass B: g_cm per image
        std::vector<float> &pc = part_cm[t];
        pc.assign((size_t)B * C, 0.0f);
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const int b = (int)(r / H);
            backward_row_bc<T, false>(gy + r * W * C, x + r * W * C, cm + (long)b * C, sm + r * W, gmean.data() + r * W,
                                      gmax.data() + r * W, arg.data() + r * W, W, C, pc.data() + (long)b * C, nullptr,
                                      nullptr);
        }
        #pragma omp single
        {
            for (int i = 0; i <= 2 * kk; i++) {
                float s = 0.0f;
                for (int u = 0; u < nthreads; u++) if (!part_w[u].empty()) s += part_w[u][i];
                if (i < 2 * kk) gwsp[i] += s; else gbsp[0] += s;
            }
            std::vector<float> gcm(C);
            for (int b = 0; b < B; b++) {
                for (int c = 0; c < C; c++) {
                    float s = 0.0f;
                    for (int u = 0; u < nthreads; u++) if (!part_cm[u].empty()) s += part_cm[u][(long)b * C + c];
                    gcm[c] = s;
                }
                channel_map_backward(C, pooled + (long)b * 2 * C, cm + (long)b * C, gcm.data(), w0, b0, hid, w1, gw0,
                                     gb0, gw1, gb1, gavg.data() + (long)b * C, gpmax.data() + (long)b * C);
                for (int c = 0; c < C; c++) gavg_hw[(long)b * C + c] = gavg[(long)b * C + c] / (float)HW;
            }
        }
        // pass C: gx
        #pragma omp for schedule(static)
        for (long r = 0; r < rows; r++) {
            const int b = (int)(r / H);
            backward_row_bc<T, true>(gy + r * W * C, x + r * W * C, cm + (long)b * C, sm + r * W, gmean.data() + r * W,
                                     gmax.data() + r * W, arg.data() + r * W, W, C, nullptr, gavg_hw.data() + (long)b * C,
                                     gx + r * W * C);
        }
    }
    // the global max pool passes its gradient to the pixel that held the max
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const int64_t p = argmax[(long)b * C + c];
            if (p < 0) continue;
            T *o = gx + b * HWC + p * C + c;
            store1(o, load1(*o) + gpmax[(long)b * C + c]);
        }
}

}  // namespace

extern "C" {

// Returns 0; 1 on unsupported arguments. dtype: 0 float32, 1 bfloat16 (x, out); every
// other buffer is float32. out may alias x. argmax may be NULL (inference).
int slidemap_cbam_forward(int dtype, const void *x, void *out, int B, int H, int W, int C,
                          const float *w0, const float *b0, int hid, const float *w1, const float *b1,
                          const float *wsp, float bsp, int k, float *pooled, int64_t *argmax, float *cm,
                          float *sm, int nthreads) {
    if (B < 1 || H < 1 || W < 1 || C < 1 || hid < 1 || k < 1 || k % 2 == 0 || nthreads < 1) return 1;
    if (dtype == 0)
        forward((const float *)x, (float *)out, B, H, W, C, w0, b0, hid, w1, b1, wsp, bsp, k, pooled, argmax, cm, sm, nthreads);
    else if (dtype == 1)
        forward((const bf16 *)x, (bf16 *)out, B, H, W, C, w0, b0, hid, w1, b1, wsp, bsp, k, pooled, argmax, cm, sm, nthreads);
    else
        return 1;
    return 0;
}

// Gradients of slidemap_cbam_forward given gy = dL/dout. gx is written; gw0 (hid, C),
// gb0 (hid), gw1 (C, hid), gb1 (C), gwsp (2, k, k), gbsp (1) are accumulated into.
// pooled, argmax, cm, sm: what the forward call returned. Returns 0; 1 on bad arguments.
int slidemap_cbam_backward(int dtype, const void *gy, const void *x, void *gx, int B, int H, int W, int C,
                           const float *w0, const float *b0, int hid, const float *w1, const float *wsp, int k,
                           const float *pooled, const int64_t *argmax, const float *cm, const float *sm, float *gw0,
                           float *gb0, float *gw1, float *gb1, float *gwsp, float *gbsp, int nthreads) {
    if (B < 1 || H < 1 || W < 1 || C < 1 || hid < 1 || k < 1 || k % 2 == 0 || nthreads < 1) return 1;
    if (dtype == 0)
        backward((const float *)gy, (const float *)x, (float *)gx, B, H, W, C, w0, b0, hid, w1, wsp, k, pooled, argmax,
                 cm, sm, gw0, gb0, gw1, gb1, gwsp, gbsp, nthreads);
    else if (dtype == 1)
        backward((const bf16 *)gy, (const bf16 *)x, (bf16 *)gx, B, H, W, C, w0, b0, hid, w1, wsp, k, pooled, argmax, cm,
                 sm, gw0, gb0, gw1, gb1, gwsp, gbsp, nthreads);
    else
        return 1;
    return 0;
}

// 1 when built with the AVX-512 paths, 0 for the portable loops.
int slidemap_cbam_vector_path() { return kVector ? 1 : 0; }

}
