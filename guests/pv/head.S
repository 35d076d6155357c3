/* Entry, Xen ELF notes, and the assembly halves of the trap/event/AP entry points. Public Xen PV ABI only. */
#define GUEST_OS "xensharp-pvtest"
#include "../pv-common/entry.S"

/* Exception entry (trap table): Xen left rcx, r11 [, error code] above the hardware-style frame. */
    .globl pf_entry
pf_entry:
    pop %rcx
    pop %r11
    push %rax; push %rcx; push %rdx; push %rsi; push %rdi; push %r8; push %r9; push %r10; push %r11
    lea 72(%rsp), %rdi              /* &error code, then rip, cs, rflags, rsp, ss */
    call pf_handler
    pop %r11; pop %r10; pop %r9; pop %r8; pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax
    add $8, %rsp                    /* error code */
    jmp hypervisor_iret

/* Event upcall: frame rcx, r11, rip, cs, rflags, rsp, ss. */
    .globl event_entry
event_entry:
    pop %rcx
    pop %r11
    push %rax; push %rcx; push %rdx; push %rsi; push %rdi; push %r8; push %r9; push %r10; push %r11
    call event_handler
    pop %r11; pop %r10; pop %r9; pop %r8; pop %rdi; pop %rsi; pop %rdx; pop %rcx; pop %rax
    jmp hypervisor_iret

/* HYPERVISOR_iret with the stack holding rip, cs, rflags, rsp, ss. */
hypervisor_iret:
    push $0                         /* flags */
    push %rcx
    push %r11
    push %rax
    mov $23, %eax
    syscall
    ud2

/* Secondary vCPU entry (VCPUOP_initialise sets rsp). */
    .globl ap_entry
ap_entry:
    call ap_main
    ud2

    .bss
    .balign 16
    .space 16384
boot_stack_top:
