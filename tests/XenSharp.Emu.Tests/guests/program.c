/* A freestanding test guest for the emu accelerator: CRC32, sorting, 64-bit division, a jump-table switch, struct
   copies and recursion. Prints a summary on port 0xE9 and the CRC on port 0x80, then halts. Built with -DHOSTED it
   prints the same summary on stdout, which the test uses as the expected output. */
#include <stdint.h>

#ifdef HOSTED
#include <stdio.h>
static void put(char c) { putchar(c); }
#else
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static void put(char c) { outb(0xe9, (uint8_t)c); }

void *memcpy(void *d, const void *s, unsigned long n) { char *dd = d; const char *ss = s; while (n--) *dd++ = *ss++; return d; }
void *memset(void *d, int c, unsigned long n) { char *dd = d; while (n--) *dd++ = (char)c; return d; }
void *memmove(void *d, const void *s, unsigned long n) {
    char *dd = d; const char *ss = s;
    if (dd < ss) while (n--) *dd++ = *ss++; else { dd += n; ss += n; while (n--) *--dd = *--ss; }
    return d;
}
int memcmp(const void *a, const void *b, unsigned long n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++) if (*x != *y) return *x - *y;
    return 0;
}
#endif

static void puts_(const char *s) { while (*s) put(*s++); }
static void hex(uint64_t v) { char b[17]; for (int i = 15; i >= 0; i--) { b[i] = "0123456789abcdef"[v & 15]; v >>= 4; } b[16] = 0; puts_(b); }
static void field(const char *name, uint64_t v) { puts_(name); put('='); hex(v); put('\n'); }

static uint64_t state = 88172645463325252ull;
static uint64_t rnd(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state; }

static uint32_t crc32(const uint8_t *p, unsigned long n) {
    uint32_t c = ~0u;
    while (n--) { c ^= *p++; for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & -(c & 1)); }
    return ~c;
}

static void quicksort(int64_t *a, long lo, long hi) {
    while (lo < hi) {
        int64_t p = a[(lo + hi) / 2];
        long i = lo, j = hi;
        while (i <= j) {
            while (a[i] < p) i++;
            while (a[j] > p) j--;
            if (i <= j) { int64_t t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
        }
        if (j - lo < hi - i) { quicksort(a, lo, j); lo = i; } else { quicksort(a, i, hi); hi = j; }
    }
}

struct rec { int32_t id; char name[28]; int64_t score; uint16_t flags; };

static int __attribute__((noinline)) classify(int x) {
    switch (x & 15) {
    case 0: return 3; case 1: return x * 7; case 2: return x ^ 0x55; case 3: return -x; case 4: return x << 3;
    case 5: return x >> 2; case 6: return x + 1000; case 7: return x % 13; case 8: return 77; case 9: return x / 3;
    default: return x;
    }
}

static uint64_t fib(unsigned n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static uint8_t buf[8192];
static int64_t arr[2000];
static struct rec recs[64];

static uint32_t work(void) {
    for (unsigned i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rnd();
    uint32_t crc = crc32(buf, sizeof buf);
    field("crc", crc);

    for (int i = 0; i < 2000; i++) arr[i] = (int64_t)rnd() >> (rnd() & 31);
    quicksort(arr, 0, 1999);
    uint64_t h = 0; int sorted = 1;
    for (int i = 0; i < 2000; i++) { h = h * 31 + (uint64_t)arr[i]; if (i && arr[i - 1] > arr[i]) sorted = 0; }
    field("sorted", (uint64_t)sorted);
    field("sorthash", h);

    uint64_t d = 0;
    for (int i = 0; i < 500; i++) {
        uint64_t x = rnd(), y = (rnd() >> (rnd() & 63)) | 1;
        int64_t sx = (int64_t)rnd(), sy = ((int64_t)rnd() >> (rnd() & 62)) | 1;
        d += x / y + x % y + (uint64_t)(sx / sy) + (uint64_t)(sx % sy);
        d ^= (uint32_t)x / ((uint32_t)y | 1) + (uint64_t)((int32_t)sx % ((int32_t)sy | 1));
    }
    field("div", d);

    int64_t s = 0;
    for (int i = -500; i < 500; i++) s += classify(i * 37);
    field("switch", (uint64_t)s);

    for (int i = 0; i < 64; i++) {
        struct rec r = { i, "record", (int64_t)rnd(), (uint16_t)i };
        r.name[6] = (char)('a' + i % 26);
        recs[(i * 7) % 64] = r;
    }
    uint64_t rh = 0;
    for (int i = 0; i < 64; i++) rh = rh * 1000003 + (uint64_t)recs[i].score + (uint64_t)recs[i].id + (uint8_t)recs[i].name[6] + recs[i].flags;
    field("records", rh);

    field("fib", fib(24));
    uint64_t bits = 0;
    for (int i = 0; i < 1000; i++) { uint64_t v = rnd(); bits += (uint64_t)__builtin_popcountll(v) + (uint64_t)__builtin_ctzll(v | 1) + (uint64_t)__builtin_clzll(v | 1); bits ^= __builtin_bswap64(v); }
    field("bits", bits);
    return crc;
}

#ifdef HOSTED
int main(void) { work(); return 0; }
#else
void _start(void) {
    uint32_t crc = work();
    outl(0x80, crc);
    for (;;) __asm__ volatile("hlt");
}
#endif
