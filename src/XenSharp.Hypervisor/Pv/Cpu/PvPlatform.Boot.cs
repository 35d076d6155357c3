using XenSharp.Accel;
using XenSharp.Hypervisor.Pv.Abi;
using XenSharp.Hypervisor.Pv.Cpu;

namespace XenSharp.Hypervisor.Pv;

/// <summary>Starting vCPUs: the boot vCPU from the domain builder's values, others from VCPUOP_initialise.</summary>
public sealed partial class PvPlatform
{
    /// <summary>
    /// Prepares vCPU 0 as Xen does for a 64-bit PV kernel (A.7): pins the bootstrap L4 (validating the initial tables
    /// and adding the hypervisor slots, host-side, before anything runs), loads the special registers, and enters at
    /// <paramref name="entry"/> through the resume stub with rsi = start_info, cs/ss = 0xe033/0xe02b, events masked.
    /// </summary>
    public void PrepareBootVcpu(VirtualCpu vcpu, ulong entry, ulong rsp, ulong rsi, ulong cr3)
    {
        var st = State(vcpu.Id);
        int rc;
        lock (Mmu.SyncRoot) rc = Mmu.Pin(cr3 >> 12, PageType.L4, new HostPtWriter(_domain.Memory, Area));
        if (rc != 0) throw new InvalidOperationException($"the bootstrap page tables at 0x{cr3:x} do not validate (error {rc})");
        // The pin holds one type reference; being the current base pointer holds another, as in Xen.
        lock (Mmu.SyncRoot) Mmu.GetType(cr3 >> 12, PageType.L4, new HostPtWriter(_domain.Memory, Area));
        st.KernelL4 = cr3 >> 12;
        st.CurrentCr3 = cr3 & X86.PteAddressMask;
        st.KernelMode = true;
        st.KernelSs = PvLayout.Ring3Ds;
        st.KernelSp = rsp;
        LoadCpu(vcpu, st);
        var ctx = new GuestContext { Cs = PvLayout.Ring3Cs64, Ss = PvLayout.Ring3Ds };
        ctx.Regs.Rip = entry;
        ctx.Regs.Rsp = rsp;
        ctx.Regs.Rsi = rsi;
        ctx.Regs.Rflags = X86.RflagsIf | X86.RflagsReserved1;
        st.AtRing0 = true;
        st.PendingResume = ctx;
    }

    private void LoadCpu(VirtualCpu vcpu, PvVcpuState st)
    {
        Area.InitVcpu(vcpu.Cpu, vcpu.Id, st.CurrentCr3, ring0: true);
        vcpu.Cpu.SetCpuid(PvCpuid.Table(_domain.Hypervisor.Accelerator));
        vcpu.Cpu.SetMsr(X86.MsrFsBase, st.FsBase);
        vcpu.Cpu.SetMsr(X86.MsrGsBase, st.KernelMode ? st.GsBaseKernel : st.GsBaseUser);
        st.CpuLoaded = true;
    }

    private int ValidateInitialContext(PvVcpuState st, VcpuGuestContext c)
    {
        unsafe
        {
            ulong l4 = c.Ctrlreg[3] >> 12;
            if (l4 == 0 || l4 >= Area.RamFrames) return -XenErrno.EINVAL;
            if (c.GdtEnts > (ulong)PvLayout.FirstReservedGdtEntry) return -XenErrno.EINVAL;
            if (c.UserRegs.Rip >= X86_64Layout.HypervisorVirtStart && c.UserRegs.Rip < X86_64Layout.HypervisorVirtEnd) return -XenErrno.EINVAL;
        }
        return 0;
    }

