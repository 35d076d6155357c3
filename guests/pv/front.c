/* The PV test kernel's frontend driver: helpers (strings, command line, pvclock, event channels, grants) and
 * front_main, which kmain calls when the command line says "xenbus". */
#include "front.h"

struct fe_start_info *fe_si;
volatile struct fe_shared_info *fe_sh;

u64 fe_slen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }
void fe_memset(void *d, int c, u64 n) { u8 *p = d; while (n--) *p++ = (u8)c; }
void fe_memcpy(void *d, const void *s, u64 n)
{
    if (((u64)d | (u64)s | n) % 8 == 0) { u64 *q = d; const u64 *r = s; for (n /= 8; n--;) *q++ = *r++; return; }
    u8 *p = d; const u8 *q = s; while (n--) *p++ = *q++;
}
int fe_memcmp(const void *a, const void *b, u64 n)
{
    const u8 *p = a, *q = b;
    for (u64 i = 0; i < n; i++) if (p[i] != q[i]) return p[i] < q[i] ? -1 : 1;
    return 0;
}
int fe_streq(const char *a, const char *b) { while (*a && *a == *b) { a++; b++; } return *a == *b; }
u64 fe_atou(const char *s) { u64 v = 0; while (*s >= '0' && *s <= '9') v = v * 10 + (u64)(*s++ - '0'); return v; }

void ln_s(struct line *l, const char *s) { while (*s && l->n < (int)sizeof l->b - 2) l->b[l->n++] = *s++; }
void ln_u(struct line *l, u64 v)
{
    char d[24]; int k = 0;
    do { d[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k && l->n < (int)sizeof l->b - 2) l->b[l->n++] = d[--k];
}
void ln_i(struct line *l, s64 v) { if (v < 0) { ln_s(l, "-"); v = -v; } ln_u(l, (u64)v); }
void ln_print(struct line *l) { l->b[l->n++] = '\n'; l->b[l->n] = 0; print(l->b); l->n = 0; }

/* Words of the command line are separated by spaces; an option is "key=value". */
int opt(const char *key, char *val, int max)
{
    u64 kl = fe_slen(key);
    const char *c = fe_si->cmd_line;
    while (*c) {
        while (*c == ' ') c++;
        const char *w = c;
        while (*c && *c != ' ') c++;
        if ((u64)(c - w) > kl && w[kl] == '=' && fe_memcmp(w, key, kl) == 0) {
            int n = 0;
            for (const char *p = w + kl + 1; p < c && n < max - 1; p++) val[n++] = *p;
            val[n] = 0;
            return 1;
        }
    }
    return 0;
}

int opt_flag(const char *word)
{
    u64 kl = fe_slen(word);
    const char *c = fe_si->cmd_line;
    while (*c) {
        while (*c == ' ') c++;
        const char *w = c;
        while (*c && *c != ' ') c++;
        if ((u64)(c - w) == kl && fe_memcmp(w, word, kl) == 0) return 1;
    }
    return 0;
}

u64 opt_u(const char *key, u64 dflt)
{
    char v[24];
    return opt(key, v, sizeof v) ? fe_atou(v) : dflt;
}

static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }

/* pvclock: system_time + ((tsc - tsc_timestamp) << shift) * mul >> 32, read under the version counter. */
u64 now_ns(void)
{
    volatile struct fe_time *t = &fe_sh->vcpu[0].time;
    u32 v; u64 ns;
    do {
        v = t->version;
        rmb();
        u64 d = rdtsc() - t->tsc_timestamp;
        signed char sh = t->shift;
        if (sh >= 0) d <<= sh; else d >>= -sh;
        ns = t->system_time + (u64)(((unsigned __int128)d * t->mul) >> 32);
        rmb();
    } while ((v & 1) || v != t->version);
    return ns;
}

u64 virt_to_mfn(const void *va)
{
    u64 pfn = ((u64)va - VIRT_BASE) >> 12;
    return ((const u64 *)fe_si->mfn_list)[pfn];
}

/* ---- event channels ---- */
int evtchn_alloc_unbound(u16 remote, u32 *port)
{
    struct { u16 dom, remote_dom; u32 port; } a = { DOMID_SELF, remote, 0 };
    if (FHC(FH_EVENT_CHANNEL_OP, 6, &a, 0)) return -1;
    *port = a.port;
    return 0;
}

void evtchn_notify(u32 port) { u32 p = port; FHC(FH_EVENT_CHANNEL_OP, 4, &p, 0); }

int evtchn_test_and_clear(u32 port)
{
    u64 bit = 1UL << (port % 64);
    return (__atomic_fetch_and(&fe_sh->evtchn_pending[port / 64], ~bit, __ATOMIC_SEQ_CST) & bit) != 0;
}

void evtchn_wait(const u32 *ports, int n, u64 timeout_ns)
{
    struct { const u32 *ports; u32 nr, pad; u64 timeout; } p = { ports, (u32)n, 0, now_ns() + timeout_ns };
    FHC(FH_SCHED_OP, 3, &p, 0); /* SCHEDOP_poll */
}

void fe_sleep_ms(u64 ms)
{
    u64 end = now_ns() + ms * 1000000;
    while (now_ns() < end) evtchn_wait(0, 0, end - now_ns());
}

/* ---- grant table v1 ---- */
struct grant_entry { volatile u16 flags, domid; volatile u32 frame; };
static struct grant_entry *gnttab;
static u8 gnttab_page[PAGE] __attribute__((aligned(4096)));
static int next_ref = 16; /* the first 8 are reserved for the toolstack; keep a margin */

