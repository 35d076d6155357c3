/* Entry and Xen ELF notes of the resource test guest. Public Xen PV ABI only; no traps, no upcalls. */
#define GUEST_OS "xensharp-pvres"
#include "../pv-common/entry.S"

    .section .bss
    .balign 16
boot_stack:
    .skip 16384
    .globl boot_stack_top
boot_stack_top:
