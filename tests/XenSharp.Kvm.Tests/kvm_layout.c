// Prints the sizes, offsets and constants of <linux/kvm.h> (and glibc's sigaction) that XenSharp.Kvm mirrors.
// Compiled and run by LayoutTests; every line is "NAME VALUE".
#define _GNU_SOURCE
#include <stdio.h>
#include <stddef.h>
#include <signal.h>
#include <linux/kvm.h>

#define S(t) printf("sizeof(%s) %zu\n", #t, sizeof(t))
#define O(t, f) printf("offsetof(%s,%s) %zu\n", #t, #f, offsetof(t, f))
#define V(x) printf("%s %llu\n", #x, (unsigned long long)(x))

int main(void)
{
    S(struct kvm_run);
    O(struct kvm_run, request_interrupt_window); O(struct kvm_run, immediate_exit); O(struct kvm_run, exit_reason);
    O(struct kvm_run, ready_for_interrupt_injection); O(struct kvm_run, if_flag); O(struct kvm_run, flags);
    O(struct kvm_run, cr8); O(struct kvm_run, apic_base);
    O(struct kvm_run, hw.hardware_exit_reason);
    O(struct kvm_run, fail_entry.hardware_entry_failure_reason); O(struct kvm_run, fail_entry.cpu);
    O(struct kvm_run, io.direction); O(struct kvm_run, io.size); O(struct kvm_run, io.port); O(struct kvm_run, io.count); O(struct kvm_run, io.data_offset);
    O(struct kvm_run, mmio.phys_addr); O(struct kvm_run, mmio.data); O(struct kvm_run, mmio.len); O(struct kvm_run, mmio.is_write);
    O(struct kvm_run, internal.suberror); O(struct kvm_run, internal.ndata); O(struct kvm_run, internal.data);
    O(struct kvm_run, system_event.type); O(struct kvm_run, system_event.ndata); O(struct kvm_run, system_event.data);
    O(struct kvm_run, kvm_valid_regs); O(struct kvm_run, kvm_dirty_regs); O(struct kvm_run, s.regs.regs); O(struct kvm_run, s.regs.sregs);

    S(struct kvm_regs);
    O(struct kvm_regs, rax); O(struct kvm_regs, rbx); O(struct kvm_regs, rcx); O(struct kvm_regs, rdx);
    O(struct kvm_regs, rsi); O(struct kvm_regs, rdi); O(struct kvm_regs, rsp); O(struct kvm_regs, rbp);
    O(struct kvm_regs, r8); O(struct kvm_regs, r9); O(struct kvm_regs, r10); O(struct kvm_regs, r11);
    O(struct kvm_regs, r12); O(struct kvm_regs, r13); O(struct kvm_regs, r14); O(struct kvm_regs, r15);
    O(struct kvm_regs, rip); O(struct kvm_regs, rflags);

    S(struct kvm_segment);
    O(struct kvm_segment, base); O(struct kvm_segment, limit); O(struct kvm_segment, selector); O(struct kvm_segment, type);
    O(struct kvm_segment, present); O(struct kvm_segment, dpl); O(struct kvm_segment, db); O(struct kvm_segment, s);
    O(struct kvm_segment, l); O(struct kvm_segment, g); O(struct kvm_segment, avl); O(struct kvm_segment, unusable); O(struct kvm_segment, padding);
    S(struct kvm_dtable);
    O(struct kvm_dtable, base); O(struct kvm_dtable, limit);
    S(struct kvm_sregs);
    O(struct kvm_sregs, cs); O(struct kvm_sregs, ds); O(struct kvm_sregs, es); O(struct kvm_sregs, fs); O(struct kvm_sregs, gs); O(struct kvm_sregs, ss);
    O(struct kvm_sregs, tr); O(struct kvm_sregs, ldt); O(struct kvm_sregs, gdt); O(struct kvm_sregs, idt);
    O(struct kvm_sregs, cr0); O(struct kvm_sregs, cr2); O(struct kvm_sregs, cr3); O(struct kvm_sregs, cr4); O(struct kvm_sregs, cr8);
    O(struct kvm_sregs, efer); O(struct kvm_sregs, apic_base); O(struct kvm_sregs, interrupt_bitmap);

    S(struct kvm_userspace_memory_region);
    O(struct kvm_userspace_memory_region, slot); O(struct kvm_userspace_memory_region, flags);
    O(struct kvm_userspace_memory_region, guest_phys_addr); O(struct kvm_userspace_memory_region, memory_size);
    O(struct kvm_userspace_memory_region, userspace_addr);
    S(struct kvm_cpuid2);
    O(struct kvm_cpuid2, nent); O(struct kvm_cpuid2, entries);
    S(struct kvm_cpuid_entry2);
    O(struct kvm_cpuid_entry2, function); O(struct kvm_cpuid_entry2, index); O(struct kvm_cpuid_entry2, flags);
    O(struct kvm_cpuid_entry2, eax); O(struct kvm_cpuid_entry2, ebx); O(struct kvm_cpuid_entry2, ecx); O(struct kvm_cpuid_entry2, edx);
    S(struct kvm_msrs);
    O(struct kvm_msrs, nmsrs); O(struct kvm_msrs, entries);
    S(struct kvm_msr_entry);
    O(struct kvm_msr_entry, index); O(struct kvm_msr_entry, reserved); O(struct kvm_msr_entry, data);
    S(struct kvm_interrupt);
    O(struct kvm_interrupt, irq);
    S(struct kvm_irq_level);
    O(struct kvm_irq_level, irq); O(struct kvm_irq_level, level);
    S(struct kvm_pit_config);
    O(struct kvm_pit_config, flags);

    S(struct sigaction); S(sigset_t);
    O(struct sigaction, sa_handler); O(struct sigaction, sa_mask); O(struct sigaction, sa_flags); O(struct sigaction, sa_restorer);
    V(SA_RESTART); V(SA_SIGINFO); V(SA_ONSTACK); V(SIG_BLOCK); V(SIG_UNBLOCK); V(SIG_SETMASK);

    V(KVM_API_VERSION);
    V(KVM_GET_API_VERSION); V(KVM_CREATE_VM); V(KVM_CHECK_EXTENSION); V(KVM_GET_VCPU_MMAP_SIZE); V(KVM_GET_SUPPORTED_CPUID);
    V(KVM_CREATE_VCPU); V(KVM_SET_USER_MEMORY_REGION); V(KVM_SET_TSS_ADDR); V(KVM_SET_IDENTITY_MAP_ADDR);
    V(KVM_CREATE_IRQCHIP); V(KVM_IRQ_LINE); V(KVM_CREATE_PIT2);
    V(KVM_RUN); V(KVM_GET_REGS); V(KVM_SET_REGS); V(KVM_GET_SREGS); V(KVM_SET_SREGS); V(KVM_INTERRUPT);
    V(KVM_GET_MSRS); V(KVM_SET_MSRS); V(KVM_SET_CPUID2);

    V(KVM_CAP_IRQCHIP); V(KVM_CAP_USER_MEMORY); V(KVM_CAP_SET_TSS_ADDR); V(KVM_CAP_EXT_CPUID); V(KVM_CAP_NR_VCPUS);
    V(KVM_CAP_NR_MEMSLOTS); V(KVM_CAP_PIT2); V(KVM_CAP_SET_IDENTITY_MAP_ADDR); V(KVM_CAP_SYNC_REGS); V(KVM_CAP_READONLY_MEM);
    V(KVM_CAP_IMMEDIATE_EXIT); V(KVM_CAP_MAX_VCPUS);

    V(KVM_EXIT_UNKNOWN); V(KVM_EXIT_EXCEPTION); V(KVM_EXIT_IO); V(KVM_EXIT_HYPERCALL); V(KVM_EXIT_DEBUG); V(KVM_EXIT_HLT);
    V(KVM_EXIT_MMIO); V(KVM_EXIT_IRQ_WINDOW_OPEN); V(KVM_EXIT_SHUTDOWN); V(KVM_EXIT_FAIL_ENTRY); V(KVM_EXIT_INTR);
    V(KVM_EXIT_SET_TPR); V(KVM_EXIT_TPR_ACCESS); V(KVM_EXIT_NMI); V(KVM_EXIT_INTERNAL_ERROR); V(KVM_EXIT_SYSTEM_EVENT);
    V(KVM_EXIT_IOAPIC_EOI); V(KVM_EXIT_X86_RDMSR); V(KVM_EXIT_X86_WRMSR); V(KVM_EXIT_DIRTY_RING_FULL); V(KVM_EXIT_X86_BUS_LOCK);
    V(KVM_EXIT_XEN);
    V(KVM_EXIT_IO_IN); V(KVM_EXIT_IO_OUT);
    V(KVM_SYSTEM_EVENT_SHUTDOWN); V(KVM_SYSTEM_EVENT_RESET); V(KVM_SYSTEM_EVENT_CRASH);
    V(KVM_INTERNAL_ERROR_EMULATION); V(KVM_INTERNAL_ERROR_SIMUL_EX); V(KVM_INTERNAL_ERROR_DELIVERY_EV);
    V(KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON);
    V(KVM_MEM_READONLY); V(KVM_CPUID_FLAG_SIGNIFCANT_INDEX); V(KVM_PIT_SPEAKER_DUMMY);
    V(KVM_SYNC_X86_REGS); V(KVM_SYNC_X86_SREGS); V(KVM_SYNC_X86_EVENTS);
    return 0;
}
