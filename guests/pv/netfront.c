/* netfront for the PV test kernel (io/netif.h): copy-mode rx (request-rx-copy), one queue, one event channel, no
 * scatter-gather or offloads. On top: a minimal IPv4 host that answers ARP and ICMP echo and can ping. */
#include "front.h"

#define RX_BUFS 64
#define TX_BUFS 32

struct tx_req { u32 gref; u16 offset, flags, id, size; };
struct tx_rsp { u16 id; s16 status; };
union tx_entry { struct tx_req req; struct tx_rsp rsp; };
struct rx_req { u16 id, pad; u32 gref; };
struct rx_rsp { u16 id, offset, flags; s16 status; };
union rx_entry { struct rx_req req; struct rx_rsp rsp; };
_Static_assert(sizeof(union tx_entry) == 12, "netif_tx entry is 12 bytes");
_Static_assert(sizeof(union rx_entry) == 8, "netif_rx entry is 8 bytes");
struct tx_sring { struct sring_hdr h; union tx_entry ring[]; };
struct rx_sring { struct sring_hdr h; union rx_entry ring[]; };

static u8 tx_ring_page[PAGE] __attribute__((aligned(4096)));
static u8 rx_ring_page[PAGE] __attribute__((aligned(4096)));
static u8 rx_buf[RX_BUFS][PAGE] __attribute__((aligned(4096)));
static u8 tx_buf[TX_BUFS][PAGE] __attribute__((aligned(4096)));
static int rx_ref[RX_BUFS], tx_ref[TX_BUFS], tx_busy[TX_BUFS];
static struct tx_sring *txs;
static struct rx_sring *rxs;
static u32 tx_size, rx_size, tx_prod, tx_cons, rx_prod, rx_cons;
static u8 my_mac[6];
static u32 my_ip;
int net_up;
u32 net_port;
static u64 rx_frames, tx_frames, arp_answered, echo_answered;

int fe_parse_ip(const char *s, u32 *ip);

static u16 get16(const u8 *p) { return (u16)(p[0] << 8 | p[1]); }
static u32 get32(const u8 *p) { return (u32)p[0] << 24 | (u32)p[1] << 16 | (u32)p[2] << 8 | p[3]; }
static void put16(u8 *p, u16 v) { p[0] = (u8)(v >> 8); p[1] = (u8)v; }
static void put32(u8 *p, u32 v) { p[0] = (u8)(v >> 24); p[1] = (u8)(v >> 16); p[2] = (u8)(v >> 8); p[3] = (u8)v; }

static u16 csum(const u8 *p, u32 n)
{
    u32 s = 0;
    for (u32 i = 0; i + 1 < n; i += 2) s += (u32)(p[i] << 8 | p[i + 1]);
    if (n & 1) s += (u32)p[n - 1] << 8;
    while (s >> 16) s = (s & 0xffff) + (s >> 16);
    return (u16)~s;
}

static void ln_ip(struct line *l, u32 ip)
{
    for (int i = 3; i >= 0; i--) { ln_u(l, (ip >> (8 * i)) & 0xff); if (i) ln_s(l, "."); }
}

static void post_rx(int id)
{
    struct rx_req *r = &rxs->ring[rx_prod & (rx_size - 1)].req;
    r->id = (u16)id;
    r->gref = (u32)rx_ref[id];
    rx_prod++;
}

static void reap_tx(void)
{
    u32 prod = txs->h.rsp_prod;
    rmb();
    while (tx_cons != prod) {
        struct tx_rsp *r = &txs->ring[tx_cons & (tx_size - 1)].rsp;
        if (r->status != 1 /* NETIF_RSP_NULL */ && r->id < TX_BUFS) tx_busy[r->id] = 0;
        tx_cons++;
    }
}

/* Queues one frame (padded to 60 bytes) and notifies the backend. 0 ok, -1 when no buffer freed up in time. */
static int send_frame(const u8 *f, u32 len)
{
    if (len < 60) len = 60;
    int id = -1;
    u64 end = now_ns() + 1000000000UL;
    for (;;) {
        reap_tx();
        for (int i = 0; i < TX_BUFS; i++) if (!tx_busy[i]) { id = i; break; }
        if (id >= 0) break;
        if (now_ns() > end) return -1;
        ring_final_check(&txs->h, tx_cons);
        evtchn_wait(&net_port, 1, 10000000);
    }
    fe_memcpy(tx_buf[id], f, len);
    tx_busy[id] = 1;
    struct tx_req *r = &txs->ring[tx_prod & (tx_size - 1)].req;
    r->gref = (u32)tx_ref[id];
    r->offset = 0;
    r->flags = 0;
    r->id = (u16)id;
    r->size = (u16)len;
    tx_prod++;
    if (ring_push_requests(&txs->h, tx_prod)) evtchn_notify(net_port);
    tx_frames++;
    return 0;
}

/* ---- ARP and ICMP ---- */
static u32 ping_ip, ping_id = 0x5853;
static u8 ping_mac[6];
static int ping_mac_known;
static u32 reply_seq;
static u64 reply_ns;

static void eth_header(u8 *f, const u8 *dst, u16 type)
{
    fe_memcpy(f, dst, 6);
    fe_memcpy(f + 6, my_mac, 6);
    put16(f + 12, type);
}

static void send_arp(u16 op, const u8 *tha, u32 tpa, const u8 *eth_dst)
{
    u8 f[60];
    fe_memset(f, 0, sizeof f);
    eth_header(f, eth_dst, 0x0806);
    u8 *a = f + 14;
    put16(a, 1); put16(a + 2, 0x0800); a[4] = 6; a[5] = 4; put16(a + 6, op);
    fe_memcpy(a + 8, my_mac, 6); put32(a + 14, my_ip);
    fe_memcpy(a + 18, tha, 6); put32(a + 24, tpa);
    send_frame(f, 42);
}

static void send_echo(const u8 *dst_mac, u32 dst_ip, u8 type, u16 id, u16 seq, const u8 *payload, u32 plen)
{
    static u8 f[1514];
    if (plen > 1472) plen = 1472;
    eth_header(f, dst_mac, 0x0800);
    u8 *ip = f + 14;
    ip[0] = 0x45; ip[1] = 0; put16(ip + 2, (u16)(20 + 8 + plen)); put16(ip + 4, seq); put16(ip + 6, 0x4000);
    ip[8] = 64; ip[9] = 1; put16(ip + 10, 0); put32(ip + 12, my_ip); put32(ip + 16, dst_ip);
    put16(ip + 10, csum(ip, 20));
    u8 *ic = ip + 20;
    ic[0] = type; ic[1] = 0; put16(ic + 2, 0); put16(ic + 4, id); put16(ic + 6, seq);
    fe_memcpy(ic + 8, payload, plen);
    put16(ic + 2, csum(ic, 8 + plen));
    send_frame(f, 14 + 20 + 8 + plen);
}

static void handle_frame(const u8 *f, u32 len)
{
    static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
    if (len < 14) return;
    if (fe_memcmp(f, my_mac, 6) && fe_memcmp(f, bcast, 6)) return;
    u16 type = get16(f + 12);
    if (type == 0x0806 && len >= 42) {
        const u8 *a = f + 14;
        if (get16(a) != 1 || get16(a + 2) != 0x0800 || a[4] != 6 || a[5] != 4) return;
        u16 op = get16(a + 6);
        u32 spa = get32(a + 14), tpa = get32(a + 24);
        if (ping_ip && spa == ping_ip) { fe_memcpy(ping_mac, a + 8, 6); ping_mac_known = 1; }
        if (op == 1 && tpa == my_ip) { send_arp(2, a + 8, spa, a + 8); arp_answered++; }
        return;
    }
    if (type != 0x0800 || len < 34) return;
    const u8 *ip = f + 14;
    u32 ihl = (u32)(ip[0] & 15) * 4, tot = get16(ip + 2);
    if ((ip[0] >> 4) != 4 || ihl < 20 || tot < ihl + 8 || 14 + tot > len) return;
    if (get32(ip + 16) != my_ip || ip[9] != 1 || (get16(ip + 6) & 0x3fff)) return; /* ICMP to us, not fragmented */
    const u8 *ic = ip + ihl;
    u32 ilen = tot - ihl;
    if (csum(ic, ilen) != 0) return;
    u32 src = get32(ip + 12);
    if (ic[0] == 8) {
        send_echo(f + 6, src, 0, get16(ic + 4), get16(ic + 6), ic + 8, ilen - 8);
        echo_answered++;
    } else if (ic[0] == 0 && src == ping_ip && get16(ic + 4) == ping_id) {
        reply_seq = get16(ic + 6);
        reply_ns = now_ns();
    }
}

void netfront_poll(void)
{
    for (;;) {
        evtchn_test_and_clear(net_port);
        reap_tx();
        u32 prod = rxs->h.rsp_prod;
        rmb();
        int any = 0;
        while (rx_cons != prod) {
            struct rx_rsp r = rxs->ring[rx_cons & (rx_size - 1)].rsp;
            rx_cons++;
            any = 1;
            if (r.id >= RX_BUFS) continue;
            if (r.status > 0 && r.offset + (u32)r.status <= PAGE) { rx_frames++; handle_frame(rx_buf[r.id] + r.offset, (u32)r.status); }
            post_rx(r.id);
        }
        if (any) { if (ring_push_requests(&rxs->h, rx_prod)) evtchn_notify(net_port); continue; }
        if (!ring_final_check(&rxs->h, rx_cons)) break;
    }
    ring_final_check(&txs->h, tx_cons);
}

int netfront_ping(u32 ip, int count)
{
    static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, zero[6] = { 0 };
    ping_ip = ip;
    struct line l = { .n = 0 };
    u64 end = now_ns() + opt_u("arpwait", 60) * 1000000000UL;
    while (!ping_mac_known) {
        if (now_ns() > end) { ln_s(&l, "PVTEST ping "); ln_ip(&l, ip); ln_s(&l, " FAIL no ARP reply"); ln_print(&l); return -1; }
        send_arp(1, zero, ip, bcast);
        u64 next = now_ns() + 200000000;
        while (!ping_mac_known && now_ns() < next) { netfront_poll(); evtchn_wait(&net_port, 1, 10000000); }
    }
    u64 min = ~0UL, max = 0, sum = 0;
    int got = 0;
    u8 payload[56];
    for (int i = 0; i < 56; i++) payload[i] = (u8)i;
    for (int seq = 1; seq <= count; seq++) {
        reply_seq = 0;
        u64 t0 = now_ns();
        send_echo(ping_mac, ip, 8, (u16)ping_id, (u16)seq, payload, sizeof payload);
        while (reply_seq != (u32)seq && now_ns() - t0 < 1000000000UL) {
            netfront_poll();
            if (reply_seq == (u32)seq) break;
            evtchn_wait(&net_port, 1, 5000000);
        }
        if (reply_seq == (u32)seq) {
            u64 rtt = reply_ns - t0;
            got++; sum += rtt;
            if (rtt < min) min = rtt;
            if (rtt > max) max = rtt;
        }
    }
    ln_s(&l, "PVTEST ping "); ln_ip(&l, ip); ln_s(&l, " replies="); ln_u(&l, (u64)got); ln_s(&l, "/"); ln_u(&l, (u64)count);
    if (got) { ln_s(&l, " rtt_us min="); ln_u(&l, min / 1000); ln_s(&l, " avg="); ln_u(&l, sum / (u64)got / 1000); ln_s(&l, " max="); ln_u(&l, max / 1000); }
    ln_print(&l);
    return got;
}

/* One tx request built by hand; waits for its response and returns the status. */
static s16 tx_raw(u32 gref, u16 offset, u16 size)
{
    struct tx_req *r = &txs->ring[tx_prod & (tx_size - 1)].req;
    r->gref = gref; r->offset = offset; r->flags = 0; r->id = TX_BUFS - 1; r->size = size;
    u32 slot = tx_prod++;
    if (ring_push_requests(&txs->h, tx_prod)) evtchn_notify(net_port);
    u64 end = now_ns() + 10000000000UL;
    while (txs->h.rsp_prod == slot && now_ns() < end) { ring_final_check(&txs->h, tx_cons); evtchn_wait(&net_port, 1, 10000000); }
    rmb();
    s16 st = txs->ring[slot & (tx_size - 1)].rsp.status;
    tx_cons = slot + 1;
    return txs->h.rsp_prod == slot ? -100 : st;
}

/* A buggy frontend on purpose: malformed tx requests get errors and the vif carries on; a tx index overrun closes it. */
static void hostile(const char *be)
{
    struct line l = { .n = 0 };
    reap_tx();
    tx_busy[TX_BUFS - 1] = 1;
    fe_memset(tx_buf[TX_BUFS - 1], 0xff, 64);
    u32 ref = (u32)tx_ref[TX_BUFS - 1];
    ln_s(&l, "PVTEST net hostile statuses=");
    ln_i(&l, tx_raw(ref, 0, 4000)); ln_s(&l, ",");   /* longer than an Ethernet frame */
    ln_i(&l, tx_raw(400, 0, 60)); ln_s(&l, ",");     /* a reference never granted */
    ln_i(&l, tx_raw(ref, 4000, 200)); ln_s(&l, ","); /* crosses the end of the page */
    ln_i(&l, tx_raw(ref, 0, 10));                    /* shorter than an Ethernet header */
    ln_s(&l, " good="); ln_i(&l, tx_raw(ref, 0, 60));
    ln_print(&l);
    txs->h.req_prod = tx_prod + 1000;
    mb();
    evtchn_notify(net_port);
    char p[160], v[96];
    u64 end = now_ns() + 30000000000UL;
    while (xb_state(be) != XB_CLOSED && now_ns() < end) fe_sleep_ms(5);
    path_join(p, be, "error");
    int n = xs_read(p, v, sizeof v);
    ln_s(&l, "PVTEST net hostile overrun: backend state="); ln_i(&l, xb_state(be)); ln_s(&l, " error="); ln_s(&l, n > 0 ? v : "none");
    ln_print(&l);
    net_up = 0;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

int netfront_init(const char *dir)
{
    char p[160], be[96], v[32];
    struct line l = { .n = 0 };
    s64 x;
    path_join(p, dir, "backend");
    if (xs_read(p, be, sizeof be) <= 0) { print("PVTEST net FAIL no backend\n"); return -1; }
    path_join(p, dir, "backend-id");
    u16 beid = xs_read_int(p, &x) ? 0 : (u16)x;
    path_join(p, dir, "mac");
    if (xs_read(p, v, sizeof v) != 17) { print("PVTEST net FAIL no mac\n"); return -1; }
    for (int i = 0; i < 6; i++) {
        int h = hexval(v[3 * i]), lo = hexval(v[3 * i + 1]);
        if (h < 0 || lo < 0) { print("PVTEST net FAIL bad mac\n"); return -1; }
        my_mac[i] = (u8)(h << 4 | lo);
    }
    char ips[20];
    if (!opt("ip", ips, sizeof ips) || fe_parse_ip(ips, &my_ip)) { print("PVTEST net FAIL no ip= on the command line\n"); return -1; }

    int st = 0;
    u64 end = now_ns() + 30000000000UL;
    while ((st = xb_state(be)) < XB_INITWAIT && now_ns() < end) fe_sleep_ms(5);
    if (st != XB_INITWAIT) { print("PVTEST net FAIL backend not in InitWait\n"); return -1; }

    txs = (struct tx_sring *)tx_ring_page;
    rxs = (struct rx_sring *)rx_ring_page;
    fe_memset(txs, 0, PAGE); fe_memset(rxs, 0, PAGE);
    txs->h.req_event = txs->h.rsp_event = rxs->h.req_event = rxs->h.rsp_event = 1;
    tx_size = ring_size(sizeof(union tx_entry));
    rx_size = ring_size(sizeof(union rx_entry));
    int txref = gnttab_grant(beid, virt_to_mfn(txs), 0), rxref = gnttab_grant(beid, virt_to_mfn(rxs), 0);
    for (int i = 0; i < RX_BUFS; i++) rx_ref[i] = gnttab_grant(beid, virt_to_mfn(rx_buf[i]), 0);
    for (int i = 0; i < TX_BUFS; i++) tx_ref[i] = gnttab_grant(beid, virt_to_mfn(tx_buf[i]), 1);
    if (txref < 0 || rxref < 0 || tx_ref[TX_BUFS - 1] < 0 || evtchn_alloc_unbound(beid, &net_port)) { print("PVTEST net FAIL grants/evtchn\n"); return -1; }
    for (int i = 0; i < RX_BUFS; i++) post_rx(i);
    ring_push_requests(&rxs->h, rx_prod);

    static const char *const keys[][2] = { { "request-rx-copy", "1" }, { "feature-rx-notify", "1" }, { "feature-sg", "0" },
        { "feature-gso-tcpv4", "0" }, { "feature-no-csum-offload", "1" } };
    l.n = 0; ln_u(&l, (u64)txref); l.b[l.n] = 0; path_join(p, dir, "tx-ring-ref"); xs_write(p, l.b);
    l.n = 0; ln_u(&l, (u64)rxref); l.b[l.n] = 0; path_join(p, dir, "rx-ring-ref"); xs_write(p, l.b);
    l.n = 0; ln_u(&l, net_port); l.b[l.n] = 0; path_join(p, dir, "event-channel"); xs_write(p, l.b);
    for (u64 i = 0; i < sizeof keys / sizeof keys[0]; i++) { path_join(p, dir, keys[i][0]); xs_write(p, keys[i][1]); }
    xb_set_state(dir, XB_CONNECTED);

    end = now_ns() + 30000000000UL;
    while ((st = xb_state(be)) != XB_CONNECTED && st != XB_CLOSED && now_ns() < end) fe_sleep_ms(5);
    l.n = 0;
    if (st != XB_CONNECTED) {
        ln_s(&l, "PVTEST net FAIL backend state "); ln_i(&l, st);
        path_join(p, be, "error");
        if (xs_read(p, v, sizeof v) > 0) { ln_s(&l, ": "); ln_s(&l, v); }
        ln_print(&l);
        return -1;
    }
    net_up = 1;
    ln_s(&l, "PVTEST net connected "); ln_s(&l, dir); ln_s(&l, " mac="); ln_s(&l, ""); 
    for (int i = 0; i < 6; i++) { static const char hx[] = "0123456789abcdef"; char b[4] = { hx[my_mac[i] >> 4], hx[my_mac[i] & 15], i < 5 ? ':' : 0, 0 }; ln_s(&l, b); }
    ln_s(&l, " ip="); ln_ip(&l, my_ip);
    ln_print(&l);
    if (opt_flag("nethostile")) { hostile(be); return -1; }
    return 0;
}
