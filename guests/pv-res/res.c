/*
 * XenSharp resource test guest (PV, public Xen ABI only). Its command line (xl.cfg extra=) picks one mode:
 *   spin          busy-loops on its one vCPU forever: a CPU-bound load for the scheduler's weight and cap figures.
 *   balloon=N     touches the top N MiB of its RAM, then on each line typed on its console (any key):
 *                 1st: gives those N MiB back (XENMEM_decrease_reservation, 2 MiB extents), 2nd: takes them again
 *                 (XENMEM_populate_physmap) and touches them. It reports each step on the console as "PVRES ...".
 *   (nothing)     prints its memory and idles.
 * Waiting for input sleeps in SCHEDOP_poll on the console's event channel, so an idle guest costs no CPU.
 */
typedef unsigned long u64; typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8;

#define VIRT_BASE 0xffffffff80000000UL
#define PAGE 4096UL
#define DOMID_SELF 0x7ff0

static inline long hcall(long nr, long a1, long a2, long a3)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3) : "0"(nr) : "rcx", "r11", "r10", "r8", "memory");
    return ret;
}
#define HC(nr, a, b, c) hcall(nr, (long)(a), (long)(b), (long)(c))
enum { H_MEMORY_OP = 12, H_UPDATE_VA_MAPPING = 14, H_CONSOLE_IO = 18, H_SCHED_OP = 29, H_EVENT_CHANNEL_OP = 32 };
enum { XENMEM_decrease_reservation = 1, XENMEM_current_reservation = 3, XENMEM_populate_physmap = 6 };
enum { SCHEDOP_shutdown = 2, SCHEDOP_poll = 3 };
enum { UVMF_INVLPG = 2 };

struct start_info { char magic[32]; u64 nr_pages, shared_info; u32 flags, pad0; u64 store_mfn; u32 store_evtchn, pad1;
    u64 console_mfn; u32 console_evtchn, pad2; u64 pt_base, nr_pt_frames, mfn_list, mod_start, mod_len; char cmd_line[1024]; };
struct vcpu_info { u8 pending, mask, pad[6]; u64 pending_sel; u64 cr2, pad2; u8 time[32]; };
struct shared_info { struct vcpu_info vcpu[32]; u64 evtchn_pending[64]; u64 evtchn_mask[64]; };
struct reservation { u64 extent_start, nr_extents; u32 extent_order, mem_flags; u16 domid; };
struct sched_poll { u64 ports; u32 nr_ports, pad; u64 timeout; };

static struct start_info *si;
static volatile struct shared_info *sh;
static u8 shinfo_page[PAGE] __attribute__((aligned(4096)));
static u8 scratch[PAGE] __attribute__((aligned(4096)));
static u64 extents[4096];
static u32 console_port;
static volatile u64 spin_count;

static u64 slen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }

static volatile u8 *ring(void) { return (volatile u8 *)(VIRT_BASE + si->console_mfn * PAGE); }

static void notify_console(void) { u32 port = console_port; HC(H_EVENT_CHANNEL_OP, 4, &port, 0); }

static void print(const char *s)
{
    u64 n = slen(s);
    HC(H_CONSOLE_IO, 0, n, s);
    volatile u8 *r = ring();
    volatile u32 *out_cons = (volatile u32 *)(r + 3080), *out_prod = (volatile u32 *)(r + 3084);
    u32 prod = *out_prod;
    for (u64 i = 0; i < n; i++) {
        while (prod - *out_cons >= 2048) HC(H_SCHED_OP, 0, 0, 0);
        r[1024 + (prod++ & 2047)] = (u8)s[i];
    }
    __asm__ volatile("" ::: "memory");
    *out_prod = prod;
    notify_console();
}

