/* Shared declarations of the PV test kernel's xenbus frontends (xenbus.c, blkfront.c, netfront.c, front.c).
 * Written against Xen's public headers' ABI (io/xs_wire.h, io/xenbus.h, io/ring.h, io/blkif.h, io/netif.h,
 * grant_table.h, event_channel.h, sched.h); no Xen or Linux code. */
#ifndef PV_FRONT_H
#define PV_FRONT_H

typedef unsigned long u64; typedef unsigned int u32; typedef unsigned short u16; typedef unsigned char u8;
typedef long s64; typedef int s32; typedef short s16;

#define VIRT_BASE 0xffffffff80000000UL
#define PAGE 4096UL
#define DOMID_SELF 0x7ff0
#define mb() __asm__ volatile("mfence" ::: "memory")
#define wmb() __asm__ volatile("" ::: "memory")
#define rmb() __asm__ volatile("" ::: "memory")

static inline long fe_hcall(long nr, long a1, long a2, long a3)
{
    register long r10 __asm__("r10") = 0;
    register long r8 __asm__("r8") = 0;
    long ret;
    __asm__ volatile("syscall" : "=a"(ret), "+D"(a1), "+S"(a2), "+d"(a3), "+r"(r10), "+r"(r8) : "0"(nr) : "rcx", "r11", "memory");
    return ret;
}
#define FHC(nr, a, b, c) fe_hcall(nr, (long)(a), (long)(b), (long)(c))
enum { FH_UPDATE_VA_MAPPING = 14, FH_GRANT_TABLE_OP = 20, FH_SCHED_OP = 29, FH_EVENT_CHANNEL_OP = 32 };

/* The parts of start_info and shared_info the frontends use (same layout as kernel.c's). */
struct fe_start_info { char magic[32]; u64 nr_pages, shared_info; u32 flags, pad0; u64 store_mfn; u32 store_evtchn, pad1;
    u64 console_mfn; u32 console_evtchn, pad2; u64 pt_base, nr_pt_frames, mfn_list, mod_start, mod_len; char cmd_line[1024]; };
struct fe_time { u32 version, pad0; u64 tsc_timestamp, system_time; u32 mul; signed char shift; u8 flags, pad1[2]; };
struct fe_vcpu_info { u8 pending, mask, pad[6]; u64 pending_sel; u64 cr2, pad2; struct fe_time time; };
struct fe_shared_info { struct fe_vcpu_info vcpu[32]; u64 evtchn_pending[64]; u64 evtchn_mask[64]; };

/* kernel.c */
void print(const char *s);

/* front.c: helpers */
extern struct fe_start_info *fe_si;
extern volatile struct fe_shared_info *fe_sh;
u64 fe_slen(const char *s);
void fe_memset(void *d, int c, u64 n);
void fe_memcpy(void *d, const void *s, u64 n);
int fe_memcmp(const void *a, const void *b, u64 n);
int fe_streq(const char *a, const char *b);
u64 fe_atou(const char *s);
/* Appends to a line buffer: text, decimal, zero-padded decimal; fe_flush prints it. */
struct line { char b[256]; int n; };
void ln_s(struct line *l, const char *s);
void ln_u(struct line *l, u64 v);
void ln_i(struct line *l, s64 v);
void ln_print(struct line *l);
/* Command-line option "key=value": copies value (up to max-1 chars) and returns 1 when present. */
int opt(const char *key, char *val, int max);
int opt_flag(const char *word);
u64 opt_u(const char *key, u64 dflt);
u64 now_ns(void);               /* pvclock system time */
u64 virt_to_mfn(const void *va);

/* Event channels: the frontends run with upcalls masked and wait with SCHEDOP_poll. */
int evtchn_alloc_unbound(u16 remote, u32 *port);
void evtchn_notify(u32 port);
int evtchn_test_and_clear(u32 port);
void evtchn_wait(const u32 *ports, int n, u64 timeout_ns);   /* returns on an event or after timeout_ns */
void fe_sleep_ms(u64 ms);

/* Grants (v1 table, entries from 16 on). */
int gnttab_init(void);
int gnttab_grant(u16 domid, u64 mfn, int readonly);  /* returns the ref or -1 */

/* xenstore over the ring in start_info (io/xs_wire.h). Paths relative to /local/domain/<self> or absolute. */
int xs_read(const char *path, char *out, u32 max);            /* length, or -1 (error text in xs_err) */
int xs_write(const char *path, const char *val);
int xs_directory(const char *path, char *out, u32 max);       /* NUL-separated names; length or -1 */
int xs_read_int(const char *path, s64 *v);
extern char xs_err[32];
void path_join(char *out, const char *a, const char *b);

/* xenbus states (io/xenbus.h) */
enum { XB_UNKNOWN = 0, XB_INITIALISING, XB_INITWAIT, XB_INITIALISED, XB_CONNECTED, XB_CLOSING, XB_CLOSED };
int xb_state(const char *dir);                          /* state node of a directory, -1 when absent */
int xb_wait_state(const char *dir, int want, u64 timeout_ms);  /* 1 when reached */
int xb_set_state(const char *dir, int s);

/* One-page shared rings (io/ring.h): 64-byte header, entries after. */
struct sring_hdr { volatile u32 req_prod, req_event, rsp_prod, rsp_event; u8 pad[48]; };
static inline u32 ring_size(u32 entry) { u32 n = (u32)((PAGE - 64) / entry), r = 1; while (r * 2 <= n) r *= 2; return r; }
static inline int ring_push_requests(struct sring_hdr *s, u32 req_prod_pvt)
{
    u32 old = s->req_prod;
    wmb();
    s->req_prod = req_prod_pvt;
    mb();
    return (u32)(req_prod_pvt - s->req_event) < (u32)(req_prod_pvt - old);
}
/* RING_FINAL_CHECK_FOR_RESPONSES */
static inline int ring_final_check(struct sring_hdr *s, u32 rsp_cons)
{
    if (s->rsp_prod != rsp_cons) return 1;
    s->rsp_event = rsp_cons + 1;
    mb();
    return s->rsp_prod != rsp_cons;
}

/* blkfront.c / netfront.c */
int blkfront_run(const char *devdir);   /* handshake + test; returns 0 ok */
void blkfront_poll_closing(void);       /* close devices whose backend is closing */
int netfront_init(const char *devdir);  /* handshake; 0 ok */
void netfront_poll(void);               /* handles received frames and tx completions */
int netfront_ping(u32 ip, int count);
extern int net_up;
extern u32 net_port;
#endif
