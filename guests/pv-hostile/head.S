/* Entry and Xen ELF notes of the hostile PV test guest (same layout as guests/pv/head.S). */
#define GUEST_OS "xensharp-pvhostile"
#include "../pv-common/entry.S"

/* HYPERVISOR_iret with rsp pointing at an unreadable frame: Xen crashes the domain. */
    .globl iret_unreadable
iret_unreadable:
    mov $0x2000, %rsp               /* unmapped */
    mov $23, %eax
    syscall
    ud2

    .bss
    .balign 16
    .space 16384
boot_stack_top:
