/* blkfront for the PV test kernel (io/blkif.h, io/xenbus.h): one-page ring, direct segments only, data pages
 * granted once to the backend and reused. Runs a write/flush/read-back check, a read-only check, and optional
 * sequential and random I/O measurements selected on the command line. */
#include "front.h"

enum { OP_READ = 0, OP_WRITE = 1, OP_BARRIER = 2, OP_FLUSH = 3 };
#define SEGS 11
#define QD 8
#define VDISK_READONLY 4

struct blkif_seg { u32 gref; u8 first, last; u16 pad; };
struct blkif_req { u8 op, nr_segs; u16 handle; u32 pad; u64 id, sector; struct blkif_seg seg[SEGS]; };
struct blkif_rsp { u64 id; u8 op, pad; s16 status; u32 pad2; };
union blkif_entry { struct blkif_req req; struct blkif_rsp rsp; };
_Static_assert(sizeof(struct blkif_req) == 112, "blkif_request is 112 bytes on x86_64");
_Static_assert(sizeof(struct blkif_rsp) == 16, "blkif_response is 16 bytes");

struct blk_sring { struct sring_hdr h; union blkif_entry ring[]; };

/* QD slots of SEGS pages each, granted to the backend (domain 0) once. */
static u8 data[QD * SEGS][PAGE] __attribute__((aligned(4096)));
static int data_ref[QD * SEGS];
static int data_granted;

#define MAX_DEVS 4
static u8 ring_pages[MAX_DEVS][PAGE] __attribute__((aligned(4096)));
struct blkdev {
    char dir[64], be[96];
    struct blk_sring *s;
    u32 size, req_prod_pvt, rsp_cons, port;
    u16 handle, beid;
    u64 sectors;
    int flush, barrier, connected, ro;
    s16 status[QD];
    int done[QD];
};
static struct blkdev devs[MAX_DEVS];
static int nr_devs;

static void pr_fail(struct blkdev *d, const char *what)
{
    struct line l = { .n = 0 };
    ln_s(&l, "PVTEST blk FAIL "); ln_s(&l, d->dir); ln_s(&l, ": "); ln_s(&l, what);
    ln_print(&l);
}

/* Queues one request on slot `slot` covering `nsect` sectors (8 per page, from page 0 of the slot). */
static void queue(struct blkdev *d, u8 op, u64 sector, u32 nsect, int slot)
{
    struct blkif_req *r = &d->s->ring[d->req_prod_pvt & (d->size - 1)].req;
    r->op = op;
    r->handle = d->handle;
    r->id = (u64)slot;
    r->sector = sector;
    u32 segs = (nsect + 7) / 8;
    r->nr_segs = (u8)segs;
    for (u32 i = 0; i < segs; i++) {
        u32 n = nsect - i * 8 > 8 ? 8 : nsect - i * 8;
        r->seg[i].gref = (u32)data_ref[slot * SEGS + i];
        r->seg[i].first = 0;
        r->seg[i].last = (u8)(n - 1);
    }
    d->done[slot] = 0;
    d->req_prod_pvt++;
}

static void kick(struct blkdev *d)
{
    if (ring_push_requests(&d->s->h, d->req_prod_pvt)) evtchn_notify(d->port);
}

/* Consumes responses; returns how many. */
static int reap(struct blkdev *d)
{
    int n = 0;
    u32 prod = d->s->h.rsp_prod;
    rmb();
    while (d->rsp_cons != prod) {
        struct blkif_rsp *r = &d->s->ring[d->rsp_cons & (d->size - 1)].rsp;
        u64 id = r->id;
        if (id < QD) { d->status[id] = r->status; d->done[id] = 1; }
        d->rsp_cons++;
        n++;
    }
    return n;
}

/* Waits until at least one response arrives (or 10 s pass: returns 0). */
static int wait_some(struct blkdev *d)
{
    u64 end = now_ns() + 10000000000UL;
    for (;;) {
        evtchn_test_and_clear(d->port);
        int n = reap(d);
        if (n) return n;
        if (ring_final_check(&d->s->h, d->rsp_cons)) continue;
        if (now_ns() > end) return 0;
        evtchn_wait(&d->port, 1, 1000000000UL);
    }
}

/* One synchronous request on slot 0; returns the status (or -100 on timeout). */
static int sync_io(struct blkdev *d, u8 op, u64 sector, u32 nsect)
{
    queue(d, op, sector, nsect, 0);
    if (op == OP_FLUSH || op == OP_BARRIER) d->s->ring[(d->req_prod_pvt - 1) & (d->size - 1)].req.nr_segs = 0;
    kick(d);
    while (!d->done[0]) if (!wait_some(d)) return -100;
    return d->status[0];
}

static void fill_pattern(u8 *p, u64 sector)
{
    fe_memcpy(p, "XSPVBLK!", 8);
    for (int i = 0; i < 8; i++) p[8 + i] = (u8)(sector >> (8 * i));
    for (int j = 16; j < 512; j++) p[j] = (u8)(sector * 31 + (u64)j * 7 + 1);
}

static const char *be_key(struct blkdev *d, const char *key, char *buf)
{
    path_join(buf, d->be, key);
    return buf;
}

static int connect(struct blkdev *d)
{
    char p[160], v[96];
    s64 x;
    path_join(p, d->dir, "backend");
    if (xs_read(p, d->be, sizeof d->be) <= 0) { pr_fail(d, "no backend path"); return -1; }
    path_join(p, d->dir, "backend-id");
    d->beid = xs_read_int(p, &x) ? 0 : (u16)x;
    path_join(p, d->dir, "virtual-device");
    d->handle = xs_read_int(p, &x) ? 0 : (u16)x;
    int st = 0;
    u64 end = now_ns() + 30000000000UL;
    while ((st = xb_state(d->be)) < XB_INITWAIT && now_ns() < end) fe_sleep_ms(5);
    if (st != XB_INITWAIT) { pr_fail(d, "backend not in InitWait"); return -1; }

    d->s = (struct blk_sring *)ring_pages[nr_devs - 1];
    fe_memset(d->s, 0, PAGE);
    d->s->h.req_event = d->s->h.rsp_event = 1;
    d->size = ring_size(sizeof(union blkif_entry));
    int ref = gnttab_grant(d->beid, virt_to_mfn(d->s), 0);
    if (ref < 0 || evtchn_alloc_unbound(d->beid, &d->port)) { pr_fail(d, "grant/evtchn"); return -1; }
    struct line l = { .n = 0 };
    ln_u(&l, (u64)ref); l.b[l.n] = 0;
    path_join(p, d->dir, "ring-ref");
    if (xs_write(p, l.b)) { pr_fail(d, "write ring-ref"); return -1; }
    l.n = 0; ln_u(&l, d->port); l.b[l.n] = 0;
    path_join(p, d->dir, "event-channel");
    xs_write(p, l.b);
    path_join(p, d->dir, "protocol");
    xs_write(p, "x86_64-abi");
    xb_set_state(d->dir, XB_INITIALISED);

    end = now_ns() + 30000000000UL;
    while ((st = xb_state(d->be)) != XB_CONNECTED && st != XB_CLOSED && now_ns() < end) fe_sleep_ms(5);
    if (st != XB_CONNECTED) {
        if (xs_read(be_key(d, "error", p), v, sizeof v) > 0) pr_fail(d, v); else pr_fail(d, "backend did not connect");
        return -1;
    }
    if (xs_read_int(be_key(d, "sectors", p), &x)) { pr_fail(d, "no sectors"); return -1; }
    d->sectors = (u64)x;
    s64 ss = 512, info = 0, f = 0;
    xs_read_int(be_key(d, "sector-size", p), &ss);
    xs_read_int(be_key(d, "info", p), &info);
    d->flush = xs_read_int(be_key(d, "feature-flush-cache", p), &f) == 0 && f == 1;
    f = 0;
    d->barrier = xs_read_int(be_key(d, "feature-barrier", p), &f) == 0 && f == 1;
    d->ro = (info & VDISK_READONLY) != 0;
    if (ss != 512) { pr_fail(d, "sector-size is not 512"); return -1; }
    xb_set_state(d->dir, XB_CONNECTED);
    d->connected = 1;
    l.n = 0;
    ln_s(&l, "PVTEST blk connected "); ln_s(&l, d->dir); ln_s(&l, " sectors="); ln_u(&l, d->sectors);
    ln_s(&l, " sector-size="); ln_u(&l, (u64)ss); ln_s(&l, " info="); ln_u(&l, (u64)info);
    ln_s(&l, d->flush ? " flush-cache" : ""); ln_s(&l, d->barrier ? " barrier" : "");
    ln_print(&l);
    return 0;
}

static void check_rw(struct blkdev *d)
{
    u64 at = opt_u("blksector", 64);
    const u32 nsect = 32; /* 4 pages in one request */
    if (at + 2 * nsect > d->sectors) { pr_fail(d, "disk too small"); return; }
    for (u32 s = 0; s < nsect; s++) fill_pattern(&data[0][0] + s * 512, at + s);
    int st = sync_io(d, OP_WRITE, at, nsect);
    if (st) { struct line l = { .n = 0 }; ln_s(&l, "write status "); ln_i(&l, st); l.b[l.n] = 0; pr_fail(d, l.b); return; }
    u8 fop = d->flush ? OP_FLUSH : OP_BARRIER;
    st = sync_io(d, fop, 0, 0);
    if (st) { pr_fail(d, "flush"); return; }
    fe_memset(&data[0][0], 0, 4 * PAGE);
    st = sync_io(d, OP_READ, at, nsect);
    if (st) { pr_fail(d, "read"); return; }
    static u8 want[512];
    for (u32 s = 0; s < nsect; s++) {
        fill_pattern(want, at + s);
        if (fe_memcmp(&data[0][0] + s * 512, want, 512)) { pr_fail(d, "read-back differs"); return; }
    }
    struct line l = { .n = 0 };
    ln_s(&l, "PVTEST blk ok sectors="); ln_u(&l, d->sectors); ln_s(&l, " wrote="); ln_u(&l, nsect);
    ln_s(&l, " at="); ln_u(&l, at); ln_s(&l, fop == OP_FLUSH ? " flush=flush-cache" : " flush=barrier");
    ln_print(&l);
}

static void check_ro(struct blkdev *d)
{
    for (u32 s = 0; s < 8; s++) fill_pattern(&data[0][0] + s * 512, s);
    int st = sync_io(d, OP_WRITE, 0, 8);
    struct line l = { .n = 0 };
    ln_s(&l, st == -1 ? "PVTEST blk ro write refused status=" : "PVTEST blk FAIL ro write status="); ln_i(&l, st);
    ln_print(&l);
    st = sync_io(d, OP_READ, 0, 8);
    ln_s(&l, st == 0 ? "PVTEST blk ro read ok" : "PVTEST blk FAIL ro read status="); if (st) ln_i(&l, st);
    ln_print(&l);
}

/* Sequential (or random 4 KiB) I/O with QD requests in flight; prints bytes and nanoseconds. */
static void stream(struct blkdev *d, const char *name, u8 op, u64 first, u64 total_sect, u32 req_sect, int random)
{
    u64 issued = 0, completed = 0, nreq = (total_sect + req_sect - 1) / req_sect, errors = 0;
    int busy[QD] = { 0 };
    u64 rnd = 0x9e3779b97f4a7c15UL ^ first;
    u64 span = d->sectors - first;
    u64 t0 = now_ns();
    while (completed < nreq) {
        for (int s = 0; s < QD && issued < nreq; s++) {
            if (busy[s]) continue;
            u64 sector;
            if (random) {
                rnd ^= rnd << 13; rnd ^= rnd >> 7; rnd ^= rnd << 17;
                sector = first + (rnd % (span / 8)) * 8;
            } else sector = first + issued * req_sect;
            u32 n = req_sect;
            if (!random && sector + n > first + total_sect) n = (u32)(first + total_sect - sector);
            queue(d, op, sector, n, s);
            busy[s] = 1;
            issued++;
        }
        kick(d);
        if (!wait_some(d)) { pr_fail(d, "I/O timed out"); return; }
        for (int s = 0; s < QD; s++)
            if (busy[s] && d->done[s]) { busy[s] = 0; completed++; if (d->status[s]) errors++; }
    }
    if (op == OP_WRITE) sync_io(d, d->flush ? OP_FLUSH : OP_BARRIER, 0, 0);
    u64 ns = now_ns() - t0;
    struct line l = { .n = 0 };
    ln_s(&l, "PVTEST blkbench "); ln_s(&l, name); ln_s(&l, " bytes="); ln_u(&l, total_sect * 512);
    ln_s(&l, " requests="); ln_u(&l, nreq); ln_s(&l, " ns="); ln_u(&l, ns); ln_s(&l, " errors="); ln_u(&l, errors);
    ln_print(&l);
}

/* A buggy frontend on purpose: malformed requests must each get an error while the device carries on; then a
 * request index overrun must close the device (backend Closed with an error node), and nothing else. */
static void hostile(struct blkdev *d)
{
    static u8 ro_page[PAGE] __attribute__((aligned(4096)));
    int ro_ref = gnttab_grant(d->beid, virt_to_mfn(ro_page), 1);
    struct line l = { .n = 0 };
    ln_s(&l, "PVTEST blk hostile statuses=");
    for (int k = 0; k < 7; k++) {
        queue(d, OP_READ, 0, 8, 0);
        struct blkif_req *r = &d->s->ring[(d->req_prod_pvt - 1) & (d->size - 1)].req;
        switch (k) {
        case 0: r->nr_segs = 0; break;                                  /* no segments */
        case 1: r->op = OP_WRITE; r->nr_segs = SEGS + 1; break;          /* more than BLKIF_MAX_SEGMENTS_PER_REQUEST */
        case 2: r->seg[0].gref = 400; break;                            /* a reference never granted */
        case 3: r->seg[0].first = 5; r->seg[0].last = 2; break;         /* first > last */
        case 4: r->sector = d->sectors; break;                          /* beyond the end */
        case 5: r->op = 99; break;                                      /* unknown operation */
        case 6: r->seg[0].gref = (u32)ro_ref; break;                    /* read into a read-only grant */
        }
        kick(d);
        while (!d->done[0]) if (!wait_some(d)) { pr_fail(d, "hostile request timed out"); return; }
        if (k) ln_s(&l, ",");
        ln_i(&l, d->status[0]);
    }
    ln_s(&l, " good="); ln_i(&l, sync_io(d, OP_READ, 0, 8));
    ln_print(&l);
    /* Claim far more requests than the ring holds. */
    d->s->h.req_prod = d->req_prod_pvt + 1000;
    mb();
    evtchn_notify(d->port);
    char p[160], v[96];
    u64 end = now_ns() + 30000000000UL;
    while (xb_state(d->be) != XB_CLOSED && now_ns() < end) fe_sleep_ms(5);
    path_join(p, d->be, "error");
    int n = xs_read(p, v, sizeof v);
    ln_s(&l, "PVTEST blk hostile overrun: backend state="); ln_i(&l, xb_state(d->be)); ln_s(&l, " error="); ln_s(&l, n > 0 ? v : "none");
    ln_print(&l);
    xb_set_state(d->dir, XB_CLOSED);
    d->connected = 0;
}

int blkfront_run(const char *devdir)
{
    if (nr_devs == MAX_DEVS) return -1;
    if (!data_granted) {
        for (int i = 0; i < QD * SEGS; i++) data_ref[i] = gnttab_grant(0, virt_to_mfn(data[i]), 0);
        data_granted = 1;
    }
    struct blkdev *d = &devs[nr_devs++];
    fe_memset(d, 0, sizeof *d);
    int i = 0;
    while (devdir[i] && i < 63) { d->dir[i] = devdir[i]; i++; }
    if (connect(d)) return -1;
    if (d->ro) check_ro(d); else check_rw(d);
    if (opt_flag("blkhostile") && !d->ro) { hostile(d); return 0; }
    u64 mib = opt_u("blkbench", 0);
    if (mib && !d->ro) {
        u64 first = 4096, sect = mib * 2048;
        if (first + sect > d->sectors) { pr_fail(d, "disk too small for blkbench"); return -1; }
        stream(d, "seqwrite", OP_WRITE, first, sect, SEGS * 8, 0);
        stream(d, "seqread", OP_READ, first, sect, SEGS * 8, 0);
    }
    u64 iops = opt_u("iops", 0);
    if (iops && !d->ro) {
        stream(d, "randwrite4k", OP_WRITE, 4096, iops * 8, 8, 1);
        stream(d, "randread4k", OP_READ, 4096, iops * 8, 8, 1);
    }
    return 0;
}

void blkfront_poll_closing(void)
{
    for (int i = 0; i < nr_devs; i++) {
        struct blkdev *d = &devs[i];
        if (!d->connected) continue;
        int st = xb_state(d->be);
        if (st == XB_CLOSING || st == XB_CLOSED || st < 0) {
            xb_set_state(d->dir, XB_CLOSING);
            xb_set_state(d->dir, XB_CLOSED);
            d->connected = 0;
            struct line l = { .n = 0 };
            ln_s(&l, "PVTEST blk closed "); ln_s(&l, d->dir);
            ln_print(&l);
        }
    }
}
