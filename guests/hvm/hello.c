/*
 * The minimal HVM test guest. It talks on COM1, answers a few commands typed on its console, and
 * powers off, reboots or crashes through the XenSharp minimal platform (see HvmPlatform/PowerControl):
 *   port 0x604 <- 0x2000 (SLP_EN): power off     port 0x64 <- 0xfe: reset (reboot)
 *   port 0x606 -> power-button latch (1 power off, 2 reboot)
 * With no interrupt controller, HLT sleeps until console input or a power-button press.
 */
#include <stdint.h>

#define COM1 0x3f8

static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }

static void putc(char c)
{
    while (!(inb(COM1 + 5) & 0x20))
        ;
    outb(COM1, (uint8_t)c);
}

static void puts(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n')
            putc('\r');
        putc(*s);
    }
}

static void putu(uint64_t v)
{
    char buf[21];
    int i = 20;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    puts(&buf[i]);
}

static int streq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static void poweroff(void)
{
    puts("powering off\n");
    outw(0x604, 0x2000);
}

static void reboot(void)
{
    puts("rebooting\n");
    outb(0x64, 0xfe);
}

static void crash(void)
{
    /* An empty IDT turns the breakpoint into a triple fault: the platform reports a crash. */
    struct __attribute__((packed)) { uint16_t limit; uint64_t base; } idt = { 0, 0 };
    puts("crashing\n");
    __asm__ volatile("lidt %0; int3" : : "m"(idt));
}

static uint64_t fib(uint64_t n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static void run(const char *cmd)
{
    if (streq(cmd, "poweroff"))
        poweroff();
    else if (streq(cmd, "reboot"))
        reboot();
    else if (streq(cmd, "crash"))
        crash();
    else if (streq(cmd, "hello"))
        puts("hello from the guest\n");
    else if (streq(cmd, "fib")) {
        puts("fib(20) = ");
        putu(fib(20));
        puts("\n");
    } else if (cmd[0])
        puts("unknown command\n");
}

void guest_main(void)
{
    char line[64];
    unsigned len = 0;

    outb(COM1 + 3, 0x03); /* 8N1 */
    puts("XenSharp HVM test guest\n");
    puts("ready\n");
    for (;;) {
        uint8_t button = inb(0x606);
        if (button == 1)
            poweroff();
        else if (button == 2)
            reboot();
        while (inb(COM1 + 5) & 1) {
            char c = (char)inb(COM1);
            if (c == '\r' || c == '\n') {
                puts("\n");
                line[len] = 0;
                run(line);
                len = 0;
            } else if (len < sizeof(line) - 1) {
                line[len++] = c;
                putc(c);
            }
        }
        __asm__ volatile("hlt");
    }
}
