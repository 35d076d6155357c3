namespace XenSharp.Emu;
