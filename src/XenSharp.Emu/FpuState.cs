using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>
/// x87 state as storage only (no x87 arithmetic), kept with MXCSR and the XMM registers (Sse.cs) in the FXSAVE
/// image format: kernels save and restore it on context switches with FXSAVE/FXRSTOR.
/// </summary>
public sealed unsafe partial class EmuVcpu
{
    private readonly byte[] _fx = NewFxArea();

    private static byte[] NewFxArea()
    {
        var a = new byte[512];
        FxInit(a);
        return a;
    }

    private static void FxInit(byte[] a)
    {
        Array.Clear(a, 0, 24);
        a[0] = 0x7f; a[1] = 0x03;                       // FCW 0x037f
        BitConverter.TryWriteBytes(a.AsSpan(24), 0x1f80u); // MXCSR
        BitConverter.TryWriteBytes(a.AsSpan(28), 0xffbfu); // MXCSR_MASK
    }

    private void FpuAvailable(bool sse)
    {
        if ((_cr0 & 4) != 0) throw GuestFault.Ud();                  // CR0.EM
        if ((_cr0 & 8) != 0) throw new GuestFault(7, 0, false);      // CR0.TS: #NM
        if (sse && (_cr4 & (1UL << 9)) == 0) throw GuestFault.Ud();  // CR4.OSFXSR
    }

    private int X87Top => (_fx[3] >> 3) & 7;

    /// <summary>An integer as an 80-bit extended-precision value (exact): mantissa with its explicit integer bit, then sign and exponent.</summary>
    private static (ulong Mantissa, ushort SignExponent) ToExtended(long v)
    {
        if (v == 0) return (0, 0);
        ulong mag = v < 0 ? 0 - (ulong)v : (ulong)v;
        int shift = System.Numerics.BitOperations.LeadingZeroCount(mag);
        return (mag << shift, (ushort)((v < 0 ? 0x8000 : 0) | (16383 + 63 - shift)));
    }

    /// <summary>
    /// Pushes onto the x87 stack as kept in the FXSAVE image (ST(i) at 32 + 16i, the abridged tag word by physical
    /// register). A push onto a valid register is the masked stack-overflow response: IE, SF and C1 set, the value
    /// replaced by the indefinite NaN (an unmasked one would be reported at the next x87 instruction, which does not exist here).
    /// </summary>
    private void X87Push((ulong Mantissa, ushort SignExponent) v)
    {
        int top = (X87Top - 1) & 7;
        if ((_fx[4] & (1 << top)) != 0)
        {
            _fx[2] |= 0x41; // IE, SF
            _fx[3] |= 0x02; // C1: overflow
            v = (0xc000000000000000, 0xffff);
        }
        _fx.AsSpan(32, 7 * 16).CopyTo(_fx.AsSpan(48));
        _fx.AsSpan(32, 16).Clear();
        BitConverter.TryWriteBytes(_fx.AsSpan(32), v.Mantissa);
        BitConverter.TryWriteBytes(_fx.AsSpan(40), v.SignExponent);
        _fx[4] |= (byte)(1 << top);
        _fx[3] = (byte)((_fx[3] & 0xc7) | (top << 3));
    }

    /// <summary>Returns false when <paramref name="m"/> is not an FPU-state instruction.</summary>
    private bool ExecuteFpuState(ref Instruction i, Mnemonic m)
    {
        switch (m)
        {
            case Mnemonic.Fxsave or Mnemonic.Fxsave64:
            {
                FpuAvailable(false);
                ulong la = Ea(ref i);
                if ((la & 15) != 0) throw GuestFault.Gp(0);
                Translate(la, AccWrite, _cpl == 3); // both pages checked before any byte is written
                Translate(la + 511, AccWrite, _cpl == 3);
                BitConverter.TryWriteBytes(_fx.AsSpan(24), _mxcsr);
                new ReadOnlySpan<byte>(_x, 256).CopyTo(_fx.AsSpan(160));
                for (int k = 0; k < 512; k += 8) WriteMem(la + (ulong)k, 8, BitConverter.ToUInt64(_fx, k));
                return true;
            }
            case Mnemonic.Fxrstor or Mnemonic.Fxrstor64:
            {
                FpuAvailable(false);
                ulong la = Ea(ref i);
                if ((la & 15) != 0) throw GuestFault.Gp(0);
                var img = new byte[512];
                for (int k = 0; k < 512; k += 8) BitConverter.TryWriteBytes(img.AsSpan(k), ReadMem(la + (ulong)k, 8));
                if ((BitConverter.ToUInt32(img, 24) & ~0xffbfu) != 0) throw GuestFault.Gp(0);
                BitConverter.TryWriteBytes(img.AsSpan(28), 0xffbfu);
                img.CopyTo(_fx, 0);
                _mxcsr = BitConverter.ToUInt32(img, 24);
                img.AsSpan(160, 256).CopyTo(new Span<byte>(_x, 256));
                return true;
            }
            case Mnemonic.Ldmxcsr:
            {
                FpuAvailable(true);
                uint v = (uint)ReadMem(Ea(ref i), 4);
                if ((v & ~0xffbfu) != 0) throw GuestFault.Gp(0);
                _mxcsr = v;
                return true;
            }
            case Mnemonic.Stmxcsr:
                FpuAvailable(true);
                WriteMem(Ea(ref i), 4, _mxcsr);
                return true;
            case Mnemonic.Fninit:
                FpuAvailable(false);
                Array.Clear(_fx, 0, 24);
                _fx[0] = 0x7f; _fx[1] = 0x03;
                return true;
            case Mnemonic.Fnstcw:
                FpuAvailable(false);
                WriteMem(Ea(ref i), 2, BitConverter.ToUInt16(_fx, 0));
                return true;
            case Mnemonic.Fldcw:
                FpuAvailable(false);
                BitConverter.TryWriteBytes(_fx.AsSpan(0), (ushort)ReadMem(Ea(ref i), 2));
                return true;
            case Mnemonic.Fnstsw:
                FpuAvailable(false);
                WriteOp0(ref i, 2, BitConverter.ToUInt16(_fx, 2));
                return true;
            case Mnemonic.Fnclex:
                FpuAvailable(false);
                _fx[2] = 0;     // FSW exception flags, SF, ES
                _fx[3] &= 0x7f; // FSW.B
                return true;
            case Mnemonic.Fild:
            {
                // Loads only: Linux's AMD FXSAVE-leak workaround (fnclex; emms; fild) runs before every FXRSTOR.
                FpuAvailable(false);
                int size = i.MemorySize.GetSize();
                ulong raw = ReadMem(Ea(ref i), size);
                X87Push(ToExtended(size == 2 ? (short)raw : size == 4 ? (int)raw : (long)raw));
                return true;
            }
            case Mnemonic.Wait:
                if ((_cr0 & 0xa) == 0xa) throw new GuestFault(7, 0, false); // MP and TS
                return true;
            default:
                return false;
        }
    }
}
