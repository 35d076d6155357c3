/*
 * XenSharp PV ABI bench guest (public Xen PV ABI only). Its command line (xl.cfg extra=) picks one mode:
 *   ping=N      finds its interdomain event channel to a domU (EVTCHNOP_status over its ports; the console's goes to
 *               dom0), then N times: sends on it and
 *               blocks until its event upcall has seen the answer. Powers off when done.
 *   pong        finds its interdomain channel; its event upcall sends back on every event. Never ends.
 *   pfprep=N    unmaps N pages of its bss (update_va_mapping to 0), one hypercall each, and powers off.
 *   rounds=R    (with pfprep/pf) does it R times.
 *   pf=N        the same, then touches each page: its #PF handler maps the page back with update_va_mapping
 *               (UVMF_INVLPG) and returns with HYPERVISOR_iret, as Linux's PV fault path does. Powers off.
 * A failure prints "PVABI FAIL: ..." with console_io and crashes the domain (shutdown reason 3).
 */
typedef unsigned long u64; typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8;

#define VIRT_BASE 0xffffffff80000000UL
#define PAGE 4096UL
#define DOMID_SELF 0x7ff0
#define MAX_PF 2048

static inline long hcall(long nr, long a1, long a2, long a3)
{
    long ret;
    __asm__ volatile("syscall" : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3) : "0"(nr) : "rcx", "r11", "r10", "r8", "memory");
    return ret;
}
#define HC(nr, a, b, c) hcall(nr, (long)(a), (long)(b), (long)(c))
enum { H_SET_TRAP_TABLE = 0, H_SET_CALLBACKS = 4, H_UPDATE_VA_MAPPING = 14, H_CONSOLE_IO = 18, H_SCHED_OP = 29,
       H_EVENT_CHANNEL_OP = 32 };
enum { EVTCHNOP_send = 4, EVTCHNOP_status = 5, EVTCHNOP_unmask = 9, EVTCHNSTAT_interdomain = 2 };
enum { SCHEDOP_block = 1, SCHEDOP_shutdown = 2 };
enum { UVMF_INVLPG = 2 };

struct start_info { char magic[32]; u64 nr_pages, shared_info; u32 flags, pad0; u64 store_mfn; u32 store_evtchn, pad1;
    u64 console_mfn; u32 console_evtchn, pad2; u64 pt_base, nr_pt_frames, mfn_list, mod_start, mod_len; char cmd_line[1024]; };
struct vcpu_info { volatile u8 pending, mask, pad[6]; volatile u64 pending_sel; volatile u64 cr2, pad2; u8 time[32]; };
struct shared_info { struct vcpu_info vcpu[32]; volatile u64 evtchn_pending[64]; volatile u64 evtchn_mask[64]; };
struct evtchn_status { u16 dom; u16 pad; u32 port; u32 status; u32 vcpu; u16 rdom; u16 pad2; u32 rport; };
struct trap_info { u8 vector, flags; u16 cs; u32 pad; u64 address; };

extern void upcall_entry(void), pf_entry(void);

static struct start_info *si;
static struct shared_info *sh;
static u8 shinfo_page[PAGE] __attribute__((aligned(4096)));
static u8 buf[MAX_PF * PAGE] __attribute__((aligned(4096)));
static u32 port;
static int pong;
static volatile u64 events;

static u64 slen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }
static void print(const char *s) { HC(H_CONSOLE_IO, 0, slen(s), s); }
static void shutdown(u32 reason) { HC(H_SCHED_OP, SCHEDOP_shutdown, &reason, 0); for (;;) ; }
static void fail(const char *what) { print("PVABI FAIL: "); print(what); print("\n"); shutdown(3); }

/* The decimal value after "key=" on the command line, or -1. */
static long arg(const char *key)
{
    const char *c = si->cmd_line;
    u64 k = slen(key);
    for (u64 i = 0; c[i]; i++) {
        if ((i == 0 || c[i - 1] == ' ') ) {
            u64 j = 0;
            while (j < k && c[i + j] == key[j]) j++;
            if (j == k && c[i + k] == '=') {
                long v = 0;
                for (const char *p = c + i + k + 1; *p >= '0' && *p <= '9'; p++) v = v * 10 + (*p - '0');
                return v;
            }
            if (j == k && (c[i + k] == 0 || c[i + k] == ' ')) return 0;
        }
    }
    return -1;
}

static void send(void) { u32 p = port; if (HC(H_EVENT_CHANNEL_OP, EVTCHNOP_send, &p, 0)) fail("send"); }

void upcall(void)
{
    struct vcpu_info *vi = &sh->vcpu[0];
    vi->pending = 0;
    u64 sel = __atomic_exchange_n(&vi->pending_sel, 0, __ATOMIC_SEQ_CST);
    while (sel) {
        int w = __builtin_ctzl(sel);
        sel &= sel - 1;
        u64 bits = sh->evtchn_pending[w] & ~sh->evtchn_mask[w];
        __atomic_fetch_and(&sh->evtchn_pending[w], ~bits, __ATOMIC_SEQ_CST);
        if (w == (int)(port / 64) && (bits >> (port % 64)) & 1) {
            events++;
            if (pong) send();
        }
    }
}

void page_fault(u64 err)
{
    u64 va = sh->vcpu[0].cr2 & ~(PAGE - 1);
    (void)err;
    if (va < (u64)buf || va >= (u64)buf + MAX_PF * PAGE) fail("unexpected page fault");
    if (HC(H_UPDATE_VA_MAPPING, va, (va - VIRT_BASE) | 0x63, UVMF_INVLPG)) fail("update_va_mapping in the #PF handler");
}

static void find_port(void)
{
    for (u32 p = 1; p < 64; p++) {
        struct evtchn_status st = { .dom = DOMID_SELF, .port = p };
        if (HC(H_EVENT_CHANNEL_OP, EVTCHNOP_status, &st, 0) == 0 && st.status == EVTCHNSTAT_interdomain && st.rdom != 0) { port = p; return; }
    }
    fail("no interdomain event channel");
}

static void events_on(void)
{
    find_port();
    if (HC(H_SET_CALLBACKS, upcall_entry, 0, 0)) fail("set_callbacks");
    u32 p = port;
    if (HC(H_EVENT_CHANNEL_OP, EVTCHNOP_unmask, &p, 0)) fail("unmask");
}

static void unmap(long n)
{
    for (long i = 0; i < n; i++)
        if (HC(H_UPDATE_VA_MAPPING, (u64)buf + (u64)i * PAGE, 0, UVMF_INVLPG)) fail("unmap");
}

void kmain(struct start_info *start)
{
    si = start;
    if (HC(H_UPDATE_VA_MAPPING, shinfo_page, si->shared_info | 0x23, UVMF_INVLPG)) fail("map shared_info");
    sh = (struct shared_info *)shinfo_page;
    long n;
    if ((n = arg("ping")) >= 0) {
        events_on();
        for (long i = 0; i < n; i++) {
            u64 want = events + 1;
            send();
            for (;;) {
                sh->vcpu[0].mask = 1;
                __asm__ volatile("" ::: "memory");
                if (events >= want) break;
                HC(H_SCHED_OP, SCHEDOP_block, 0, 0);     /* unmasks; a pending upcall runs on the way back */
            }
        }
        print("PVABI ping done\n");
        shutdown(0);
    }
    if (arg("pong") >= 0) {
        pong = 1;
        events_on();
        for (;;) HC(H_SCHED_OP, SCHEDOP_block, 0, 0);
    }
    if ((n = arg("pfprep")) >= 0 || (n = arg("pf")) >= 0) {
        if (n > MAX_PF) fail("too many pages");
        static struct trap_info traps[2] = { { .vector = 14, .cs = 0xe033 } };
        traps[0].address = (u64)pf_entry;
        if (HC(H_SET_TRAP_TABLE, traps, 0, 0)) fail("set_trap_table");
        long rounds = arg("rounds") > 0 ? arg("rounds") : 1;
        for (long r = 0; r < rounds; r++) {
            unmap(n);
            if (arg("pf") >= 0)
                for (long i = 0; i < n; i++) buf[(u64)i * PAGE] = 1;
        }
        shutdown(0);
    }
    print("PVABI idle\n");
    for (;;) HC(H_SCHED_OP, SCHEDOP_block, 0, 0);
}
