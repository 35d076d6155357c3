/* XenSharp hostile PV test guest: public Xen PV ABI only. Each check issues a hypercall Xen must refuse, prints
 * "HOSTILE <name> rc=<rc>" and compares with the errno Xen gives; it ends by crashing itself (iret, bad frame). */
typedef unsigned long u64; typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8; typedef long s64;

#define VIRT_BASE 0xffffffff80000000UL
#define PAGE 4096UL
#define EPERM 1
#define ESRCH 3
#define EBUSY 16
#define EFAULT 14
#define EINVAL 22
#define ENOSYS 38

static inline long hcall(long nr, long a1, long a2, long a3, long a4, long a5)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10), "+r"(r8) : "0"(nr) : "rcx", "r11", "memory");
    return ret;
}
#define HC(nr, a, b, c) hcall(nr, (long)(a), (long)(b), (long)(c), 0, 0)
#define HC4(nr, a, b, c, d) hcall(nr, (long)(a), (long)(b), (long)(c), (long)(d), 0)
enum { H_SET_TRAP_TABLE = 0, H_MMU_UPDATE = 1, H_UPDATE_DESCRIPTOR = 10, H_MEMORY_OP = 12, H_MULTICALL = 13,
       H_UPDATE_VA_MAPPING = 14, H_XEN_VERSION = 17, H_CONSOLE_IO = 18, H_GRANT_TABLE_OP = 20, H_VCPU_OP = 24,
       H_SET_SEGMENT_BASE = 25, H_SCHED_OP = 29, H_CALLBACK_OP = 30, H_EVENT_CHANNEL_OP = 32 };

struct start_info { char magic[32]; u64 nr_pages, shared_info; u32 flags, pad0; u64 store_mfn; u32 store_evtchn, pad1;
    u64 console_mfn; u32 console_evtchn, pad2; u64 pt_base, nr_pt_frames, mfn_list, mod_start, mod_len; char cmd_line[1024]; };
struct trap_info { u8 vector, flags; u16 cs; u32 pad; u64 address; };
struct multicall_entry { u64 op, result, args[6]; };

static struct start_info *si;
static u32 console_port;
static u64 failures;
static u8 scratch[3 * PAGE] __attribute__((aligned(4096)));
extern void iret_unreadable(void);

#define HOLE 0xffff800000001000UL           /* inside the hypervisor's reserved area */
#define UNMAPPED 0x10000UL                  /* low user half: nothing mapped there */
#define NONCANON 0x0000800000000000UL

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

static void print(const char *s)
{
    HC(H_CONSOLE_IO, 0, slen(s), s);
    ring_write(s, slen(s));
}

