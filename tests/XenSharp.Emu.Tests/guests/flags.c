/* Native reference for the emulator's flag tests: reads "op bits a b c flagsin" lines (hex) on stdin and prints
   "result flagsout" computed by this host CPU. Build: gcc -O1 -mno-red-zone flags.c -o flags */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t u64;
typedef void (*fn)(u64 a, u64 b, u64 c, u64 *r, u64 *f);

#define PRE "push %1\n\tpopfq\n\t"
#define POST "\n\tpushfq\n\tpop %1"
#define BIN(N, I, T) static void N(u64 a, u64 b, u64 c, u64 *r, u64 *f) { T x = (T)a, y = (T)b; u64 fl = *f; (void)c; \
    __asm__ volatile(PRE I " %2, %0" POST : "+r"(x), "+r"(fl) : "r"(y) : "cc", "memory"); *r = (u64)x; *f = fl; }
#define UN(N, I, T) static void N(u64 a, u64 b, u64 c, u64 *r, u64 *f) { T x = (T)a; u64 fl = *f; (void)b; (void)c; \
    __asm__ volatile(PRE I " %0" POST : "+r"(x), "+r"(fl) : : "cc", "memory"); *r = (u64)x; *f = fl; }
#define SH(N, I, T) static void N(u64 a, u64 b, u64 c, u64 *r, u64 *f) { T x = (T)a; u64 fl = *f; (void)b; \
    __asm__ volatile(PRE I " %%cl, %0" POST : "+r"(x), "+r"(fl) : "c"(c) : "cc", "memory"); *r = (u64)x; *f = fl; }
#define DSH(N, I, T) static void N(u64 a, u64 b, u64 c, u64 *r, u64 *f) { T x = (T)a, y = (T)b; u64 fl = *f; \
    __asm__ volatile(PRE I " %%cl, %2, %0" POST : "+r"(x), "+r"(fl) : "r"(y), "c"(c) : "cc", "memory"); *r = (u64)x; *f = fl; }

#define ALL4(M, n, i) M(n##8, i, uint8_t) M(n##16, i, uint16_t) M(n##32, i, uint32_t) M(n##64, i, uint64_t)
#define WIDE3(M, n, i) M(n##16, i, uint16_t) M(n##32, i, uint32_t) M(n##64, i, uint64_t)

ALL4(BIN, add, "add") ALL4(BIN, adc, "adc") ALL4(BIN, sub, "sub") ALL4(BIN, sbb, "sbb") ALL4(BIN, and, "and")
ALL4(BIN, or, "or") ALL4(BIN, xor, "xor") ALL4(BIN, cmp, "cmp") ALL4(BIN, test, "test")
ALL4(UN, inc, "inc") ALL4(UN, dec, "dec") ALL4(UN, neg, "neg") ALL4(UN, not, "not")
ALL4(SH, shl, "shl") ALL4(SH, shr, "shr") ALL4(SH, sar, "sar") ALL4(SH, rol, "rol") ALL4(SH, ror, "ror")
ALL4(SH, rcl, "rcl") ALL4(SH, rcr, "rcr")
WIDE3(BIN, imul, "imul") WIDE3(BIN, bt, "bt") WIDE3(BIN, bts, "bts") WIDE3(BIN, btr, "btr") WIDE3(BIN, btc, "btc")
WIDE3(BIN, bsf, "bsf") WIDE3(BIN, bsr, "bsr") WIDE3(DSH, shld, "shld") WIDE3(DSH, shrd, "shrd")

#define E4(n) {#n, 8, n##8}, {#n, 16, n##16}, {#n, 32, n##32}, {#n, 64, n##64}
#define E3(n) {#n, 16, n##16}, {#n, 32, n##32}, {#n, 64, n##64}
static const struct { const char *name; int bits; fn f; } ops[] = {
    E4(add), E4(adc), E4(sub), E4(sbb), E4(and), E4(or), E4(xor), E4(cmp), E4(test), E4(inc), E4(dec), E4(neg), E4(not),
    E4(shl), E4(shr), E4(sar), E4(rol), E4(ror), E4(rcl), E4(rcr),
    E3(imul), E3(bt), E3(bts), E3(btr), E3(btc), E3(bsf), E3(bsr), E3(shld), E3(shrd),
};

int main(void) {
    char op[16];
    int bits;
    unsigned long long a, b, c, f;
    while (scanf("%15s %d %llx %llx %llx %llx", op, &bits, &a, &b, &c, &f) == 6) {
        for (unsigned i = 0; i < sizeof ops / sizeof ops[0]; i++)
            if (ops[i].bits == bits && strcmp(ops[i].name, op) == 0) {
                u64 r = a, fl = f;
                ops[i].f(a, b, c, &r, &fl);
                printf("%llx %llx\n", (unsigned long long)r, (unsigned long long)fl);
                goto next;
            }
        printf("? ?\n");
    next:;
    }
    return 0;
}