int gnttab_init(void)
{
    if (gnttab) return 0;
    static u64 frames[1];
    static struct { u16 dom; u16 pad; u32 nr_frames; s64 status; u64 frame_list; } gs;
    gs.dom = DOMID_SELF; gs.nr_frames = 1; gs.frame_list = (u64)frames;
    if (FHC(FH_GRANT_TABLE_OP, 2, &gs, 1) || (s16)gs.status != 0) return -1;
    if (FHC(FH_UPDATE_VA_MAPPING, gnttab_page, (frames[0] << 12) | 0x23, 2)) return -1;
    gnttab = (struct grant_entry *)gnttab_page;
    return 0;
}

int gnttab_grant(u16 domid, u64 mfn, int readonly)
{
    if (next_ref >= (int)(PAGE / sizeof(struct grant_entry))) return -1;
    int ref = next_ref++;
    gnttab[ref].domid = domid;
    gnttab[ref].frame = (u32)mfn;
    wmb();
    gnttab[ref].flags = (u16)(1 | (readonly ? 4 : 0)); /* GTF_permit_access [| GTF_readonly] */
    return ref;
}

/* ---- xenstore benchmark: N writes and N reads of data/xsbench ---- */
static void xs_bench(u64 n)
{
    char buf[32];
    struct line l = { .n = 0 };
    u64 t0 = now_ns();
    for (u64 i = 0; i < n; i++) {
        struct line v = { .n = 0 };
        ln_u(&v, i); v.b[v.n] = 0;
        if (xs_write("data/xsbench", v.b) < 0) { print("PVTEST xsbench FAIL write\n"); return; }
        if (xs_read("data/xsbench", buf, sizeof buf) < 0 || !fe_streq(buf, v.b)) { print("PVTEST xsbench FAIL read\n"); return; }
    }
    u64 t1 = now_ns();
    ln_s(&l, "PVTEST xsbench ops="); ln_u(&l, 2 * n); ln_s(&l, " ns="); ln_u(&l, t1 - t0);
    ln_s(&l, " ops_per_s="); ln_u(&l, t1 > t0 ? 2 * n * 1000000000UL / (t1 - t0) : 0);
    ln_print(&l);
}

#define MAX_VBDS 8
static u32 vbd_seen[MAX_VBDS];
static int nr_vbd_seen;

/* Runs blkfront on every device/vbd/<id> not seen yet. */
static void scan_vbds(void)
{
    static char names[512];
    int n = xs_directory("device/vbd", names, sizeof names);
    if (n <= 0) return;
    for (int i = 0; i < n; i += (int)fe_slen(names + i) + 1) {
        u32 id = (u32)fe_atou(names + i);
        int seen = 0;
        for (int k = 0; k < nr_vbd_seen; k++) if (vbd_seen[k] == id) seen = 1;
        if (seen || nr_vbd_seen == MAX_VBDS) continue;
        vbd_seen[nr_vbd_seen++] = id;
        char dir[64];
        path_join(dir, "device/vbd", names + i);
        blkfront_run(dir);
    }
}

static int parse_ip(const char *s, u32 *ip)
{
    u32 v = 0;
    for (int i = 0; i < 4; i++) {
        if (*s < '0' || *s > '9') return -1;
        u64 b = fe_atou(s);
        if (b > 255) return -1;
        v = v << 8 | (u32)b;
        while (*s >= '0' && *s <= '9') s++;
        if (i < 3 && *s++ != '.') return -1;
    }
    *ip = v;
    return 0;
}

/* Returns the shutdown reason to use, or -1 to keep the command line's. */
int front_main(void *start, volatile void *shared)
{
    fe_si = start;
    fe_sh = shared;
    if (!opt_flag("xenbus")) return -1;
    fe_sh->vcpu[0].mask = 1; /* the frontends wait with SCHEDOP_poll, not upcalls */
    if (gnttab_init()) { print("PVTEST FAIL: frontend grant table\n"); return 3; }
    print("PVTEST xenbus ok\n");

    u64 n = opt_u("xsbench", 0);
    if (n) xs_bench(n);

    scan_vbds();

    static char names[256];
    if (xs_directory("device/vif", names, sizeof names) > 0) {
        char dir[64];
        path_join(dir, "device/vif", names);
        if (netfront_init(dir) == 0) {
            char ips[20];
            u32 ip;
            if (opt("ping", ips, sizeof ips) && parse_ip(ips, &ip) == 0) netfront_ping(ip, (int)opt_u("count", 5));
        }
    }

    if (!opt_flag("serve") && !net_up) return -1;
    /* Serve: answer the network, pick up hot-plugged disks, follow control/shutdown. */
    print("PVTEST serving\n");
    u64 next_check = 0;
    for (;;) {
        if (net_up) netfront_poll();
        u64 t = now_ns();
        if (t >= next_check) {
            next_check = t + 100000000;
            char cmd[32];
            if (xs_read("control/shutdown", cmd, sizeof cmd) > 0) {
                int r = fe_streq(cmd, "poweroff") || fe_streq(cmd, "halt") ? 0 : fe_streq(cmd, "reboot") ? 1 : -1;
                if (r >= 0) {
                    struct line l = { .n = 0 };
                    ln_s(&l, "PVTEST control/shutdown "); ln_s(&l, cmd);
                    ln_print(&l);
                    return r;
                }
            }
            blkfront_poll_closing();
            scan_vbds();
        }
        u32 ports[1] = { net_port };
        evtchn_wait(ports, net_up ? 1 : 0, 100000000);
    }
}

int fe_parse_ip(const char *s, u32 *ip) { return parse_ip(s, ip); }