static void print_num(const char *label, u64 v, const char *tail)
{
    char b[96]; int n = 0; const char *p = label;
    while (*p) b[n++] = *p++;
    char d[24]; int k = 0;
    do { d[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) b[n++] = d[--k];
    for (p = tail; *p; ) b[n++] = *p++;
    b[n++] = '\n'; b[n] = 0;
    print(b);
}

static void shutdown(u32 reason) { HC(H_SCHED_OP, SCHEDOP_shutdown, &reason, 0); for (;;) ; }
static void fail(const char *what) { print("PVRES FAIL: "); print(what); print("\n"); shutdown(3); }

/* Sleeps until a line arrives on the console, and consumes it. */
static void wait_line(void)
{
    volatile u8 *r = ring();
    volatile u32 *in_cons = (volatile u32 *)(r + 3072), *in_prod = (volatile u32 *)(r + 3076);
    int seen_newline = 0;
    while (!seen_newline) {
        while (*in_prod == *in_cons) {
            static u32 port; port = console_port;
            static struct sched_poll poll; poll.ports = (u64)&port; poll.nr_ports = 1; poll.timeout = 0;
            HC(H_SCHED_OP, SCHEDOP_poll, &poll, 0);
            __atomic_and_fetch(&sh->evtchn_pending[console_port / 64], ~(1UL << (console_port % 64)), __ATOMIC_SEQ_CST);
        }
        u32 cons = *in_cons, prod = *in_prod;
        for (; cons != prod; cons++) {
            u8 c = r[cons & 1023];
            if (c == '\n' || c == '\r') seen_newline = 1;
        }
        __asm__ volatile("" ::: "memory");
        *in_cons = cons;
        notify_console();
    }
}

/* Maps each frame of [first, first+count) at the scratch page in turn and writes to it, so the host allocates it. */
static void touch(u64 first, u64 count)
{
    for (u64 pfn = first; pfn < first + count; pfn++) {
        if (HC(H_UPDATE_VA_MAPPING, scratch, (pfn << 12) | 0x63, UVMF_INVLPG)) fail("map a frame to touch");
        for (u64 off = 0; off < PAGE; off += 512) ((volatile u64 *)scratch)[off / 8] = pfn;
    }
    /* Back to the scratch page's own frame: no mapping of the balloon frames is left behind. */
    u64 own = ((u64)scratch - VIRT_BASE) >> 12;
    if (HC(H_UPDATE_VA_MAPPING, scratch, (own << 12) | 0x63, UVMF_INVLPG)) fail("restore the scratch mapping");
}

static long current_pages(void) { static u16 dom = DOMID_SELF; return HC(H_MEMORY_OP, XENMEM_current_reservation, &dom, 0); }

static long reservation(int op, u64 first, u64 count)
{
    u64 n = count / 512;
    for (u64 i = 0; i < n; i++) extents[i] = first + i * 512;
    static struct reservation r;
    r.extent_start = (u64)extents; r.nr_extents = n; r.extent_order = 9; r.mem_flags = 0; r.domid = DOMID_SELF;
    return HC(H_MEMORY_OP, op, &r, 0);
}

static u64 parse_after(const char *c, const char *key, int *found)
{
    u64 klen = slen(key);
    for (; *c; c++) {
        u64 i = 0;
        while (i < klen && c[i] == key[i]) i++;
        if (i == klen) {
            u64 v = 0;
            for (c += klen; *c >= '0' && *c <= '9'; c++) v = v * 10 + (u64)(*c - '0');
            *found = 1;
            return v;
        }
    }
    *found = 0;
    return 0;
}

void kmain(struct start_info *start)
{
    si = start;
    console_port = si->console_evtchn;
    if (HC(H_UPDATE_VA_MAPPING, shinfo_page, si->shared_info | 0x23, UVMF_INVLPG)) fail("map shared_info");
    sh = (volatile struct shared_info *)shinfo_page;
    sh->vcpu[0].mask = 1;
    print_num("PVRES ready, pages ", (u64)current_pages(), "");

    int has;
    if (parse_after(si->cmd_line, "spin", &has), has) {
        print("PVRES spinning\n");
        for (;;) spin_count++;
    }
    u64 mib = parse_after(si->cmd_line, "balloon=", &has);
    if (has && mib > 0) {
        u64 frames = mib * 256;
        if (frames % 512 || frames + 4096 > si->nr_pages || frames / 512 > sizeof extents / sizeof extents[0]) fail("balloon= needs an even number of MiB, leaving 16 MiB of RAM");
        u64 first = (si->nr_pages - frames) & ~511UL;
        touch(first, frames);
        print_num("PVRES touched ", mib, " MiB");
        wait_line();
        long done = reservation(XENMEM_decrease_reservation, first, frames);
        if (done != (long)(frames / 512)) fail("decrease_reservation");
        print_num("PVRES down ", mib, " MiB");
        print_num("PVRES pages ", (u64)current_pages(), "");
        wait_line();
        done = reservation(XENMEM_populate_physmap, first, frames);
        if (done != (long)(frames / 512)) fail("populate_physmap");
        touch(first, frames);
        print_num("PVRES up ", mib, " MiB");
        print_num("PVRES pages ", (u64)current_pages(), "");
    }
    for (;;) wait_line();
}
