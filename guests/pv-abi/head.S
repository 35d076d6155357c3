/* Entry, Xen ELF notes and the two trap entries (event upcall, #PF) of the PV ABI bench guest. Public Xen PV ABI only. */
#define ELFNOTE(type, desctype, descdata) \
    .pushsection .note.Xen, "a", @note; .balign 4; .long 4f - 3f; .long 6f - 5f; .long type; \
    3: .asciz "Xen"; 4: .balign 4; 5: desctype descdata; 6: .balign 4; .popsection

    ELFNOTE(1, .quad, _start)                       /* ENTRY */
    ELFNOTE(3, .quad, 0xffffffff80000000)           /* VIRT_BASE */
    ELFNOTE(4, .quad, 0)                            /* PADDR_OFFSET */
    ELFNOTE(5, .asciz, "xen-3.0")                   /* XEN_VERSION */
    ELFNOTE(6, .asciz, "xensharp-pvabi")            /* GUEST_OS */
    ELFNOTE(7, .asciz, "0.1")                       /* GUEST_VERSION */
    ELFNOTE(8, .asciz, "generic")                   /* LOADER */
    ELFNOTE(10, .asciz, "!writable_page_tables|pae_pgdir_above_4gb") /* FEATURES */
    ELFNOTE(12, .quad, 0xffff800000000000)          /* HV_START_LOW */

/* Saves the registers C may clobber (rcx and r11 are in Xen's bounce frame). */
#define SAVE  push %rax; push %rdx; push %rsi; push %rdi; push %r8; push %r9; push %r10
#define RESTORE pop %r10; pop %r9; pop %r8; pop %rdi; pop %rsi; pop %rdx; pop %rax

/* Back to the interrupted context with HYPERVISOR_iret: the frame is rcx, r11, rip, cs, rflags, rsp, ss. */
#define IRET  pop %rcx; pop %r11; push $0; push %rcx; push %r11; push %rax; mov $23, %eax; syscall

    .section .text.head, "ax"
    .globl _start
_start:
    lea boot_stack_top(%rip), %rsp
    mov %rsi, %rdi                  /* start_info */
    call kmain
    ud2

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
