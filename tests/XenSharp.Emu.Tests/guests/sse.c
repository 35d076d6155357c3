/* An SSE2 test guest for the emu accelerator: string routines written with <emmintrin.h> as glibc's are (aligned and
   unaligned loads, pcmpeqb/pmovmskb, pminub, psadbw), loops gcc vectorizes itself, and double/float arithmetic with
   conversions. Prints a summary on port 0xE9 and a checksum on port 0x80, then halts; built with -DHOSTED it prints the
   same summary on stdout, which the test uses as the expected output. */
#include <stdint.h>
#include <stddef.h>
#include <emmintrin.h>

#ifdef HOSTED
#include <stdio.h>
static void put(char c) { putchar(c); }
#else
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static void put(char c) { outb(0xe9, (uint8_t)c); }
/* gcc may call these for copies and clears it recognises. */
void *memcpy(void *d, const void *s, unsigned long n) { char *dd = d; const char *ss = s; while (n--) *dd++ = *ss++; return d; }
void *memset(void *d, int c, unsigned long n) { char *dd = d; while (n--) *dd++ = (char)c; return d; }
#endif

static void puts_(const char *s) { while (*s) put(*s++); }
static void hex(uint64_t v) { char b[17]; for (int i = 15; i >= 0; i--) { b[i] = "0123456789abcdef"[v & 15]; v >>= 4; } b[16] = 0; puts_(b); }
static void field(const char *name, uint64_t v) { puts_(name); put('='); hex(v); put('\n'); }
static uint64_t dbits(double d) { uint64_t u; __builtin_memcpy(&u, &d, 8); return u; }
static uint32_t fbits(float f) { uint32_t u; __builtin_memcpy(&u, &f, 4); return u; }

static uint64_t state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

static size_t __attribute__((noinline)) sse_strlen(const char *s) {
    const __m128i z = _mm_setzero_si128();
    uintptr_t a = (uintptr_t)s & ~(uintptr_t)15;
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128((const __m128i *)a), z)) >> ((uintptr_t)s & 15);
    if (m) return __builtin_ctz(m);
    for (a += 16;; a += 16) {
        m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_load_si128((const __m128i *)a), z));
        if (m) return a + __builtin_ctz(m) - (uintptr_t)s;
    }
}

static const unsigned char *__attribute__((noinline)) sse_memchr(const void *p, int c, size_t n) {
    const unsigned char *s = p;
    const __m128i needle = _mm_set1_epi8((char)c);
    for (; n >= 16; s += 16, n -= 16) {
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)s), needle));
        if (m) return s + __builtin_ctz(m);
    }
    for (; n; n--, s++) if (*s == (unsigned char)c) return s;
    return 0;
}

static void __attribute__((noinline)) sse_memcpy(void *d, const void *s, size_t n) {
    char *dd = d; const char *ss = s;
    for (; n >= 16; dd += 16, ss += 16, n -= 16) _mm_storeu_si128((__m128i *)dd, _mm_loadu_si128((const __m128i *)ss));
    for (; n; n--) *dd++ = *ss++;
}

static void __attribute__((noinline)) sse_memset(void *d, int c, size_t n) {
    char *dd = d;
    const __m128i v = _mm_set1_epi8((char)c);
    for (; n >= 16; dd += 16, n -= 16) _mm_storeu_si128((__m128i *)dd, v);
    for (; n; n--) *dd++ = (char)c;
}

/* glibc's trick: the byte-wise minimum of (a == b ? a : 0) is zero at the first difference or terminator. */
static int __attribute__((noinline)) sse_strcmp(const char *a, const char *b) {
    const __m128i z = _mm_setzero_si128();
    for (size_t i = 0;; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(a + i)), y = _mm_loadu_si128((const __m128i *)(b + i));
        __m128i t = _mm_min_epu8(_mm_and_si128(x, _mm_cmpeq_epi8(x, y)), _mm_or_si128(x, z));
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(t, z));
        if (m) { size_t k = i + __builtin_ctz(m); return (unsigned char)a[k] - (unsigned char)b[k]; }
    }
}

static uint64_t __attribute__((noinline)) sse_bytesum(const unsigned char *p, size_t n) {
    __m128i acc = _mm_setzero_si128();
    for (; n >= 16; p += 16, n -= 16) acc = _mm_add_epi64(acc, _mm_sad_epu8(_mm_loadu_si128((const __m128i *)p), _mm_setzero_si128()));
    acc = _mm_add_epi64(acc, _mm_srli_si128(acc, 8));
    uint64_t s = (uint64_t)_mm_cvtsi128_si64(acc);
    for (; n; n--) s += *p++;
    return s;
}

static void __attribute__((noinline)) sse_toupper(char *s, size_t n) {
    const __m128i a1 = _mm_set1_epi8('a' - 1), z1 = _mm_set1_epi8('z' + 1), d = _mm_set1_epi8(0x20);
    for (; n >= 16; s += 16, n -= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)s);
        __m128i lower = _mm_and_si128(_mm_cmpgt_epi8(v, a1), _mm_cmplt_epi8(v, z1));
        _mm_storeu_si128((__m128i *)s, _mm_sub_epi8(v, _mm_and_si128(lower, d)));
    }
    for (; n; n--, s++) if (*s >= 'a' && *s <= 'z') *s -= 0x20;
}

static uint64_t __attribute__((noinline)) sse_mix(const unsigned char *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i lo = _mm_unpacklo_epi8(v, _mm_setzero_si128()), hi = _mm_unpackhi_epi8(v, _mm_setzero_si128());
    __m128i m = _mm_madd_epi16(_mm_mullo_epi16(lo, hi), _mm_set1_epi16(3));
    m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 0x4e));
    __m128i q = _mm_mul_epu32(m, _mm_shuffle_epi32(m, 0xb1));
    __m128i pk = _mm_packus_epi16(_mm_srai_epi16(lo, 1), _mm_packs_epi32(m, q));
    __m128i sh = _mm_shufflehi_epi16(_mm_shufflelo_epi16(pk, 0x1b), 0xe4);
    return (uint64_t)_mm_cvtsi128_si64(_mm_xor_si128(sh, _mm_slli_epi64(q, 7))) ^ (uint64_t)_mm_movemask_epi8(_mm_avg_epu8(v, pk));
}

/* Loops gcc vectorizes on its own at -O3. */
static int32_t va[256], vb[256], vc[256];
static uint8_t ub[256], uc[256];
static int16_t sa[256];

static double __attribute__((noinline)) series(int n) {
    double s = 0, t = 1;
    for (int i = 1; i <= n; i++) { s += __builtin_sqrt((double)i) / (i + 0.5); t *= 1.0000001; s -= t * 1e-9; }
    return s;
}

static float __attribute__((noinline)) fseries(int n) {
    float s = 0;
    for (int i = 1; i <= n; i++) s += 1.0f / (float)i - (float)(i & 3) * 0.25f;
    return s;
}

static int64_t ifloor(double x) { int64_t t = (int64_t)x; return (double)t > x ? t - 1 : t; }

static int __attribute__((noinline)) mandel(double cr, double ci) {
    double zr = 0, zi = 0;
    int k = 0;
    while (k < 200 && zr * zr + zi * zi <= 4.0) { double t = zr * zr - zi * zi + cr; zi = 2 * zr * zi + ci; zr = t; k++; }
    return k;
}

static char text[4096 + 64] __attribute__((aligned(16)));
static char copy[4096 + 64] __attribute__((aligned(16)));

static uint32_t work(void) {
    uint64_t sum = 0;
    for (int i = 0; i < 4096; i++) text[i] = (char)("abcdefghijklmnopqrstuvwxyz ,.ABCXYZ0123456789"[rnd() % 45]);
    text[4096] = 0;

    uint64_t lens = 0;
    for (int off = 0; off < 64; off++) { text[4000 - off * 37] = 0; lens = lens * 31 + sse_strlen(text + off); }
    field("strlen", lens);

    uint64_t found = 0;
    for (int c = 'A'; c <= 'z'; c++) {
        const unsigned char *p = sse_memchr(text + (c & 7), c, 3000 - c);
        found = found * 33 + (p ? (uint64_t)(p - (const unsigned char *)text) : 0xffff);
    }
    field("memchr", found);

    for (int i = 0; i < 40; i++) {
        size_t n = rnd() % 600, so = rnd() % 64, dof = rnd() % 64;
        sse_memcpy(copy + dof, text + so, n);
        sum = sum * 7 + sse_bytesum((unsigned char *)copy, sizeof copy);
        sse_memset(copy + (rnd() % 100), (int)(rnd() & 0xff), rnd() % 300);
    }
    field("memcpy", sum);

    sse_memcpy(copy, text, sizeof text);
    uint64_t cmps = 0;
    for (int i = 0; i < 50; i++) {
        size_t at = rnd() % 3000;
        copy[at] ^= (char)(rnd() & 0x7f);
        int r = sse_strcmp(text + (i & 15), copy + (i & 15));
        cmps = cmps * 3 + (uint64_t)(r < 0 ? 0 : r == 0 ? 1 : 2);
        copy[at] = text[at];
    }
    field("strcmp", cmps);

    sse_toupper(copy, 4000);
    field("upper", sse_bytesum((unsigned char *)copy, 4000));
    uint64_t mix = 0;
    for (int i = 0; i < 200; i++) mix = (mix << 1 | mix >> 63) ^ sse_mix((const unsigned char *)text + i * 17);
    field("mix", mix);

    for (int i = 0; i < 256; i++) { va[i] = (int32_t)rnd(); vb[i] = (int32_t)(rnd() % 100000) - 50000; ub[i] = (uint8_t)rnd(); uc[i] = (uint8_t)rnd(); sa[i] = (int16_t)rnd(); }
    for (int i = 0; i < 256; i++) vc[i] = va[i] * vb[i] + (va[i] >> 3) - (vb[i] < 0 ? vb[i] : -vb[i]);
    for (int i = 0; i < 256; i++) ub[i] = (uint8_t)(ub[i] + uc[i] > 255 ? 255 : ub[i] + uc[i]);
    int64_t vsum = 0; int16_t smax = -32768; uint8_t umin = 255;
    for (int i = 0; i < 256; i++) { vsum += vc[i]; smax = sa[i] > smax ? sa[i] : smax; umin = ub[i] < umin ? ub[i] : umin; }
    field("vec", (uint64_t)vsum ^ ((uint64_t)(uint16_t)smax << 32) ^ ((uint64_t)umin << 48));

    double s = series(3000);
    field("series", dbits(s));
    field("fseries", fbits(fseries(5000)));
    int64_t conv = 0;
    for (int i = -50; i < 50; i++) {
        double x = (double)i * 1234.5678 / 7.0;
        conv = conv * 17 + (int64_t)x + (int)(float)(x * 0.001) + ifloor(x) + (x < 0 ? -1 : x > 3 ? 3 : 0);
    }
    field("conv", (uint64_t)conv);
    int it = 0;
    for (int y = -12; y < 12; y++) for (int x = -30; x < 10; x++) it += mandel(x / 15.0, y / 10.0);
    field("mandel", (uint64_t)it);
    volatile double zero = 0.0;
    double nan = zero / zero, inf = 1.0 / zero;
    field("special", (uint64_t)(nan != nan) | (uint64_t)(nan < 1.0) << 1 | (uint64_t)(inf > 1e308) << 2 | (uint64_t)(-inf < -1e308) << 3);
    field("minmax", dbits(s < 100.0 ? s : 100.0) ^ dbits(s > -1 ? -s : 0.0));

    uint32_t crc = (uint32_t)(lens ^ found ^ sum ^ cmps ^ mix ^ (uint64_t)vsum ^ dbits(s) ^ (uint64_t)conv ^ (uint64_t)it);
    field("crc", crc);
    return crc;
}

#ifdef HOSTED
int main(void) { work(); return 0; }
#else
/* Entered with a 16-byte-aligned stack rather than the ABI's call-pushed one: realign for SSE spills. */
void __attribute__((force_align_arg_pointer, noreturn)) _start(void) {
    uint32_t crc = work();
    outl(0x80, crc);
    for (;;) __asm__ volatile("hlt");
}
#endif
