/* Entered in 64-bit mode with the builder's identity page tables; we only need a stack of our own. */
    .section .text.start, "ax"
    .globl _start
_start:
    lea stack_top(%rip), %rsp
    call guest_main
1:  cli
    hlt
    jmp 1b

    .bss
    .balign 16
    .space 16384
stack_top:
