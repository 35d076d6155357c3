/* xenstore client over the start_info ring (io/xs_wire.h) and the xenbus state helpers (io/xenbus.h). One request
 * at a time; no watches (the frontends poll the few nodes they follow). */
#include "front.h"

enum { XS_DIRECTORY = 1, XS_READ = 2, XS_WATCH_EVENT = 15, XS_ERROR = 16, XS_WRITE = 11 };
struct xsd_sockmsg { u32 type, req_id, tx_id, len; };
struct xs_ring { char req[1024], rsp[1024]; volatile u32 req_cons, req_prod, rsp_cons, rsp_prod; };

char xs_err[32];
static u32 xs_req_id;

static struct xs_ring *ring(void) { return (struct xs_ring *)(VIRT_BASE + fe_si->store_mfn * PAGE); }

static void wait_store(void)
{
    u32 port = fe_si->store_evtchn;
    evtchn_wait(&port, 1, 10000000);
    evtchn_test_and_clear(port);
}

static void put(const void *data, u32 len)
{
    struct xs_ring *r = ring();
    const char *p = data;
    while (len) {
        u32 prod = r->req_prod;
        mb();
        u32 space = 1024 - (prod - r->req_cons);
        if (space == 0) { evtchn_notify(fe_si->store_evtchn); wait_store(); continue; }
        u32 n = len < space ? len : space;
        for (u32 i = 0; i < n; i++) r->req[(prod + i) & 1023] = p[i];
        wmb();
        r->req_prod = prod + n;
        p += n; len -= n;
    }
}

static void get(void *data, u32 len)
{
    struct xs_ring *r = ring();
    char *p = data;
    while (len) {
        u32 cons = r->rsp_cons;
        u32 avail = r->rsp_prod - cons;
        rmb();
        if (avail == 0) { wait_store(); continue; }
        u32 n = len < avail ? len : avail;
        for (u32 i = 0; i < n; i++) if (p) p[i] = r->rsp[(cons + i) & 1023];
        mb();
        r->rsp_cons = cons + n;
        evtchn_notify(fe_si->store_evtchn);
        if (p) p += n;
        len -= n;
    }
}

/* Sends one request of up to two payload parts; reads the reply into out (NUL-terminated if room). */
static int xs_rpc(u32 type, const char *a, u32 alen, const char *b, u32 blen, char *out, u32 max)
{
    struct xsd_sockmsg m = { type, ++xs_req_id, 0, alen + blen };
    put(&m, sizeof m);
    put(a, alen);
    if (blen) put(b, blen);
    evtchn_notify(fe_si->store_evtchn);
    for (;;) {
        struct xsd_sockmsg h;
        get(&h, sizeof h);
        if (h.len > 4096) { xs_err[0] = 'E'; xs_err[1] = 0; return -1; } /* cannot happen with a sane xenstored */
        u32 keep = h.type == XS_WATCH_EVENT || h.req_id != m.req_id ? 0 : (h.len < max ? h.len : (max ? max - 1 : 0));
        if (h.type == XS_ERROR) {
            u32 k = h.len < sizeof xs_err - 1 ? h.len : sizeof xs_err - 1;
            get(xs_err, k);
            xs_err[k] = 0;
            get(0, h.len - k);
            if (h.req_id != m.req_id) continue;
            return -1;
        }
        get(out, keep);
        get(0, h.len - keep);
        if (h.type == XS_WATCH_EVENT || h.req_id != m.req_id) continue;
        if (out && max) out[keep] = 0;
        return (int)keep;
    }
}

int xs_read(const char *path, char *out, u32 max) { return xs_rpc(XS_READ, path, (u32)fe_slen(path) + 1, 0, 0, out, max); }
int xs_directory(const char *path, char *out, u32 max) { return xs_rpc(XS_DIRECTORY, path, (u32)fe_slen(path) + 1, 0, 0, out, max); }
int xs_write(const char *path, const char *val)
{
    return xs_rpc(XS_WRITE, path, (u32)fe_slen(path) + 1, val, (u32)fe_slen(val), 0, 0) < 0 ? -1 : 0;
}

int xs_read_int(const char *path, s64 *v)
{
    char b[24];
    int n = xs_read(path, b, sizeof b);
    if (n <= 0) return -1;
    int neg = b[0] == '-';
    *v = (s64)fe_atou(b + neg) * (neg ? -1 : 1);
    return 0;
}

void path_join(char *out, const char *a, const char *b)
{
    u64 n = 0;
    while (*a && n < 126) out[n++] = *a++;
    out[n++] = '/';
    while (*b && n < 127) out[n++] = *b++;
    out[n] = 0;
}

int xb_state(const char *dir)
{
    char p[160];
    s64 v;
    path_join(p, dir, "state");
    return xs_read_int(p, &v) ? -1 : (int)v;
}

int xb_set_state(const char *dir, int s)
{
    char p[160], v[4] = { (char)('0' + s), 0 };
    path_join(p, dir, "state");
    return xs_write(p, v);
}

int xb_wait_state(const char *dir, int want, u64 timeout_ms)
{
    u64 end = now_ns() + timeout_ms * 1000000;
    for (;;) {
        int s = xb_state(dir);
        if (s == want) return 1;
        if (now_ns() > end) return 0;
        fe_sleep_ms(5);
    }
}