    /// <summary>VCPUOP_initialise's context, loaded on the vCPU's own thread before its first entry.</summary>
    private unsafe void LoadInitialContext(VirtualCpu vcpu, PvVcpuState st, VcpuGuestContext c)
    {
        var w = new CommandPtWriter(_domain.Memory, Area, st);
        ulong l4 = c.Ctrlreg[3] >> 12;
        int rc;
        lock (Mmu.SyncRoot) rc = Mmu.GetType(l4, PageType.L4, w);
        if (rc != 0) throw new PvCrashException($"VCPUOP_initialise: L4 0x{l4:x} does not validate ({rc})");
        ulong ul4 = c.Ctrlreg[1] >> 12;
        if (ul4 != 0) lock (Mmu.SyncRoot) if (Mmu.GetType(ul4, PageType.L4, w) != 0) ul4 = 0;
        st.KernelL4 = l4;
        st.UserL4 = ul4;
        st.KernelMode = true;
        st.CurrentCr3 = l4 << 12;
        for (int i = 0; i < 256; i++)
        {
            var t = c.TrapCtxt[i];
            if (t.Address != 0) st.TrapTable[t.Vector] = new TrapEntry(t.Flags, t.Cs, t.Address);
        }
        st.EventCallback = c.EventCallbackEip;
        st.FailsafeCallback = c.FailsafeCallbackEip;
        st.SyscallCallback = c.SyscallCallbackEip;
        st.FailsafeDisablesEvents = (c.Flags & Vgcf.FailsafeDisablesEvents) != 0;
        st.SyscallDisablesEvents = (c.Flags & Vgcf.SyscallDisablesEvents) != 0;
        st.KernelSs = c.KernelSs;
        st.KernelSp = c.KernelSp;
        st.FsBase = c.FsBase;
        st.GsBaseKernel = c.GsBaseKernel;
        st.GsBaseUser = c.GsBaseUser;
        for (int i = 0; i < 8; i++) if (i is not (4 or 5)) st.DebugRegs[i] = c.Debugreg[i];
        int nframes = (int)((c.GdtEnts * 8 + 4095) / 4096);
        lock (Mmu.SyncRoot)
        {
            for (int p = 0; p < 14; p++)
            {
                ulong? f = p < nframes && Mmu.GetType(c.GdtFrames[p], PageType.SegDesc, w) == 0 ? c.GdtFrames[p] : null;
                st.GdtFrames[p] = f;
                w.Store(Area.GdtPteGpa(vcpu.Id, p), Area.GdtPteValue(f));
            }
        }
        st.GdtEntries = (int)c.GdtEnts;
        LoadCpu(vcpu, st);
        var u = c.UserRegs;
        var ctx = new GuestContext { Cs = u.Cs == 0 ? PvLayout.Ring3Cs64 : (ushort)(u.Cs | 3), Ss = u.Ss == 0 ? PvLayout.Ring3Ds : (ushort)(u.Ss | 3) };
        ctx.Regs = new VcpuRegisters
        {
            Rax = u.Rax, Rbx = u.Rbx, Rcx = u.Rcx, Rdx = u.Rdx, Rsi = u.Rsi, Rdi = u.Rdi, Rsp = u.Rsp, Rbp = u.Rbp,
            R8 = u.R8, R9 = u.R9, R10 = u.R10, R11 = u.R11, R12 = u.R12, R13 = u.R13, R14 = u.R14, R15 = u.R15,
            Rip = u.Rip, Rflags = (u.Rflags & 0x3f7fd5 & ~(X86.RflagsIopl | X86.RflagsVm)) | X86.RflagsIf | X86.RflagsReserved1,
        };
        // The LDT and the data selectors of the context, loaded as Xen's load_segments would on the first switch to this
        // vCPU: a selector that does not load becomes null, and the vCPU starts in its failsafe callback instead.
        ulong ldtEnts = c.LdtEnts, ldtBase = ldtEnts != 0 ? c.LdtBase : 0;
        if ((ldtBase & 0xfff) == 0 && ldtEnts <= 8192 && (ldtBase < (1UL << 47) || ldtBase >= X86_64Layout.HypervisorVirtEnd))
        {
            st.LdtBase = ldtBase;
            st.LdtEntries = (int)ldtEnts;
            LoadLdt(vcpu.Id, st);
        }
        string? bad = LoadDataSelectors(vcpu, st, u.Ds, u.Es, u.Fs, u.Gs, c.FsBase, c.GsBaseKernel);
        bad ??= CheckReturnFrame(vcpu.Id, st, ctx);
        if (bad is not null) Traps.Failsafe(st, ref ctx, u.Ds, u.Es, u.Fs, u.Gs, $"VCPUOP_initialise context of vcpu{vcpu.Id}: {bad}");
        st.AtRing0 = true;
        st.PendingResume = ctx;
    }

    /// <summary>
    /// Loads DS/ES/FS/GS of a new context into the vCPU (FS/GS keep the context's 64-bit bases when set). Returns why
    /// one did not load (that one is loaded null), or null.
    /// </summary>
    private string? LoadDataSelectors(VirtualCpu vcpu, PvVcpuState st, ushort ds, ushort es, ushort fs, ushort gs, ulong fsBase, ulong gsBase)
    {
        if (((ds | es | fs | gs) & 0xfffc) == 0) return null;
        var s = vcpu.Cpu.GetSpecialRegisters();
        string? bad = null;
        SegmentRegister Load(ushort sel, SegmentRegister current, ulong baseOverride)
        {
            if ((sel & 0xfffc) == 0) return current;
            if (!DataSelectorLoads(vcpu.Id, st, sel, out ulong d))
            {
                bad ??= $"selector 0x{sel:x} does not load";
                return new SegmentRegister { Unusable = 1, Base = current.Base };
            }
            uint limit = (uint)(d & 0xffff) | (uint)((d >> 32) & 0xf0000);
            bool g = ((d >> 55) & 1) != 0;
            return new SegmentRegister
            {
                Selector = sel,
                Base = baseOverride != 0 ? baseOverride : ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24),
                Limit = g ? (limit << 12) | 0xfff : limit,
                Type = (byte)((d >> 40) & 0xf), S = 1, Dpl = (byte)((d >> 45) & 3), Present = 1,
                Avl = (byte)((d >> 52) & 1), L = (byte)((d >> 53) & 1), Db = (byte)((d >> 54) & 1), G = (byte)(g ? 1 : 0),
            };
        }
        s.Ds = Load(ds, s.Ds, 0);
        s.Es = Load(es, s.Es, 0);
        s.Fs = Load(fs, s.Fs, fsBase);
        s.Gs = Load(gs, s.Gs, gsBase);
        vcpu.Cpu.SetSpecialRegisters(s);
        return bad;
    }
}
