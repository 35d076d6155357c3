/* Shared by the PV test guests' head.S: Xen's ELF notes and the entry point. The includer defines GUEST_OS.
 * Xen starts the guest at ENTRY with rsi = start_info; kmain(start_info) runs on boot_stack, which each guest defines. */
#define ELFNOTE(type, desctype, descdata) \
    .pushsection .note.Xen, "a", @note; .balign 4; .long 4f - 3f; .long 6f - 5f; .long type; \
    3: .asciz "Xen"; 4: .balign 4; 5: desctype descdata; 6: .balign 4; .popsection

    ELFNOTE(1, .quad, _start)                       /* ENTRY */
    ELFNOTE(3, .quad, 0xffffffff80000000)           /* VIRT_BASE */
    ELFNOTE(4, .quad, 0)                            /* PADDR_OFFSET */
    ELFNOTE(5, .asciz, "xen-3.0")                   /* XEN_VERSION */
    ELFNOTE(6, .asciz, GUEST_OS)                    /* GUEST_OS */
    ELFNOTE(7, .asciz, "0.1")                       /* GUEST_VERSION */
    ELFNOTE(8, .asciz, "generic")                   /* LOADER */
    ELFNOTE(10, .asciz, "!writable_page_tables|pae_pgdir_above_4gb") /* FEATURES */
    ELFNOTE(12, .quad, 0xffff800000000000)          /* HV_START_LOW */

    .section .text.head, "ax"
    .globl _start
_start:
    lea boot_stack_top(%rip), %rsp
    mov %rsi, %rdi                  /* start_info */
    call kmain
    ud2
