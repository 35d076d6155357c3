/* XenSharp PV test kernel: written against the public Xen PV ABI only (hypercalls by syscall, no hypercall page). */
typedef unsigned long u64; typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8; typedef long s64;

#define VIRT_BASE 0xffffffff80000000UL
#define PAGE 4096UL

static inline long hcall(long nr, long a1, long a2, long a3, long a4, long a5)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10), "+r"(r8) : "0"(nr) : "rcx", "r11", "memory");
    return ret;
}
#define HC(nr, a, b, c) hcall(nr, (long)(a), (long)(b), (long)(c), 0, 0)
enum { H_SET_TRAP_TABLE = 0, H_MULTICALL = 13, H_UPDATE_VA_MAPPING = 14, H_XEN_VERSION = 17, H_CONSOLE_IO = 18,
       H_GRANT_TABLE_OP = 20, H_VCPU_OP = 24, H_SCHED_OP = 29, H_CALLBACK_OP = 30, H_EVENT_CHANNEL_OP = 32 };

struct start_info { char magic[32]; u64 nr_pages, shared_info; u32 flags, pad0; u64 store_mfn; u32 store_evtchn, pad1;
    u64 console_mfn; u32 console_evtchn, pad2; u64 pt_base, nr_pt_frames, mfn_list, mod_start, mod_len; char cmd_line[1024]; };
struct vcpu_info { u8 pending, mask, pad[6]; u64 pending_sel; u64 cr2, pad2; u8 time[32]; };
struct shared_info { struct vcpu_info vcpu[32]; u64 evtchn_pending[64]; u64 evtchn_mask[64]; };
struct trap_info { u8 vector, flags; u16 cs; u32 pad; u64 address; };
struct multicall_entry { u64 op, result, args[6]; };

static struct start_info *si;
static volatile struct shared_info *sh;
static u8 shinfo_page[PAGE] __attribute__((aligned(4096)));
static u8 grant_page[PAGE] __attribute__((aligned(4096)));
static u8 ap_stack[8192] __attribute__((aligned(16)));
static u8 vgc[5168] __attribute__((aligned(16)));
static volatile u64 pf_count, pf_cr2, pf_err, timer_ticks, loop_hits, ap_alive;
static u32 timer_port, loop_port, console_port;
int front_main(void *start, volatile void *shared);
extern char pf_entry[], event_entry[], ap_entry[], fault_insn[], fault_done[];

static u64 slen(const char *s) { u64 n = 0; while (s[n]) n++; return n; }

static void ring_write(const char *s, u64 n)
{
    volatile u8 *ring = (volatile u8 *)(VIRT_BASE + si->console_mfn * PAGE);
    volatile u32 *out_cons = (volatile u32 *)(ring + 3080), *out_prod = (volatile u32 *)(ring + 3084);
    u32 prod = *out_prod;
    for (u64 i = 0; i < n; i++) {
        while (prod - *out_cons >= 2048) HC(H_SCHED_OP, 0, 0, 0);
        ring[1024 + (prod++ & 2047)] = (u8)s[i];
    }
    __asm__ volatile("" ::: "memory");
    *out_prod = prod;
    u32 port = console_port;
    HC(H_EVENT_CHANNEL_OP, 4, &port, 0);
}

void print(const char *s)
{
    HC(H_CONSOLE_IO, 0, slen(s), s);
    ring_write(s, slen(s));
}

static void print_num(const char *label, u64 v)
{
    char b[64]; int n = 0; const char *p = label;
    while (*p) b[n++] = *p++;
    char d[24]; int k = 0;
    do { d[k++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (k) b[n++] = d[--k];
    b[n++] = '\n'; b[n] = 0;
    print(b);
}

static void shutdown(u32 reason) { HC(H_SCHED_OP, 2, &reason, 0); for (;;) ; }
static void fail(const char *what) { print("PVTEST FAIL: "); print(what); print("\n"); shutdown(3); }

/* Called by pf_entry with f = {error code, rip, cs, rflags, rsp, ss}. */
void pf_handler(u64 *f)
{
    pf_count++;
    pf_err = f[0];
    pf_cr2 = sh->vcpu[0].cr2;
    if (f[1] == (u64)fault_insn) f[1] = (u64)fault_done; else fail("unexpected page fault");
}

void event_handler(void)
{
    volatile struct vcpu_info *vi = &sh->vcpu[0];
    vi->pending = 0;
    u64 sel = __atomic_exchange_n(&vi->pending_sel, 0, __ATOMIC_SEQ_CST);
    while (sel) {
        int w = __builtin_ctzl(sel); sel &= sel - 1;
        u64 bits = sh->evtchn_pending[w] & ~sh->evtchn_mask[w];
        while (bits) {
            int b = __builtin_ctzl(bits); bits &= bits - 1;
            u32 port = (u32)(w * 64 + b);
            __atomic_and_fetch(&sh->evtchn_pending[w], ~(1UL << b), __ATOMIC_SEQ_CST);
            if (port == timer_port) timer_ticks++;
            else if (port == loop_port) loop_hits++;
        }
    }
}

void ap_main(void)
{
    HC(H_CONSOLE_IO, 0, 16, "PVTEST vcpu1 up\n");
    ap_alive = 1;
    for (;;) HC(H_VCPU_OP, 2, 1, 0); /* VCPUOP_down on itself */
}

__asm__(".globl probe_fault\nprobe_fault:\n movq $0x1000, %rax\n.globl fault_insn\nfault_insn: movq (%rax), %rax\n.globl fault_done\nfault_done: ret\n");
extern void probe_fault(void);

static void events_on(void)
{
    sh->vcpu[0].mask = 0;
    __asm__ volatile("" ::: "memory");
    if (sh->vcpu[0].pending) HC(H_XEN_VERSION, 0, 0, 0); /* have the pending upcall delivered */
}

static u32 parse_reason(const char *c)
{
    for (; *c; c++)
        if (c[0] == 'r' && c[1] == 'e' && c[2] == 'a' && c[3] == 's' && c[4] == 'o' && c[5] == 'n' && c[6] == '=')
            return (u32)(c[7] - '0');
    return 0;
}

void kmain(struct start_info *start)
{
    si = start;
    console_port = si->console_evtchn;
    /* shared_info: map its machine frame over our page-aligned buffer. */
    if (HC(H_UPDATE_VA_MAPPING, shinfo_page, si->shared_info | 0x23, 2)) fail("map shared_info");
    sh = (volatile struct shared_info *)shinfo_page;
    print("PVTEST console ok\n");

    /* Trap table with a page-fault handler, then a fault we handle ourselves. */
    static struct trap_info traps[2];
    traps[0] = (struct trap_info){ 14, 0, 0xe033, 0, (u64)pf_entry };
    if (HC(H_SET_TRAP_TABLE, traps, 0, 0)) fail("set_trap_table");
    probe_fault();
    if (pf_count != 1 || pf_cr2 != 0x1000 || (pf_err & 4)) fail("page fault");
    print("PVTEST pagefault ok\n");

    /* Multicall: two xen_version(0). */
    static struct multicall_entry mc[2];
    mc[0].op = mc[1].op = H_XEN_VERSION;
    if (HC(H_MULTICALL, mc, 2, 0) || mc[0].result == 0 || mc[0].result != mc[1].result) fail("multicall");
    print_num("PVTEST multicall ok, version ", mc[0].result >> 16);

    /* Event callback, then a loopback channel: alloc_unbound(self,self) + bind_interdomain, send, upcall. */
    static struct { u16 type, flags; u32 pad; u64 address; } cb;
    cb.type = 0; cb.flags = 1; cb.address = (u64)event_entry;
    if (HC(H_CALLBACK_OP, 0, &cb, 0)) fail("callback_op");
    static struct { u16 dom, remote; u32 port; } au = { 0x7ff0, 0x7ff0, 0 };
    if (HC(H_EVENT_CHANNEL_OP, 6, &au, 0)) fail("alloc_unbound");
    static struct { u16 remote_dom; u16 pad; u32 remote_port, local_port; } bi;
    bi.remote_dom = 0x7ff0; bi.remote_port = au.port;
    if (HC(H_EVENT_CHANNEL_OP, 0, &bi, 0)) fail("bind_interdomain");
    loop_port = au.port;
    events_on();
    u32 sp = bi.local_port;
    if (HC(H_EVENT_CHANNEL_OP, 4, &sp, 0)) fail("send");
    if (loop_hits != 1) fail("loopback upcall");
    print("PVTEST evtchn ok\n");

    /* 100 Hz periodic timer for one second, sleeping in SCHEDOP_block between ticks. */
    static struct { u32 virq, vcpu, port; } bv = { 0, 0, 0 };
    if (HC(H_EVENT_CHANNEL_OP, 1, &bv, 0)) fail("bind_virq");
    timer_port = bv.port;
    static struct { u64 period_ns; } per = { 10000000 };
    if (HC(H_VCPU_OP, 6, 0, &per)) fail("set_periodic_timer");
    while (timer_ticks < 100) {
        sh->vcpu[0].mask = 1;
        if (timer_ticks >= 100) break;
        HC(H_SCHED_OP, 1, 0, 0); /* block: unmasks, returns with the upcall delivered */
    }
    HC(H_VCPU_OP, 7, 0, 0);
    print_num("PVTEST timer ok, ticks ", timer_ticks);

    /* Grant table: one frame. */
    static u64 frames[1];
    static struct { u16 dom; u16 pad; u32 nr_frames; s64 status_and_pad; u64 frame_list; } gs;
    gs.dom = 0x7ff0; gs.nr_frames = 1; gs.frame_list = (u64)frames;
    if (HC(H_GRANT_TABLE_OP, 2, &gs, 1) || (short)gs.status_and_pad != 0 || frames[0] == 0) fail("grant setup_table");
    if (HC(H_UPDATE_VA_MAPPING, grant_page, (frames[0] << 12) | 0x23, 2)) fail("map grant frame");
    print("PVTEST grant ok\n");

    /* Second vCPU: VCPUOP_initialise + VCPUOP_up. */
    for (u64 i = 0; i < sizeof vgc; i++) vgc[i] = 0;
    *(u64 *)(vgc + 512) = 1 << 2;                                     /* VGCF_in_kernel */
    *(u64 *)(vgc + 520 + 128) = (u64)ap_entry;
    *(u16 *)(vgc + 520 + 136) = 0xe033;
    *(u64 *)(vgc + 520 + 144) = 0x200;
    *(u64 *)(vgc + 520 + 152) = (u64)(ap_stack + sizeof ap_stack);
    *(u16 *)(vgc + 520 + 160) = 0xe02b;
    *(u64 *)(vgc + 4968) = 0xe02b;
    *(u64 *)(vgc + 4976) = (u64)(ap_stack + sizeof ap_stack);
    *(u64 *)(vgc + 4984 + 24) = si->pt_base - VIRT_BASE;              /* ctrlreg[3]: machine address of the L4 */
    *(u64 *)(vgc + 5112) = (u64)event_entry;
    if (HC(H_VCPU_OP, 0, 1, vgc)) fail("vcpu initialise");
    if (HC(H_VCPU_OP, 1, 1, 0)) fail("vcpu up");
    for (int i = 0; i < 100000 && !ap_alive; i++) HC(H_SCHED_OP, 0, 0, 0);
    if (!ap_alive) fail("vcpu1 did not run");
    print("PVTEST smp ok\n");

    u32 reason = parse_reason(si->cmd_line);
    int front_reason = front_main(si, sh); /* front.c: xenbus frontends when the command line says "xenbus" */
    if (front_reason >= 0) reason = (u32)front_reason;
    print_num("PVTEST done, shutdown reason ", reason);
    shutdown(reason);
}
