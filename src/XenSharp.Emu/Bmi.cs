using Iced.Intel;

namespace XenSharp.Emu;

/// <summary>BMI1/BMI2/ADX/MOVBE general-register instructions, which gcc emits when the CPUID the VMM exposes allows them.</summary>
public sealed unsafe partial class EmuVcpu
{
    /// <summary>Returns false when <paramref name="m"/> is not one of these instructions.</summary>
    private bool ExecuteBmi(ref Instruction i, Mnemonic m)
    {
        switch (m)
        {
            case Mnemonic.Andn:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong v = ~GetReg(i.Op1Register) & ReadOp(ref i, 2, sz) & Mask(sz);
                SetArith(Szp(v, sz) & (ZF | SF));
                SetReg(r, v);
                return true;
            }
            case Mnemonic.Blsr or Mnemonic.Blsi or Mnemonic.Blsmsk:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong s = ReadOp(ref i, 1, sz) & Mask(sz);
                ulong v = (m switch { Mnemonic.Blsr => s & (s - 1), Mnemonic.Blsi => s & (0 - s), _ => s ^ (s - 1) }) & Mask(sz);
                bool cf = m == Mnemonic.Blsi ? s != 0 : s == 0;
                SetArith((Szp(v, sz) & (ZF | SF)) | (cf ? CF : 0));
                SetReg(r, v);
                return true;
            }
            case Mnemonic.Bzhi:
            {
                var r = i.Op0Register;
                int sz = RegSize(r), bits = sz * 8;
                ulong s = ReadOp(ref i, 1, sz) & Mask(sz);
                int n = (int)(GetReg(i.Op2Register) & 0xff);
                ulong v = n < bits ? s & ((1UL << n) - 1) : s;
                SetArith((Szp(v, sz) & (ZF | SF)) | (n >= bits ? CF : 0));
                SetReg(r, v);
                return true;
            }
            case Mnemonic.Bextr:
            {
                var r = i.Op0Register;
                int sz = RegSize(r), bits = sz * 8;
                ulong s = ReadOp(ref i, 1, sz) & Mask(sz), ctl = GetReg(i.Op2Register);
                int start = (int)(ctl & 0xff), len = (int)((ctl >> 8) & 0xff);
                ulong v = start >= bits ? 0 : s >> start;
                if (len < 64) v &= (1UL << len) - 1;
                SetArith(v == 0 ? ZF : 0);
                SetReg(r, v);
                return true;
            }
            case Mnemonic.Shlx or Mnemonic.Shrx or Mnemonic.Sarx:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong s = ReadOp(ref i, 1, sz) & Mask(sz);
                int c = (int)(GetReg(i.Op2Register) & (sz == 8 ? 63UL : 31UL));
                ulong v = m switch
                {
                    Mnemonic.Shlx => s << c,
                    Mnemonic.Shrx => s >> c,
                    _ => (ulong)((long)SignExtend(s, sz) >> c),
                };
                SetReg(r, v & Mask(sz));
                return true;
            }
            case Mnemonic.Rorx:
            {
                var r = i.Op0Register;
                int sz = RegSize(r), bits = sz * 8;
                ulong s = ReadOp(ref i, 1, sz) & Mask(sz);
                int c = (int)(i.GetImmediate(2) & (ulong)(bits - 1));
                SetReg(r, c == 0 ? s : ((s >> c) | (s << (bits - c))) & Mask(sz));
                return true;
            }
            case Mnemonic.Mulx:
            {
                int sz = RegSize(i.Op0Register);
                ulong a = _r[2] & Mask(sz), b = ReadOp(ref i, 2, sz) & Mask(sz);
                ulong hi, lo;
                if (sz == 8) hi = Math.BigMul(a, b, out lo);
                else { ulong p = a * b; lo = (uint)p; hi = p >> 32; }
                SetReg(i.Op1Register, lo);
                SetReg(i.Op0Register, hi); // the high half wins when both name the same register
                return true;
            }
            case Mnemonic.Pdep or Mnemonic.Pext:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong src = GetReg(i.Op1Register) & Mask(sz), mask = ReadOp(ref i, 2, sz) & Mask(sz), v = 0;
                int k = 0;
                for (int b = 0; b < sz * 8; b++)
                {
                    if (((mask >> b) & 1) == 0) continue;
                    if (m == Mnemonic.Pdep) { if (((src >> k) & 1) != 0) v |= 1UL << b; }
                    else if (((src >> b) & 1) != 0) v |= 1UL << k;
                    k++;
                }
                SetReg(r, v);
                return true;
            }
            case Mnemonic.Adcx or Mnemonic.Adox:
            {
                var r = i.Op0Register;
                int sz = RegSize(r);
                ulong flag = m == Mnemonic.Adcx ? CF : OF;
                ulong a = GetReg(r) & Mask(sz), b = ReadOp(ref i, 1, sz) & Mask(sz), c = (_rflags & flag) != 0 ? 1UL : 0;
                ulong v = (a + b + c) & Mask(sz);
                bool carry = sz == 8 ? v < a || (c != 0 && v == a) : a + b + c > Mask(sz);
                _rflags = carry ? _rflags | flag : _rflags & ~flag;
                SetReg(r, v);
                return true;
            }
            case Mnemonic.Movbe:
            {
                if (i.Op0Kind == OpKind.Register)
                {
                    int sz = RegSize(i.Op0Register);
                    SetReg(i.Op0Register, Swap(ReadOp(ref i, 1, sz), sz));
                }
                else
                {
                    int sz = RegSize(i.Op1Register);
                    WriteMem(Ea(ref i), sz, Swap(GetReg(i.Op1Register), sz));
                }
                return true;
            }
            default:
                return false;
        }

        static ulong Swap(ulong v, int sz) => sz switch
        {
            2 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((ushort)v),
            4 => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness((uint)v),
            _ => System.Buffers.Binary.BinaryPrimitives.ReverseEndianness(v),
        };
    }
}
