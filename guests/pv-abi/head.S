/* Entry, Xen ELF notes and the two trap entries (event upcall, #PF) of the PV ABI bench guest. Public Xen PV ABI only. */
#define GUEST_OS "xensharp-pvabi"
#include "../pv-common/entry.S"

/* Saves the registers C may clobber (rcx and r11 are in Xen's bounce frame). */
#define SAVE  push %rax; push %rdx; push %rsi; push %rdi; push %r8; push %r9; push %r10
#define RESTORE pop %r10; pop %r9; pop %r8; pop %rdi; pop %rsi; pop %rdx; pop %rax

/* Back to the interrupted context with HYPERVISOR_iret: the frame is rcx, r11, rip, cs, rflags, rsp, ss. */
#define IRET  pop %rcx; pop %r11; push $0; push %rcx; push %r11; push %rax; mov $23, %eax; syscall

    .globl upcall_entry
upcall_entry:                       /* event callback: events are masked on entry */
    SAVE
    call upcall
    RESTORE
    IRET

    .globl pf_entry
pf_entry:                           /* #PF: rcx, r11, error code, rip, ... */
    SAVE
    sub $8, %rsp                    /* 16-byte alignment at the call */
    mov 80(%rsp), %rdi              /* error code (pad, 7 saved registers, rcx, r11 below it) */
    call page_fault
    add $8, %rsp
    RESTORE
    pop %rcx; pop %r11; add $8, %rsp
    push $0; push %rcx; push %r11; push %rax; mov $23, %eax; syscall

    .section .bss
    .balign 16
boot_stack:
    .skip 16384
    .globl boot_stack_top
boot_stack_top:
