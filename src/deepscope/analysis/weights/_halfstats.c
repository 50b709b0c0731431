/* Statistics of float16 / bfloat16 bit patterns in one pass (issue 15).
 *
 * Built into `_halfstats.so` by the package's build hook (hatch_build.py) and called by
 * `_fast.py` through ctypes (no Python API here: one library serves every Python). The
 * caller passes `n` 16-bit patterns and an accumulator `out`:
 *
 *   out[0] Σx   out[1] Σx²   (float64; Inf and NaN patterns add 0)
 *   out[2] min key   out[3] max key   (ordered key of the finite patterns, see KEY)
 *   out[4] zeros   out[5] Inf + NaN   out[6] NaN   (counts)
 *
 * and the kernel adds these n patterns to it (the caller starts it at 0, 0, 32767,
 * -32768, 0, 0, 0). Every finite pattern is decoded exactly: a float16 through F16C's
 * vcvtph2ps (SIMD paths) or by moving its bits into a float32 and scaling by 2**112
 * (scalar path); a bfloat16 is the top half of a float32. The sums are float64.
 *
 * Three paths, picked at run time by what the CPU has: AVX-512 (F, BW, F16C: 32 patterns
 * per step), AVX2 (F16C: 16 per step), and portable scalar C (the tails; `_fast.py` uses
 * numpy instead where the scalar path is all there is, it being no faster). Each is
 * exported so that the tests compare them.
 */
#include <stdint.h>
#include <string.h>

#define DS_ABI 1

/* An order-preserving int16 key of a pattern: the sign-magnitude bits as two's complement. */
#define KEY(w) ((w) ^ (((w) >> 15) & 0x7FFF))

int ds_half_abi(void) { return DS_ABI; }

/* ---- scalar path: portable C, for the tails and for CPUs without the SIMD paths ---- */

static inline double decode1(uint16_t u, int bf16) {
    uint32_t b = bf16 ? (uint32_t)u << 16 : ((u & 0x7FFFu) << 13) | ((u & 0x8000u) << 16);
    float f;
    memcpy(&f, &b, sizeof f); /* float16: its fields in a float32's, 2**112 too small */
    return bf16 ? (double)f : (double)f * 0x1p112;
}

void ds_half_moments_scalar(const int16_t *v, int64_t n, int bf16, double *out) {
    const int16_t expmask = bf16 ? 0x7F80 : 0x7C00;
    const int16_t mantmask = 0x7FFF & ~expmask;
    double sum = 0, sumsq = 0;
    int16_t lo = (int16_t)out[2], hi = (int16_t)out[3];
    int64_t zeros = 0, bad = 0, nans = 0;
    for (int64_t i = 0; i < n; i++) {
        int16_t w = v[i];
        zeros += (w & 0x7FFF) == 0;
        if ((w & expmask) == expmask) {
            bad++;
            nans += (w & mantmask) != 0;
            continue;
        }
        int16_t key = KEY(w);
        lo = key < lo ? key : lo;
        hi = key > hi ? key : hi;
        double x = decode1((uint16_t)w, bf16);
        sum += x;
        sumsq += x * x;
    }
    out[0] += sum;
    out[1] += sumsq;
    out[2] = lo;
    out[3] = hi;
    out[4] += (double)zeros;
    out[5] += (double)bad;
    out[6] += (double)nans;
}

/* Ends a vector path: adds its lanes (`dl` float64 sums, `lanes` int16 min / max keys) and
 * counts to `out`, then counts the tail v[m, n) with the scalar path. */
static void finish(double *out, const double *s, const double *q, int dl, const int16_t *l,
                   const int16_t *h, int lanes, const int64_t counts[3], const int16_t *v,
                   int64_t m, int64_t n, int bf16) {
    int16_t lo = l[0], hi = h[0];
    for (int j = 0; j < dl; j++) {
        out[0] += s[j];
        out[1] += q[j];
    }
    for (int j = 1; j < lanes; j++) {
        lo = l[j] < lo ? l[j] : lo;
        hi = h[j] > hi ? h[j] : hi;
    }
    out[2] = lo;
    out[3] = hi;
    for (int j = 0; j < 3; j++) out[4 + j] += (double)counts[j];
    if (n > m) ds_half_moments_scalar(v + m, n - m, bf16, out);
}

/* ---- AVX-512 path ------------------------------------------------------------------ */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define DS_X86 1

/* 8 patterns at p as float64 (their float32 values widened: exact). */
__attribute__((target("avx512f,avx2,f16c"))) static inline __m512d
conv8_512(const int16_t *p, int bf16) {
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    __m256 f = bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
                    : _mm256_cvtph_ps(h);
    return _mm512_cvtps_pd(f);
}

__attribute__((target("avx512f,avx512bw,avx2,f16c,fma,popcnt"))) void
ds_half_moments_avx512(const int16_t *v, int64_t n, int bf16, double *out) {
    const __m512i E = _mm512_set1_epi16(bf16 ? 0x7F80 : 0x7C00);
    const __m512i M = _mm512_set1_epi16(bf16 ? 0x007F : 0x03FF);
    const __m512i MAG = _mm512_set1_epi16(0x7FFF);
    const __m512i TOP = _mm512_set1_epi16(32767), BOTTOM = _mm512_set1_epi16(-32768);
    __m512i lo = _mm512_set1_epi16((int16_t)out[2]), hi = _mm512_set1_epi16((int16_t)out[3]);
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m512d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    int64_t zeros = 0, bad = 0, nans = 0;
    int64_t m = n / 32 * 32;
    int16_t finite[32]; /* a step with Inf / NaN: its patterns with those zeroed */
    for (int64_t i = 0; i < m; i += 32) {
        const int16_t *p = v + i;
        __m512i w = _mm512_loadu_si512((const void *)p);
        __mmask32 kb = _mm512_cmpeq_epi16_mask(_mm512_and_si512(w, E), E);
        zeros += __builtin_popcount((unsigned)_mm512_testn_epi16_mask(w, MAG));
        /* the key: w ^ ((w >> 15) & 0x7FFF) in one ternary-logic step */
        __m512i key = _mm512_ternarylogic_epi32(w, _mm512_srai_epi16(w, 15), MAG, 0x78);
        if (__builtin_expect(kb != 0, 0)) { /* rare: leave them out of min / max and sums */
            bad += __builtin_popcount((unsigned)kb);
            nans += __builtin_popcount((unsigned)_mm512_mask_test_epi16_mask(kb, w, M));
            lo = _mm512_min_epi16(lo, _mm512_mask_mov_epi16(key, kb, TOP));
            hi = _mm512_max_epi16(hi, _mm512_mask_mov_epi16(key, kb, BOTTOM));
            _mm512_storeu_si512((void *)finite, _mm512_maskz_mov_epi16(~kb, w));
            p = finite;
        } else {
            lo = _mm512_min_epi16(lo, key);
            hi = _mm512_max_epi16(hi, key);
        }
        __m512d x0 = conv8_512(p, bf16), x1 = conv8_512(p + 8, bf16);
        __m512d x2 = conv8_512(p + 16, bf16), x3 = conv8_512(p + 24, bf16);
        s0 = _mm512_add_pd(s0, x0);
        q0 = _mm512_fmadd_pd(x0, x0, q0);
        s1 = _mm512_add_pd(s1, x1);
        q1 = _mm512_fmadd_pd(x1, x1, q1);
        s2 = _mm512_add_pd(s2, x2);
        q2 = _mm512_fmadd_pd(x2, x2, q2);
        s3 = _mm512_add_pd(s3, x3);
        q3 = _mm512_fmadd_pd(x3, x3, q3);
    }
    double t[8], u[8];
    _mm512_storeu_pd(t, _mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
    _mm512_storeu_pd(u, _mm512_add_pd(_mm512_add_pd(q0, q1), _mm512_add_pd(q2, q3)));
    int16_t l[32], h[32];
    _mm512_storeu_si512((void *)l, lo);
    _mm512_storeu_si512((void *)h, hi);
    const int64_t counts[3] = {zeros, bad, nans};
    finish(out, t, u, 8, l, h, 32, counts, v, m, n, bf16);
}

static inline int64_t sum_epi16(__m256i x) __attribute__((target("avx2")));
static inline int64_t sum_epi16(__m256i x) {
    int32_t t[8];
    _mm256_storeu_si256((__m256i *)t, _mm256_madd_epi16(x, _mm256_set1_epi16(1)));
    return (int64_t)t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

__attribute__((target("avx2,f16c,fma"))) void
ds_half_moments_avx2(const int16_t *v, int64_t n, int bf16, double *out) {
    const __m256i E = _mm256_set1_epi16(bf16 ? 0x7F80 : 0x7C00);
    const __m256i M = _mm256_set1_epi16(bf16 ? 0x007F : 0x03FF);
    const __m256i MAG = _mm256_set1_epi16(0x7FFF);
    const __m256i TOP = _mm256_set1_epi16(32767), BOTTOM = _mm256_set1_epi16(-32768);
    const __m256i ZERO = _mm256_setzero_si256();
    __m256i lo = _mm256_set1_epi16((int16_t)out[2]), hi = _mm256_set1_epi16((int16_t)out[3]);
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    __m256d q0 = s0, q1 = s0, q2 = s0, q3 = s0;
    int64_t zeros = 0, bad = 0, nans = 0;
    int64_t m = n / 16 * 16;
    for (int64_t i = 0; i < m;) {
        int64_t end = m - i > 16 * 2048 ? i + 16 * 2048 : m; /* int16 counters: <= 2048 */
        __m256i z = ZERO, b = ZERO, nn = ZERO;
        for (; i < end; i += 16) {
            __m256i w = _mm256_loadu_si256((const __m256i *)(v + i));
            __m256i kb = _mm256_cmpeq_epi16(_mm256_and_si256(w, E), E); /* -1: Inf / NaN */
            __m256i key = _mm256_xor_si256(w, _mm256_and_si256(_mm256_srai_epi16(w, 15), MAG));
            lo = _mm256_min_epi16(lo, _mm256_blendv_epi8(key, TOP, kb));
            hi = _mm256_max_epi16(hi, _mm256_blendv_epi8(key, BOTTOM, kb));
            z = _mm256_sub_epi16(z, _mm256_cmpeq_epi16(_mm256_and_si256(w, MAG), ZERO));
            b = _mm256_sub_epi16(b, kb);
            __m256i nomant = _mm256_cmpeq_epi16(_mm256_and_si256(w, M), ZERO);
            nn = _mm256_sub_epi16(nn, _mm256_andnot_si256(nomant, kb));
            __m256i g = _mm256_andnot_si256(kb, w);
            __m256 fa, fb;
            if (bf16) {
                fa = _mm256_castsi256_ps(_mm256_unpacklo_epi16(ZERO, g));
                fb = _mm256_castsi256_ps(_mm256_unpackhi_epi16(ZERO, g));
            } else {
                fa = _mm256_cvtph_ps(_mm256_castsi256_si128(g));
                fb = _mm256_cvtph_ps(_mm256_extracti128_si256(g, 1));
            }
            __m256d x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(fa));
            __m256d x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(fa, 1));
            __m256d x2 = _mm256_cvtps_pd(_mm256_castps256_ps128(fb));
            __m256d x3 = _mm256_cvtps_pd(_mm256_extractf128_ps(fb, 1));
            s0 = _mm256_add_pd(s0, x0);
            q0 = _mm256_fmadd_pd(x0, x0, q0);
            s1 = _mm256_add_pd(s1, x1);
            q1 = _mm256_fmadd_pd(x1, x1, q1);
            s2 = _mm256_add_pd(s2, x2);
            q2 = _mm256_fmadd_pd(x2, x2, q2);
            s3 = _mm256_add_pd(s3, x3);
            q3 = _mm256_fmadd_pd(x3, x3, q3);
        }
        zeros += sum_epi16(z);
        bad += sum_epi16(b);
        nans += sum_epi16(nn);
    }
    double t[4], u[4];
    _mm256_storeu_pd(t, _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    _mm256_storeu_pd(u, _mm256_add_pd(_mm256_add_pd(q0, q1), _mm256_add_pd(q2, q3)));
    int16_t l[16], h[16];
    _mm256_storeu_si256((__m256i *)l, lo);
    _mm256_storeu_si256((__m256i *)h, hi);
    const int64_t counts[3] = {zeros, bad, nans};
    finish(out, t, u, 4, l, h, 16, counts, v, m, n, bf16);
}

/* 2: AVX-512, 1: AVX2, 0: scalar (checked once; CPUID and the OS's saved state). */
static int simd_level(void) {
    static int level = -1;
    if (level < 0) {
        __builtin_cpu_init();
        int f16 = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma");
        level = f16 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                    ? 2
                    : f16 && __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return level;
}
#endif

/* The path `ds_half_moments` takes on this CPU: "avx512", "avx2" or "scalar". */
const char *ds_half_path(void) {
#ifdef DS_X86
    int level = simd_level();
    if (level) return level == 2 ? "avx512" : "avx2";
#endif
    return "scalar";
}

void ds_half_moments(const int16_t *v, int64_t n, int bf16, double *out) {
#ifdef DS_X86
    int level = simd_level();
    if (level == 2) {
        ds_half_moments_avx512(v, n, bf16, out);
        return;
    }
    if (level == 1) {
        ds_half_moments_avx2(v, n, bf16, out);
        return;
    }
#endif
    ds_half_moments_scalar(v, n, bf16, out);
}