static char *put_str(char *b, const char *s) { while (*s) *b++ = *s++; return b; }
static char *put_dec(char *b, long v)
{
    u64 u = v < 0 ? (u64)-v : (u64)v;
    char d[24]; int k = 0;
    if (v < 0) *b++ = '-';
    do { d[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    while (k) *b++ = d[--k];
    return b;
}

/* Prints the result line and the verdict line for one check. */
static void check(const char *name, long rc, long expected)
{
    char b[160], *p = b;
    p = put_str(p, "HOSTILE "); p = put_str(p, name); p = put_str(p, " rc="); p = put_dec(p, rc); *p++ = '\n'; *p = 0;
    print(b);
    p = b;
    p = put_str(p, "HOSTILE "); p = put_str(p, name);
    if (rc == expected) p = put_str(p, " ok\n");
    else { p = put_str(p, " MISMATCH expected "); p = put_dec(p, expected); *p++ = '\n'; failures++; }
    *p = 0;
    print(b);
}

static u64 mfn_of(u64 va) { return (va - VIRT_BASE) >> 12; }   /* the builder maps pseudo-physical 1:1 from VIRT_BASE */
static u64 *table_va(u64 mfn) { return (u64 *)(VIRT_BASE + (mfn << 12)); }

/* Machine address of the L1 entry that maps va (walks the initial tables through the VIRT_BASE mapping). */
static u64 l1e_maddr(u64 va)
{
    u64 l4m = mfn_of(si->pt_base);
    u64 l3m = (table_va(l4m)[(va >> 39) & 511] >> 12) & 0xffffffffffUL;
    u64 l2m = (table_va(l3m)[(va >> 30) & 511] >> 12) & 0xffffffffffUL;
    u64 l1m = (table_va(l2m)[(va >> 21) & 511] >> 12) & 0xffffffffffUL;
    return (l1m << 12) + ((va >> 12) & 511) * 8;
}

void kmain(struct start_info *start)
{
    si = start;
    console_port = si->console_evtchn;
    /* Benchmark mode (cmdline "bench=N"): N null hypercalls (xen_version(0)), then poweroff, nothing else. */
    for (const char *c = si->cmd_line; *c; c++)
        if (c[0] == 'b' && c[1] == 'e' && c[2] == 'n' && c[3] == 'c' && c[4] == 'h' && c[5] == '=') {
            u64 n = 0;
            for (c += 6; *c >= '0' && *c <= '9'; c++) n = n * 10 + (u64)(*c - '0');
            for (u64 i = 0; i < n; i++) HC(H_XEN_VERSION, 0, 0, 0);
            static u32 reason = 0;
            HC(H_SCHED_OP, 2, &reason, 0);
            for (;;) ;
        }
    print("HOSTILE start\n");

    /* Wild pointers. */
    check("console_write_unmapped", HC(H_CONSOLE_IO, 0, 16, UNMAPPED), -EFAULT);
    check("console_write_hole", HC(H_CONSOLE_IO, 0, 16, HOLE), -EFAULT);
    check("console_write_noncanonical", HC(H_CONSOLE_IO, 0, 16, NONCANON), -EFAULT);
    check("xen_version_extraversion_unmapped", HC(H_XEN_VERSION, 1, UNMAPPED, 0), -EFAULT);
    check("xen_version_extraversion_hole", HC(H_XEN_VERSION, 1, HOLE, 0), -EFAULT);
    check("xen_version_extraversion_noncanonical", HC(H_XEN_VERSION, 1, NONCANON, 0), -EFAULT);
    check("evtchn_send_arg_unmapped", HC(H_EVENT_CHANNEL_OP, 4, UNMAPPED, 0), -EFAULT);
    check("evtchn_send_arg_hole", HC(H_EVENT_CHANNEL_OP, 4, HOLE, 0), -EFAULT);
    check("evtchn_send_arg_noncanonical", HC(H_EVENT_CHANNEL_OP, 4, NONCANON, 0), -EFAULT);
    check("sched_shutdown_arg_hole", HC(H_SCHED_OP, 2, HOLE, 0), -EFAULT);
    check("multicall_list_unmapped", HC(H_MULTICALL, UNMAPPED, 1, 0), -EFAULT);
    check("multicall_list_hole", HC(H_MULTICALL, HOLE, 1, 0), -EFAULT);
    check("mmu_update_list_hole", HC4(H_MMU_UPDATE, HOLE, 1, 0, 0x7ff0), -EFAULT);
    check("update_va_mapping_hole_va", HC(H_UPDATE_VA_MAPPING, HOLE, 0, 2), -EINVAL);

    /* Out-of-range event channel ports. */
    static u32 port;
    port = 0;          check("evtchn_send_port_0", HC(H_EVENT_CHANNEL_OP, 4, &port, 0), -EINVAL);
    port = 4096;       check("evtchn_send_port_4096", HC(H_EVENT_CHANNEL_OP, 4, &port, 0), -EINVAL);
    port = 0xffffffff; check("evtchn_send_port_ffffffff", HC(H_EVENT_CHANNEL_OP, 4, &port, 0), -EINVAL);
    port = 0;          check("evtchn_close_port_0", HC(H_EVENT_CHANNEL_OP, 3, &port, 0), -EINVAL);
    port = 4096;       check("evtchn_close_port_4096", HC(H_EVENT_CHANNEL_OP, 3, &port, 0), -EINVAL);
    port = 0xffffffff; check("evtchn_close_port_ffffffff", HC(H_EVENT_CHANNEL_OP, 3, &port, 0), -EINVAL);
    port = 4096;       check("evtchn_unmask_port_4096", HC(H_EVENT_CHANNEL_OP, 9, &port, 0), -EINVAL);
    static struct { u16 remote_dom; u16 pad; u32 remote_port, local_port; } bi = { 0x7000, 0, 1, 0 };
    check("evtchn_bind_interdomain_no_domain", HC(H_EVENT_CHANNEL_OP, 0, &bi, 0), -ESRCH);
    static struct { u16 dom, remote; u32 port; } au = { 0, 0x7ff0, 0 };
    check("evtchn_alloc_unbound_for_dom0", HC(H_EVENT_CHANNEL_OP, 6, &au, 0), -EPERM);

    /* Huge counts. Xen only checks that a list starts outside its own area, then walks it: each list below
     * ends at a page we unmap first, so the walk stops with -EFAULT there (as on Xen), not in unrelated memory. */
    for (u64 i = 0; i < sizeof scratch; i++) scratch[i] = 0;
    u8 *hole_page = scratch + PAGE;
    check("unmap_own_page", HC(H_UPDATE_VA_MAPPING, hole_page, 0, 2), 0);
    struct multicall_entry *mc = (struct multicall_entry *)(hole_page - 4 * sizeof(struct multicall_entry));
    for (int i = 0; i < 4; i++) { mc[i].op = H_XEN_VERSION; mc[i].result = 0; for (int j = 0; j < 6; j++) mc[i].args[j] = 0; }
    check("multicall_count_1<<30", HC(H_MULTICALL, mc, 1UL << 30, 0), -EFAULT);
    check("multicall_count_1<<30_ran_4", mc[3].result >> 16 == 4 ? 0 : -1, 0);
    u64 *mreq = (u64 *)(hole_page - 16);
    mreq[0] = l1e_maddr((u64)(scratch + 2 * PAGE)); mreq[1] = *(u64 *)(VIRT_BASE + mreq[0]);   /* rewrite an L1 entry as is */
    check("mmu_update_count_1<<31", HC4(H_MMU_UPDATE, mreq, 1UL << 31, 0, 0x7ff0), 0);  /* Xen masks the continuation bit: count 0 */
    static u32 done;
    check("mmu_update_count_7fffffff", HC4(H_MMU_UPDATE, mreq, 0x7fffffffUL, &done, 0x7ff0), -EFAULT);
    check("mmu_update_count_7fffffff_done_1", done, 1);

    /* set_trap_table whose list runs into the unmapped page. */
    struct trap_info *t = (struct trap_info *)(hole_page - 4 * sizeof(struct trap_info));
    for (int i = 0; i < 4; i++) t[i] = (struct trap_info){ (u8)(32 + i), 0, 0xe033, 0, (u64)iret_unreadable };
    check("set_trap_table_off_mapped", HC(H_SET_TRAP_TABLE, t, 0, 0), -EFAULT);
    check("set_trap_table_hole", HC(H_SET_TRAP_TABLE, HOLE, 0, 0), -EFAULT);
    check("set_trap_table_clear", HC(H_SET_TRAP_TABLE, 0, 0, 0), 0);

    /* Misaligned buffers: Xen copies them like any other. */
    check("xen_version_extraversion_misaligned", HC(H_XEN_VERSION, 1, scratch + 2 * PAGE + 3, 0), 0);
    struct multicall_entry *mis = (struct multicall_entry *)(scratch + 2 * PAGE + 257);
    mis->op = H_XEN_VERSION; mis->result = 12345; for (int i = 0; i < 6; i++) mis->args[i] = 0;
    long mrc = HC(H_MULTICALL, mis, 1, 0);
    check("multicall_misaligned", mrc == 0 && mis->result >> 16 == 4 ? 0 : (mrc ? mrc : -1000), 0);
    u32 *mport = (u32 *)(scratch + 2 * PAGE + 513); *mport = 4096;
    check("evtchn_send_misaligned_port_4096", HC(H_EVENT_CHANNEL_OP, 4, mport, 0), -EINVAL);

    /* Bad descriptors and selectors. */
    u64 gdt_page = mfn_of((u64)(scratch + 2 * PAGE)) << 12;
    check("update_descriptor_tss", HC(H_UPDATE_DESCRIPTOR, gdt_page, 0x0000890000000067UL, 0), -EINVAL);
    check("update_descriptor_misaligned", HC(H_UPDATE_DESCRIPTOR, gdt_page + 4, 0, 0), -EINVAL);
    check("set_segment_base_gs_user_sel_bad", HC(H_SET_SEGMENT_BASE, 3, 0xfff8, 0), 0);   /* Xen loads a null selector, returns 0 */
    check("set_segment_base_bad_which", HC(H_SET_SEGMENT_BASE, 99, 0, 0), -EINVAL);

    /* Page tables: map a page-table frame writable; write into the hypervisor's L4 slots. */
    u64 l4m = mfn_of(si->pt_base);
    check("update_va_mapping_l4_writable", HC(H_UPDATE_VA_MAPPING, scratch, (l4m << 12) | 0x67, 2), -EBUSY);  /* get_page_from_l1e */
    static u64 req[2];
    req[0] = l1e_maddr((u64)scratch); req[1] = (l4m << 12) | 0x67;
    check("mmu_update_l4_writable", HC4(H_MMU_UPDATE, req, 1, 0, 0x7ff0), -EBUSY);
    req[0] = (l4m << 12) + 256 * 8; req[1] = (l4m << 12) | 0x63;
    check("mmu_update_hypervisor_l4_slot", HC4(H_MMU_UPDATE, req, 1, 0, 0x7ff0), -EINVAL);
    req[0] = (l4m << 12) + 264 * 8;
    check("mmu_update_hypervisor_l4_slot_264", HC4(H_MMU_UPDATE, req, 1, 0, 0x7ff0), -EINVAL);
    req[0] = 0x7fffffffff000UL; req[1] = 0;
    check("mmu_update_ptr_no_frame", HC4(H_MMU_UPDATE, req, 1, 0, 0x7ff0), -EINVAL);

    /* Grant table setup with a bad frame list: rc 0, status GNTST_bad_virt_addr (-5). */
    static struct { u16 dom; u16 pad; u32 nr_frames; s64 status_and_pad; u64 frame_list; } gs;
    gs.dom = 0x7ff0; gs.nr_frames = 1; gs.frame_list = HOLE;
    long grc = HC(H_GRANT_TABLE_OP, 2, &gs, 1);
    check("grant_setup_bad_frame_list", grc, 0);
    check("grant_setup_bad_frame_list_status", (short)gs.status_and_pad, -5);
    check("grant_setup_arg_unmapped", HC(H_GRANT_TABLE_OP, 2, UNMAPPED, 1), -EFAULT);

    /* Unknown hypercalls and sub-ops. */
    check("hypercall_45", HC(45, 0, 0, 0), -ENOSYS);
    check("hypercall_63", HC(63, 0, 0, 0), -ENOSYS);
    check("hypercall_1000", HC(1000, 0, 0, 0), -ENOSYS);
    check("xen_version_subop_999", HC(H_XEN_VERSION, 999, 0, 0), -ENOSYS);
    check("console_io_subop_999", HC(H_CONSOLE_IO, 999, 0, 0), -ENOSYS);
    check("event_channel_op_subop_999", HC(H_EVENT_CHANNEL_OP, 999, scratch, 0), -ENOSYS);
    check("sched_op_subop_999", HC(H_SCHED_OP, 999, 0, 0), -ENOSYS);
    check("grant_table_op_subop_999", HC(H_GRANT_TABLE_OP, 999, scratch, 1), -ENOSYS);
    check("vcpu_op_subop_999", HC(H_VCPU_OP, 999, 0, 0), -ENOSYS);
    check("memory_op_subop_999", HC(H_MEMORY_OP, 999, scratch, 0), -ENOSYS);
    check("callback_op_subop_999", HC(H_CALLBACK_OP, 999, scratch, 0), -ENOSYS);

    char b[64], *p = b;
    p = put_str(p, "HOSTILE done, mismatches "); p = put_dec(p, (long)failures); *p++ = '\n'; *p = 0;
    print(b);
    /* The end: HYPERVISOR_iret with an unreadable frame. Xen crashes the domain. */
    iret_unreadable();
}
